//! Who follows what: the connections and their subscriptions, the topics with their
//! history and subscribers, and subscribing itself (confirmation, snapshot, `since`
//! replay, and replays continued as a client's queue drains).
//!
//! Owned by the hub task, so a subscribe, its replay and the switch to live delivery
//! run between two events: the seam can neither skip nor repeat an event.

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::Grants;
use crate::server::access::Access;
use crate::server::archive::{Archive, Fetched, Joining};

mod joining;

use crate::server::catch_up::{CatchUp, Link, ReplayCursor, fill_lost_terminals, frame_bytes};
use crate::server::frames::reply_frame;
use crate::server::history::TopicHistory;
use crate::server::limits::ReplayBudget;
use crate::server::queue::{ClientQueue, Pushed};
use crate::server::shared::Shared;
use crate::server::stats::{add, bump};
use crate::server::subscriptions::joining::{covers, refusal};
use crate::wire::{
    BacktestId, BadRequest, CloseCode, Confirmation, ErrorCode, ServerMessage, Subscribe, Topic,
    Unsubscribed,
};

/// The connections following a topic (or a run on it), with their queues.
pub(crate) type Subscribers = Vec<(u64, Arc<ClientQueue>)>;

/// One topic: its numbering and history, and who follows it live.
pub(crate) struct TopicState {
    pub(crate) history: TopicHistory,
    /// The epoch of the topic's numbering when a broker numbers it (else the hub's).
    epoch: Option<String>,
    /// Subscribed to the whole topic.
    pub(crate) all: Subscribers,
    /// Subscribed to single runs of the topic.
    pub(crate) by_run: HashMap<BacktestId, Subscribers>,
}

/// What a connection follows on one topic.
enum Filter {
    All,
    Runs(Vec<BacktestId>),
}

struct Conn {
    queue: Arc<ClientQueue>,
    subs: HashMap<Topic, Filter>,
    /// What it may see: checked once per subscribe, so live delivery needs no check.
    access: Access,
    budget: ReplayBudget,
}

/// Every connection of the hub, borrowed for a broadcast.
pub(crate) struct Connections<'a>(&'a HashMap<u64, Conn>);

impl Connections<'_> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &ClientQueue)> {
        // Events without a topic reach every authenticated connection.
        self.0
            .iter()
            .filter(|(_, conn)| conn.access.admitted())
            .map(|(id, conn)| (*id, &*conn.queue))
    }
}

/// The connections, topics and replays of a hub (see the module documentation).
pub(crate) struct Subscriptions {
    shared: Arc<Shared>,
    topics: HashMap<Topic, TopicState>,
    conns: HashMap<u64, Conn>,
    cursors: HashMap<u64, Vec<ReplayCursor>>,
    /// Where events older than the history can be fetched (a gateway's broker).
    archive: Option<Arc<dyn Archive>>,
    /// Subscribes waiting for the archive, or for their topic's epoch, by connection
    /// and topic.
    fetches: HashMap<(u64, Topic), Joining>,
    /// Those of `fetches` that wait for their topic's epoch (a hub fed by a broker
    /// confirms a subscribe only once it knows the epoch the broker's events carry).
    awaiting_epoch: Vec<(u64, Topic)>,
}

