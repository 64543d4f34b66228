//! The [`Hub`] (the original's `ConnectionManager`): connections, subscriptions and the
//! fan-out of events.
//!
//! Publishers hand envelopes to a bounded queue; one hub task numbers each event per
//! topic, serializes it once into a shared frame, keeps it in the topic's history and
//! pushes the frame into the bounded queue of every subscribed connection. Subscribing
//! (with its replay and snapshot) runs on the same task between two events, so the
//! switch from replay to live delivery can neither skip nor repeat an event.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::config::{LagPolicy, ServerConfig};
use super::error::ServerError;
use super::history::{FrameWriter, TopicHistory};
use super::inbox::{Inbox, Refused};
use super::protocol::{BadRequest, Subscribe, confirmation_frame, error_frame, unsubscribed_frame};
use super::queue::{ClientQueue, CloseRequest, Pushed};
use super::sink::HubSink;
use super::stats::{Counters, ServerStats, add, bump};
use crate::{BacktestId, Envelope, SinkError, Topic};

/// What publishers send to the hub task.
pub(crate) enum Input {
    /// An event for the subscribers of its topic.
    Publish(Envelope),
    /// An event for every connection.
    Broadcast(Envelope),
    /// Answer once everything before has been handed to the connections.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// What connections (and shutdown) ask of the hub task.
pub(crate) enum Command {
    Register {
        id: u64,
        queue: Arc<ClientQueue>,
    },
    Subscribe {
        id: u64,
        request: Subscribe,
    },
    Unsubscribe {
        id: u64,
        topic: Topic,
    },
    Disconnect {
        id: u64,
    },
    /// The connection's queue is empty: continue its replay.
    Drained {
        id: u64,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// State shared by the hub handles, the hub task, the sinks and the connections.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) inbox: Inbox<Input>,
    pub(crate) epoch: String,
    pub(crate) counters: Counters,
    subscriptions: Mutex<BTreeMap<Topic, usize>>,
    next_id: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    /// Notified whenever the number of connections drops to zero.
    no_connections: Notify,
}

/// The broadcast hub: give it events through [`Hub::publish`] or a [`HubSink`], and
/// connections through [`Hub::serve`] or the [`Server`](super::Server).
///
/// A hub is a cheap handle (clone it freely). It must be created inside a tokio runtime,
/// where it spawns its task.
///
/// ```
/// use backtest_stream::server::{Hub, ServerConfig};
/// use backtest_stream::{ProgressStreamer, RunInfo};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::new(ServerConfig::default())?;
/// let run = ProgressStreamer::new(hub.sink()).start(RunInfo::default(), 10);
/// run.complete(Default::default());
/// hub.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    pub(crate) shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.shared.epoch)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Creates a hub and spawns its task on the current tokio runtime.
    pub fn new(config: ServerConfig) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ServerError::NoRuntime)?;
        Ok(Self::with_runtime(config, &runtime))
    }

    /// Creates a hub and spawns its task on the given runtime (so that it can be
    /// created from a plain thread).
    pub fn with_runtime(config: ServerConfig, runtime: &tokio::runtime::Handle) -> Self {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            inbox: Inbox::new(config.publish_queue_capacity),
            config,
            epoch: uuid::Uuid::new_v4().simple().to_string(),
            counters: Counters::default(),
            subscriptions: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            no_connections: Notify::new(),
        });
        let task = HubTask {
            shared: Arc::clone(&shared),
            topics: HashMap::new(),
            conns: HashMap::new(),
            cursors: HashMap::new(),
            subscription_counts: BTreeMap::new(),
            closed: false,
            frames: FrameWriter::new(),
        };
        let inbox_owner = Arc::clone(&shared);
        runtime.spawn(async move {
            task.run(commands_rx).await;
            // Every hub handle is gone: sinks that outlive it get `SinkError::Closed`.
            inbox_owner.inbox.close();
        });
        Self { shared, commands }
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// This hub's epoch: a random string; sequence numbers of another epoch mean nothing
    /// here.
    pub fn epoch(&self) -> &str {
        &self.shared.epoch
    }

    /// A sink that publishes into this hub, usable from any thread.
    pub fn sink(&self) -> HubSink {
        HubSink::new(Arc::clone(&self.shared))
    }

    /// Publishes an event to the subscribers of its topic. Never waits: a full queue
    /// returns [`SinkError::Full`] (counted in the stats).
    pub fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        try_input(&self.shared, Input::Publish(envelope.clone()))
    }

    /// Publishes an event to every connection, subscribed or not. It is numbered and
    /// kept in the history of its topic like any other.
    pub fn broadcast(&self, envelope: &Envelope) -> Result<(), SinkError> {
        try_input(&self.shared, Input::Broadcast(envelope.clone()))
    }

    /// Connections, subscriptions, events and drops so far.
    pub fn stats(&self) -> ServerStats {
        let subscriptions = self
            .shared
            .subscriptions
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        self.shared.counters.snapshot(subscriptions)
    }

    /// Whether a graceful shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::Acquire)
    }

    /// Shuts down gracefully: delivers what was published before, closes every
    /// connection with 1001 once its queue is written, and waits until all are gone or
    /// [`ServerConfig::shutdown_timeout`] has passed. Publishing afterwards fails with
    /// [`SinkError::Closed`].
    pub async fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        let (done, done_rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown { done }).is_ok() {
            // The hub task ending also resolves this.
            let _ = done_rx.await;
        }
        let _ = tokio::time::timeout(
            self.shared.config.shutdown_timeout,
            self.wait_for_no_connections(),
        )
        .await;
    }

    /// Resolves when no connection is open.
    pub(crate) async fn wait_for_no_connections(&self) {
        loop {
            let notified = self.shared.no_connections.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.counters.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Takes a connection slot, or `None` when `max_connections` are open.
    pub(crate) fn admit(&self) -> Option<Admission> {
        let max = self.shared.config.max_connections as u64;
        let counter = &self.shared.counters.connections;
        let mut current = counter.load(Ordering::Acquire);
        loop {
            if current >= max {
                bump(&self.shared.counters.refused_max_connections);
                return None;
            }
            match counter.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    bump(&self.shared.counters.connections_accepted);
                    return Some(Admission {
                        shared: Arc::clone(&self.shared),
                        id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    pub(crate) fn command(&self, command: Command) {
        // The hub task ends only after a shutdown; commands after that have no effect.
        let _ = self.commands.send(command);
    }
}

#[inline]
pub(crate) fn try_input(shared: &Shared, message: Input) -> Result<(), SinkError> {
    match shared.inbox.push(message) {
        Ok(()) => Ok(()),
        Err(Refused::Full(_)) => {
            bump(&shared.counters.publish_queue_full);
            Err(SinkError::Full {
                capacity: shared.inbox.capacity(),
            })
        }
        Err(Refused::Closed(_)) => Err(SinkError::Closed),
    }
}

/// Waits until the hub handed everything published before to the connections.
pub(crate) fn flush_input(shared: &Shared) -> Result<(), SinkError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let mut message = Input::Flush(tx);
    loop {
        match shared.inbox.push(message) {
            Ok(()) => break,
            Err(Refused::Full(back)) => {
                message = back;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(Refused::Closed(_)) => return Err(SinkError::Closed),
        }
    }
    match rx.recv_timeout(FLUSH_TIMEOUT) {
        Ok(()) => Ok(()),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(SinkError::Closed),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(SinkError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the hub did not take the published events within 60 s",
        ))),
    }
}

/// How long a flush waits for the hub at most.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection slot; released on drop.
pub(crate) struct Admission {
    shared: Arc<Shared>,
    pub(crate) id: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self
            .shared
            .counters
            .connections
            .fetch_sub(1, Ordering::AcqRel)
            == 1
        {
            self.shared.no_connections.notify_waiters();
        }
    }
}

type Subscribers = Vec<(u64, Arc<ClientQueue>)>;

struct TopicState {
    history: TopicHistory,
    all: Subscribers,
    by_run: HashMap<BacktestId, Subscribers>,
}

enum Filter {
    All,
    Runs(Vec<BacktestId>),
}

struct Conn {
    queue: Arc<ClientQueue>,
    subs: HashMap<Topic, Filter>,
}

/// A replay too long for the client's queue: continued each time the queue drains;
/// the connection joins live delivery of the topic when the replay reaches the head.
struct ReplayCursor {
    topic: Topic,
    run: Option<BacktestId>,
    /// The next seq to replay.
    next: u64,
    link: Link,
}

/// Where a subscription joins live delivery.
enum Link {
    All,
    Run(BacktestId),
    Nothing,
}

struct HubTask {
    shared: Arc<Shared>,
    topics: HashMap<Topic, TopicState>,
    conns: HashMap<u64, Conn>,
    cursors: HashMap<u64, Vec<ReplayCursor>>,
    subscription_counts: BTreeMap<Topic, usize>,
    closed: bool,
    frames: FrameWriter,
}

fn remove_subscriber(list: &mut Subscribers, id: u64) {
    if let Some(i) = list.iter().position(|(c, _)| *c == id) {
        list.swap_remove(i);
    }
}

const SLOW: CloseRequest = CloseRequest {
    code: 1008,
    reason: "client too slow",
};

impl HubTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        /// Work (events plus pushes to connections) done before the task yields to the
        /// connections on its worker: bounds how long one poll of the hub runs (about
        /// 256 events to few clients, or 16 events to 1,000).
        const BUDGET: usize = 16_384;
        /// Events handled at most per poll.
        const BATCH: usize = 256;
        let shared = Arc::clone(&self.shared);
        loop {
            loop {
                match commands.try_recv() {
                    Ok(command) => self.handle(command),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            let mut handled = 0;
            let mut work = 0;
            let mut exhausted = false;
            while handled < BATCH && work < BUDGET {
                let Some(message) = shared.inbox.pop() else {
                    exhausted = true;
                    break;
                };
                work += self.input(message);
                handled += 1;
            }
            if !exhausted {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => return,
                },
                () = shared.inbox.wait() => {}
            }
            shared.inbox.busy();
        }
    }

    /// Handles one input; returns a measure of the work done (events + pushes).
    fn input(&mut self, message: Input) -> usize {
        match message {
            Input::Publish(envelope) => 1 + self.deliver(&envelope, false),
            Input::Broadcast(envelope) => 1 + self.deliver(&envelope, true),
            Input::Flush(done) => {
                let _ = done.try_send(());
                1
            }
        }
    }

    fn topic(&mut self, topic: &Topic) -> &mut TopicState {
        let config = &self.shared.config;
        self.topics
            .entry(topic.clone())
            .or_insert_with(|| TopicState {
                history: TopicHistory::new(config.history_limits()),
                all: Vec::new(),
                by_run: HashMap::new(),
            })
    }

    /// Numbers, serializes, records and fans out one event; returns how many
    /// connections it was pushed to.
    fn deliver(&mut self, envelope: &Envelope, everyone: bool) -> usize {
        let terminal = envelope.event.is_terminal();
        let config = &self.shared.config;
        // One lookup of the topic; the fields below are borrowed separately.
        let state = match self.topics.get_mut(&envelope.topic) {
            Some(state) => state,
            None => self
                .topics
                .entry(envelope.topic.clone())
                .or_insert_with(|| TopicState {
                    history: TopicHistory::new(config.history_limits()),
                    all: Vec::new(),
                    by_run: HashMap::new(),
                }),
        };
        let seq = state.history.next_seq();
        let frame = self.frames.frame(envelope, seq);
        state.history.record(seq, &envelope.event, &frame);
        let state = &*state;
        let mut slow = Vec::new();
        let mut lagged = 0;
        let mut pushes = 0;
        let mut push = |id: u64, queue: &ClientQueue| {
            pushes += 1;
            match queue.push_event(&envelope.topic, &frame, terminal) {
                Pushed::Queued | Pushed::Closed => {}
                Pushed::Dropped => {
                    lagged += 1;
                    if self.shared.config.lag_policy == LagPolicy::Disconnect {
                        slow.push(id);
                    }
                }
                Pushed::Overflow => {
                    lagged += 1;
                    slow.push(id);
                }
            }
        };
        if everyone {
            for (id, conn) in &self.conns {
                push(*id, &conn.queue);
            }
        } else {
            for (id, queue) in &state.all {
                push(*id, queue);
            }
            let runs = envelope
                .event
                .backtest_id()
                .and_then(|run| state.by_run.get(run));
            for (id, queue) in runs.into_iter().flatten() {
                push(*id, queue);
            }
        }
        add(&self.shared.counters.lagged, lagged);
        bump(&self.shared.counters.events_published);
        for id in slow {
            self.close_slow(id);
        }
        pushes
    }

    fn close_slow(&mut self, id: u64) {
        if let Some(conn) = self.conns.get(&id) {
            let discarded = conn.queue.request_close(SLOW, true);
            add(&self.shared.counters.slow_client, discarded as u64);
            bump(&self.shared.counters.dropped_slow);
        }
        self.remove(id);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Register { id, queue } => {
                if self.closed {
                    queue.request_close(shutdown_close(), false);
                }
                self.conns.insert(
                    id,
                    Conn {
                        queue,
                        subs: HashMap::new(),
                    },
                );
            }
            Command::Subscribe { id, request } => self.subscribe(id, request),
            Command::Unsubscribe { id, topic } => {
                let Some(conn) = self.conns.get_mut(&id) else {
                    return;
                };
                let queue = Arc::clone(&conn.queue);
                let removed = conn.subs.remove(&topic);
                self.cancel_replay(id, &topic);
                if let Some(filter) = removed {
                    self.unlink(id, &topic, &filter);
                    self.count_subscription(&topic, -1);
                }
                queue.forget_topic(&topic);
                self.reply(id, &queue, unsubscribed_frame(&topic));
            }
            Command::Disconnect { id } => self.remove(id),
            Command::Drained { id } => self.continue_replays(id),
            Command::Shutdown { done } => {
                // Deliver what was published before the shutdown, then stop taking more.
                self.shared.inbox.close();
                while let Some(message) = self.shared.inbox.pop() {
                    let _ = self.input(message);
                }
                self.closed = true;
                for conn in self.conns.values() {
                    conn.queue.request_close(shutdown_close(), false);
                }
                let _ = done.send(());
            }
        }
    }

    fn unlink(&mut self, id: u64, topic: &Topic, filter: &Filter) {
        let Some(state) = self.topics.get_mut(topic) else {
            return;
        };
        match filter {
            Filter::All => remove_subscriber(&mut state.all, id),
            Filter::Runs(runs) => {
                for run in runs {
                    if let Some(list) = state.by_run.get_mut(run) {
                        remove_subscriber(list, id);
                        if list.is_empty() {
                            state.by_run.remove(run);
                        }
                    }
                }
            }
        }
        // A topic nobody published on and nobody subscribes to any more is forgotten,
        // so that clients cannot grow the hub by subscribing to made-up topics.
        if state.history.head() == 0 && state.all.is_empty() && state.by_run.is_empty() {
            self.topics.remove(topic);
        }
    }

    fn remove(&mut self, id: u64) {
        self.cursors.remove(&id);
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        for (topic, filter) in &conn.subs {
            self.unlink(id, topic, filter);
            self.count_subscription(topic, -1);
        }
    }

    fn count_subscription(&mut self, topic: &Topic, delta: isize) {
        let count = self.subscription_counts.entry(topic.clone()).or_insert(0);
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            self.subscription_counts.remove(topic);
        }
        let counts = self.subscription_counts.clone();
        match self.shared.subscriptions.lock() {
            Ok(mut shared) => *shared = counts,
            Err(poisoned) => *poisoned.into_inner() = counts,
        }
    }

    /// Queues a reply; a client that let replies pile up past the hard limit is closed.
    fn reply(&mut self, id: u64, queue: &ClientQueue, frame: Utf8Bytes) {
        if queue.push_reply(frame) == Pushed::Overflow {
            self.close_slow(id);
        }
    }

    fn subscribe(&mut self, id: u64, request: Subscribe) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let queue = Arc::clone(&conn.queue);
        let topic = request.topic.clone();
        let limit = self.shared.config.max_subscriptions;
        let too_many = match conn.subs.get(&topic) {
            None => conn.subs.len() >= limit,
            Some(Filter::Runs(runs)) => request
                .backtest_id
                .as_ref()
                .is_some_and(|run| !runs.contains(run) && runs.len() >= limit),
            Some(Filter::All) => false,
        };
        if too_many {
            let error = error_frame(&BadRequest::TooManySubscriptions { limit });
            self.reply(id, &queue, error);
            return;
        }
        // A subscribe while a replay of the same topic is still running ends that replay
        // (what it had left is announced as missed) before the filter changes.
        self.cancel_replay(id, &topic);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // Update the subscription: a filter-less subscribe widens to the whole topic; a
        // run filter adds a run unless the whole topic is already subscribed.
        let previous = conn.subs.remove(&topic);
        let is_new = previous.is_none();
        let mut link_all = false;
        let mut link_run = None;
        let mut unlink_old = None;
        let filter = match (previous, &request.backtest_id) {
            (Some(Filter::All), _) => Filter::All,
            (None, None) => {
                link_all = true;
                Filter::All
            }
            (Some(Filter::Runs(runs)), None) => {
                // Widen: the run subscriptions are replaced by the whole topic.
                unlink_old = Some(Filter::Runs(runs));
                link_all = true;
                Filter::All
            }
            (None, Some(run)) => {
                link_run = Some(run.clone());
                Filter::Runs(vec![run.clone()])
            }
            (Some(Filter::Runs(mut runs)), Some(run)) => {
                if !runs.contains(run) {
                    runs.push(run.clone());
                    link_run = Some(run.clone());
                }
                Filter::Runs(runs)
            }
        };
        conn.subs.insert(topic.clone(), filter);
        if let Some(old) = unlink_old {
            self.unlink(id, &topic, &old);
        }
        if is_new {
            self.count_subscription(&topic, 1);
        }
        let link = match (link_all, link_run) {
            (true, _) => Link::All,
            (false, Some(run)) => Link::Run(run),
            (false, None) => Link::Nothing,
        };
        let epoch = self.shared.epoch.clone();
        let state = self.topic(&topic);

        // Confirmation, snapshot and replay, all before the next event is delivered.
        let head = state.history.head();
        let run = request.backtest_id.as_ref();
        let mut snapshot = if request.snapshot {
            state.history.snapshot(run)
        } else {
            Vec::new()
        };
        // A `since` without `epoch` is taken to be of this epoch.
        let same_epoch = request.epoch.as_deref().is_none_or(|e| e == epoch);
        let replay = match request.since {
            Some(since) if same_epoch && since <= head => Some(state.history.replay(since, run)),
            _ => None,
        };
        if let (Some(since), Some(_)) = (request.since, &replay) {
            // With a replay, the snapshot only fills the part of the gap that is no
            // longer retained: what the client has (seq <= since) and what the replay
            // sends (seq >= the oldest retained) are left out, so no seq comes twice and
            // every frame comes in seq order.
            let oldest = state.history.oldest();
            snapshot.retain(|(seq, _)| *seq > since && *seq < oldest);
            snapshot.sort_unstable_by_key(|(seq, _)| *seq);
        }
        let recovered = request
            .since
            .map(|_| replay.as_ref().is_some_and(|r| r.missed == 0));
        if queue.push_reply(confirmation_frame(&topic, run, &epoch, head, recovered))
            == Pushed::Overflow
        {
            self.close_slow(id);
            return;
        }
        let mut lagged = 0;
        for (_, frame) in snapshot {
            if queue.push_event(&topic, frame, false) == Pushed::Dropped {
                lagged += 1;
            }
        }
        let mut cursor = None;
        if let Some(replay) = replay {
            queue.add_missed(&topic, replay.missed);
            let room = queue.free();
            // A new subscription whose replay does not fit continues it as the queue
            // drains, and joins live delivery only when the replay reaches the head.
            let paged = is_new && replay.frames.len() > room;
            let now = if paged { room } else { replay.frames.len() };
            for (_, frame) in &replay.frames[..now] {
                if queue.push_event(&topic, frame, false) == Pushed::Dropped {
                    lagged += 1;
                }
            }
            if paged {
                cursor = Some(ReplayCursor {
                    topic: topic.clone(),
                    run: request.backtest_id.clone(),
                    next: replay.frames[now].0,
                    link: Link::Nothing,
                });
            }
        }
        add(&self.shared.counters.lagged, lagged);
        match cursor {
            Some(mut cursor) => {
                cursor.link = link;
                self.cursors.entry(id).or_default().push(cursor);
                queue.request_drain_notice();
            }
            None => self.link(id, &queue, &topic, link),
        }
    }

    fn link(&mut self, id: u64, queue: &Arc<ClientQueue>, topic: &Topic, link: Link) {
        let state = self.topic(topic);
        match link {
            Link::All => state.all.push((id, Arc::clone(queue))),
            Link::Run(run) => state
                .by_run
                .entry(run)
                .or_default()
                .push((id, Arc::clone(queue))),
            Link::Nothing => {}
        }
    }

    /// Ends a running replay of `topic` for `id` at once: joins live delivery and counts
    /// what was not replayed as missed.
    fn cancel_replay(&mut self, id: u64, topic: &Topic) {
        let Some(cursors) = self.cursors.get_mut(&id) else {
            return;
        };
        let Some(index) = cursors.iter().position(|c| &c.topic == topic) else {
            return;
        };
        let cursor = cursors.swap_remove(index);
        if cursors.is_empty() {
            self.cursors.remove(&id);
        }
        let Some(queue) = self.conns.get(&id).map(|c| Arc::clone(&c.queue)) else {
            return;
        };
        let head = self.topics.get(topic).map_or(0, |s| s.history.head());
        queue.add_missed(topic, (head + 1).saturating_sub(cursor.next));
        self.link(id, &queue, topic, cursor.link);
    }

    /// Continues the replays of a connection whose queue drained.
    fn continue_replays(&mut self, id: u64) {
        let Some(cursors) = self.cursors.remove(&id) else {
            return;
        };
        let Some(queue) = self.conns.get(&id).map(|c| Arc::clone(&c.queue)) else {
            return;
        };
        let mut left = Vec::new();
        let mut lagged = 0;
        for mut cursor in cursors {
            let mut done = true;
            if let Some(state) = self.topics.get(&cursor.topic) {
                let replay = state
                    .history
                    .replay(cursor.next.saturating_sub(1), cursor.run.as_ref());
                queue.add_missed(&cursor.topic, replay.missed);
                let room = queue.free();
                if replay.frames.len() > room {
                    done = false;
                    for (_, frame) in &replay.frames[..room] {
                        if queue.push_event(&cursor.topic, frame, false) == Pushed::Dropped {
                            lagged += 1;
                        }
                    }
                    cursor.next = replay.frames[room].0;
                } else {
                    for (_, frame) in &replay.frames {
                        if queue.push_event(&cursor.topic, frame, false) == Pushed::Dropped {
                            lagged += 1;
                        }
                    }
                }
            }
            if done {
                let topic = cursor.topic.clone();
                self.link(id, &queue, &topic, cursor.link);
            } else {
                left.push(cursor);
            }
        }
        add(&self.shared.counters.lagged, lagged);
        if !left.is_empty() {
            self.cursors.insert(id, left);
            queue.request_drain_notice();
        }
    }
}

fn shutdown_close() -> CloseRequest {
    CloseRequest {
        code: 1001,
        reason: "server shutting down",
    }
}