impl Subscriptions {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            topics: HashMap::new(),
            conns: HashMap::new(),
            cursors: HashMap::new(),
            archive: None,
            fetches: HashMap::new(),
            awaiting_epoch: Vec::new(),
        }
    }

    /// A new connection, with its queue and what it may see.
    pub(crate) fn register(&mut self, id: u64, queue: Arc<ClientQueue>, access: Access) {
        let budget = ReplayBudget::new(&self.shared.config.rate_limits);
        self.conns.insert(
            id,
            Conn {
                queue,
                subs: HashMap::new(),
                access,
                budget,
            },
        );
    }

    /// A connection presented a valid token: what it may see from now on. Its
    /// subscriptions the grants no longer cover end, each with `unsubscribed`.
    pub(crate) fn authorize(&mut self, id: u64, grants: Arc<Grants>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.queue.command_taken();
        let lost: Vec<Topic> = conn
            .subs
            .iter()
            .filter(|(topic, filter)| !covers(&grants, topic, filter))
            .map(|(topic, _)| topic.clone())
            .collect();
        conn.access = Access::Granted(grants);
        for topic in lost {
            self.end_subscription(id, topic);
        }
    }

    /// Asks every connection to close with `code` once its queue is written.
    pub(crate) fn close_all(&self, code: CloseCode) {
        for conn in self.conns.values() {
            conn.queue.request_close(code, false);
        }
    }

    /// Calls `f` with the state of `topic` (made on first use) and every connection:
    /// one lookup of the topic per event, and no copy of its name once it exists.
    pub(crate) fn route<R>(
        &mut self,
        topic: &Topic,
        f: impl FnOnce(&mut TopicState, Connections<'_>) -> R,
    ) -> R {
        match self.topics.get_mut(topic) {
            Some(state) => f(state, Connections(&self.conns)),
            None => f(
                topic_state(&mut self.topics, &self.shared, topic),
                Connections(&self.conns),
            ),
        }
    }

    /// Tells every live subscriber of `topic` (of the whole topic, or of `run` on it) that
    /// it missed `missed` events: they were refused before the hub numbered them.
    pub(crate) fn announce_missed(&self, topic: &Topic, run: Option<&BacktestId>, missed: u64) {
        let Some(state) = self.topics.get(topic) else {
            return;
        };
        let runs = run.and_then(|run| state.by_run.get(run));
        for (_, queue) in state.all.iter().chain(runs.into_iter().flatten()) {
            queue.add_missed(topic, missed);
        }
    }

    /// The epoch of a topic a broker numbers. A new epoch after another (the broker lost
    /// its data) starts the topic anew: its history goes, and its subscribers are asked
    /// to reconnect (1001), so that they resume with `since` + their epoch, learn that
    /// it cannot be honoured, and load the state again.
    pub(crate) fn set_epoch(&mut self, topic: &Topic, epoch: String) {
        let state = topic_state(&mut self.topics, &self.shared, topic);
        if state.epoch.as_ref() == Some(&epoch) {
            return;
        }
        // A new epoch: the history is of the old one. Subscribers were given the old
        // epoch (or, before the topic had one, the hub's): they are closed with 1001 and
        // resume against the new one (told `recovered: false`).
        if state.epoch.is_some() {
            state.history = TopicHistory::new(self.shared.config.history_limits());
        }
        let subscribers = state.all.iter().chain(state.by_run.values().flatten());
        for (_, queue) in subscribers {
            queue.request_close(CloseCode::GoingAway, true);
        }
        state.epoch = Some(epoch);
        self.epoch_known(topic);
    }

    /// A connection is gone: forgets it and its subscriptions.
    pub(crate) fn remove(&mut self, id: u64) {
        self.cursors.remove(&id);
        self.fetches.retain(|(conn, _), _| *conn != id);
        self.awaiting_epoch.retain(|(conn, _)| *conn != id);
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        for (topic, filter) in &conn.subs {
            self.unlink(id, topic, filter);
            self.count(topic, -1);
        }
    }

    /// Closes a client that fell too far behind (or let replies pile up past the hard
    /// limit), discarding what it had not taken.
    pub(crate) fn close_slow(&mut self, id: u64) {
        if let Some(conn) = self.conns.get(&id) {
            let discarded = conn.queue.request_close(CloseCode::TooSlow, true);
            add(&self.shared.counters.slow_client, discarded as u64);
            bump(&self.shared.counters.dropped_slow);
        }
        self.remove(id);
    }

    /// Queues a reply; a client that let replies pile up past the hard limit is closed.
    fn reply(&mut self, id: u64, queue: &ClientQueue, message: &ServerMessage) -> bool {
        if queue.push_reply(reply_frame(message)) == Pushed::Overflow {
            self.close_slow(id);
            return false;
        }
        true
    }

    pub(crate) fn unsubscribe(&mut self, id: u64, topic: Topic) {
        if let Some(conn) = self.conns.get(&id) {
            conn.queue.command_taken();
        }
        self.end_subscription(id, topic);
    }

    /// Ends the subscription of `id` to `topic` (if any) and confirms with
    /// `unsubscribed`.
    fn end_subscription(&mut self, id: u64, topic: Topic) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let queue = Arc::clone(&conn.queue);
        let removed = conn.subs.remove(&topic);
        // A subscribe still waiting for the archive is forgotten with it.
        self.fetches.remove(&(id, topic.clone()));
        self.cancel_replay(id, &topic);
        if let Some(filter) = removed {
            self.unlink(id, &topic, &filter);
            self.count(&topic, -1);
        }
        queue.forget_topic(&topic);
        self.reply(
            id,
            &queue,
            &ServerMessage::Unsubscribed(Unsubscribed { topic }),
        );
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
        let idle = state.all.is_empty() && state.by_run.is_empty();
        if state.history.head() == 0 && state.epoch.is_none() && idle {
            self.topics.remove(topic);
        }
    }

    /// Counts a connection more (`delta` 1) or less (-1) on `topic`, for `stats()`.
    fn count(&self, topic: &Topic, delta: isize) {
        let mut counts = self
            .shared
            .subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(topic.clone()).or_insert(0);
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            counts.remove(topic);
        }
    }

    /// Subscribes connection `id`: updates its filter, then confirms, sends the snapshot
    /// and the replay asked for, and joins live delivery (at once, or when a replay too
    /// long for the queue has been sent).
    pub(crate) fn subscribe(&mut self, id: u64, request: Subscribe) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.queue.command_taken();
        let fetching = self.fetches.contains_key(&(id, request.topic.clone()));
        if let Some(refusal) = refusal(&self.shared, conn, &request) {
            let queue = Arc::clone(&conn.queue);
            self.reply(id, &queue, &refusal);
            return;
        }
        if fetching {
            let text = format!(
                "a replay of topic {} is still being fetched: subscribe again once it is confirmed",
                request.topic
            );
            let refusal = ServerMessage::error(ErrorCode::BadRequest, text);
            let queue = Arc::clone(&conn.queue);
            self.reply(id, &queue, &refusal);
            return;
        }
        let Some((queue, link, is_new)) = self.update_filter(id, &request) else {
            return;
        };
        let joining = Joining {
            request,
            queue,
            link,
            is_new,
        };
        self.proceed(id, joining);
    }

    /// Confirms a subscribe, sends what it asked for before live delivery (what an
    /// archive `fetched`, the snapshot, the replay), and joins live delivery (at once, or
    /// when a replay too long for the queue has been sent).
    fn catch_up(&mut self, id: u64, joining: Joining, fetched: Option<Fetched>) {
        let Joining {
            request,
            queue,
            link,
            is_new,
        } = joining;
        let topic = &request.topic;
        let state = topic_state(&mut self.topics, &self.shared, topic);
        let epoch = state.epoch.as_ref().unwrap_or(&self.shared.epoch);
        // After a fetch, the history replays from where the fetched part ends.
        let mut from_history = request.clone();
        if let Some(fetched) = &fetched {
            from_history.since = Some(fetched.until.saturating_sub(1));
        }
        let plan = CatchUp::plan(&state.history, &from_history, epoch);
        let recovered = match &fetched {
            Some(fetched) => Some(fetched.complete && plan.recovered == Some(true)),
            None => plan.recovered,
        };
        let confirmation = ServerMessage::SubscriptionConfirmed(Confirmation {
            topic: topic.clone(),
            backtest_id: request.backtest_id.clone(),
            epoch: Some(epoch.clone()),
            seq: Some(state.history.head()),
            recovered,
        });
        if queue.push_reply(reply_frame(&confirmation)) == Pushed::Overflow {
            self.close_slow(id);
            return;
        }
        if request.since.is_some() {
            let counters = &self.shared.counters;
            bump(match fetched {
                Some(_) => &counters.replays_from_archive,
                None => &counters.replays_from_history,
            });
        }
        let (mut lagged, mut bytes) = (0, 0);
        if let Some(fetched) = fetched {
            (lagged, bytes) = fetched.send(&queue, &request);
        }
        let sent = plan.send(&queue, &from_history, is_new);
        add(&self.shared.counters.lagged, lagged + sent.lagged);
        self.spend(id, bytes + sent.bytes);
        match sent.cursor {
            Some(mut cursor) => {
                cursor.link = link;
                self.cursors.entry(id).or_default().push(cursor);
                queue.request_drain_notice();
            }
            None => self.link(id, &queue, topic, link),
        }
    }

    /// Checks the subscription limit and records the connection's new filter on the
    /// topic; the connection's queue, where it joins live delivery, and whether the
    /// topic is new to it. `None` when the subscribe was refused (and answered) or the
    /// connection is gone.
    fn update_filter(
        &mut self,
        id: u64,
        request: &Subscribe,
    ) -> Option<(Arc<ClientQueue>, Link, bool)> {
        let conn = self.conns.get_mut(&id)?;
        let queue = Arc::clone(&conn.queue);
        let topic = &request.topic;
        let limit = self.shared.config.max_subscriptions;
        let too_many = match conn.subs.get(topic) {
            None => conn.subs.len() >= limit,
            Some(Filter::Runs(runs)) => request
                .backtest_id
                .as_ref()
                .is_some_and(|run| !runs.contains(run) && runs.len() >= limit),
            Some(Filter::All) => false,
        };
        if too_many {
            let error = BadRequest::TooManySubscriptions { limit };
            self.reply(
                id,
                &queue,
                &ServerMessage::error(ErrorCode::BadRequest, error.to_string()),
            );
            return None;
        }
        // A subscribe while a replay of the same topic is still running ends that replay
        // (what it had left is announced as missed) before the filter changes.
        self.cancel_replay(id, topic);
        let conn = self.conns.get_mut(&id)?;
        // A filter-less subscribe widens to the whole topic; a run filter adds a run
        // unless the whole topic is already subscribed.
        let previous = conn.subs.remove(topic);
        let is_new = previous.is_none();
        let (filter, link, unlink_old) = match (previous, &request.backtest_id) {
            (Some(Filter::All), _) => (Filter::All, Link::Nothing, None),
            (None, None) => (Filter::All, Link::All, None),
            // Widen: the run subscriptions are replaced by the whole topic.
            (Some(Filter::Runs(runs)), None) => (Filter::All, Link::All, Some(Filter::Runs(runs))),
            (None, Some(run)) => (
                Filter::Runs(vec![run.clone()]),
                Link::Run(run.clone()),
                None,
            ),
            (Some(Filter::Runs(mut runs)), Some(run)) => {
                let link = if runs.contains(run) {
                    Link::Nothing
                } else {
                    runs.push(run.clone());
                    Link::Run(run.clone())
                };
                (Filter::Runs(runs), link, None)
            }
        };
        conn.subs.insert(topic.clone(), filter);
        if let Some(old) = unlink_old {
            self.unlink(id, topic, &old);
        }
        if is_new {
            self.count(topic, 1);
        }
        Some((queue, link, is_new))
    }

    fn link(&mut self, id: u64, queue: &Arc<ClientQueue>, topic: &Topic, link: Link) {
        let state = topic_state(&mut self.topics, &self.shared, topic);
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

    /// Counts replayed bytes against the connection's budget.
    fn spend(&mut self, id: u64, bytes: usize) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.budget.spend(bytes);
        }
    }

    /// Continues the replays of a connection whose queue drained.
    pub(crate) fn continue_replays(&mut self, id: u64) {
        let Some(cursors) = self.cursors.remove(&id) else {
            return;
        };
        let Some(queue) = self.conns.get(&id).map(|c| Arc::clone(&c.queue)) else {
            return;
        };
        let mut left = Vec::new();
        let mut lagged = 0;
        let mut bytes = 0;
        for mut cursor in cursors {
            let mut done = true;
            if let Some(state) = self.topics.get(&cursor.topic) {
                let history = &state.history;
                let replay = history.replay(cursor.next.saturating_sub(1), cursor.run.as_ref());
                lagged += fill_lost_terminals(&queue, &cursor, history, replay.missed);
                let room = queue.free(&cursor.topic);
                let now = replay.frames.len().min(room);
                bytes += frame_bytes(&replay.frames[..now]);
                let frames = replay.frames[..now].iter().map(|(_, f)| *f);
                lagged += queue.push_replayed(&cursor.topic, frames);
                if now < replay.frames.len() {
                    done = false;
                    cursor.next = replay.frames[now].0;
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
        self.spend(id, bytes);
        if !left.is_empty() {
            self.cursors.insert(id, left);
            queue.request_drain_notice();
        }
    }
}

/// The state of `topic`, made on first use.
fn topic_state<'a>(
    topics: &'a mut HashMap<Topic, TopicState>,
    shared: &Shared,
    topic: &Topic,
) -> &'a mut TopicState {
    topics.entry(topic.clone()).or_insert_with(|| TopicState {
        history: TopicHistory::new(shared.config.history_limits()),
        epoch: None,
        all: Vec::new(),
        by_run: HashMap::new(),
    })
}

fn remove_subscriber(list: &mut Subscribers, id: u64) {
    if let Some(i) = list.iter().position(|(c, _)| *c == id) {
        list.swap_remove(i);
    }
}
