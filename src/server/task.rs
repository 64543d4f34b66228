//! The hub task: numbers each published event on its topic, serializes it once into a
//! shared frame, records it, and pushes the frame into the queue of every connection
//! that follows it; between events, it carries out the connections' commands.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::server::archive::Fetched;
use crate::server::config::LagPolicy;
use crate::server::frames::FrameWriter;
use crate::server::queue::{ClientQueue, Pushed};
use crate::server::shared::{Command, Input, Shared};
use crate::server::stats::{add, bump};
use crate::server::subscriptions::Subscriptions;
use crate::wire::{CloseCode, Envelope, Topic};

/// The hub's single task (see the module documentation).
pub(crate) struct HubTask {
    shared: Arc<Shared>,
    subs: Subscriptions,
    /// After a shutdown: new connections are closed at once.
    closed: bool,
    frames: FrameWriter,
}

impl HubTask {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            subs: Subscriptions::new(Arc::clone(&shared)),
            shared,
            closed: false,
            frames: FrameWriter::new(),
        }
    }

    /// Runs until every hub handle is gone.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        /// Work (events plus pushes to connections) done before the task yields to the
        /// connections on its worker: bounds how long one poll of the hub runs (256
        /// events to up to 1,000 clients, 52 to 5,000: a few milliseconds). Under a burst
        /// each connection then writes a larger batch per system call: with 16,384 (16
        /// events a batch at 1,000 clients) the server spent about twice the CPU per
        /// frame, mostly in the kernel's per-send work (the fan-out bench's S3). A paced
        /// stream is unaffected: its events are delivered one by one as they come.
        const BUDGET: usize = 262_144;
        /// Events handled at most per poll. (1,024 gains nothing at 1,000 clients, and
        /// made the soak's publishers three times faster, a load under which some paging
        /// replays ended without their runs' terminal events: to be investigated before
        /// raising it.)
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
                // Refusals recorded before this event was queued are announced before
                // it is delivered (one atomic load when there are none).
                self.announce_refusals();
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

    /// Tells the subscribers of each event the publish queue refused that they missed it
    /// (a `lagged` notice before the next event of its topic they get).
    fn announce_refusals(&mut self) {
        if let Some(refusals) = self.shared.take_refusals() {
            for ((topic, run), missed) in refusals {
                self.subs.announce_missed(&topic, run.as_ref(), missed);
            }
        }
    }

    /// Handles one input; returns a measure of the work done (events + pushes).
    fn input(&mut self, message: Input) -> usize {
        match message {
            Input::Publish(envelope) => 1 + self.deliver(&envelope, false, None),
            Input::Broadcast(envelope) => 1 + self.deliver(&envelope, true, None),
            Input::Numbered(envelope, seq) => 1 + self.deliver(&envelope, false, Some(seq)),
            Input::Missed { topic, run, missed } => {
                self.subs.announce_missed(&topic, run.as_ref(), missed);
                add(&self.shared.counters.lagged, missed);
                1
            }
            Input::Epoch { topic, epoch } => {
                self.subs.set_epoch(&topic, epoch);
                1
            }
            Input::Flush(done) => {
                let _ = done.try_send(());
                1
            }
        }
    }

    /// Numbers (or takes the broker's `given` seq), serializes, records and fans out one
    /// event (to `everyone`, or to the subscribers of its topic and run); returns how
    /// many connections it was pushed to.
    fn deliver(&mut self, envelope: &Envelope, everyone: bool, given: Option<u64>) -> usize {
        let frames = &mut self.frames;
        let close_laggards = self.shared.config.lag_policy == LagPolicy::Disconnect;
        let mut fan_out = FanOut::new(
            &envelope.topic,
            envelope.event.is_terminal(),
            close_laggards,
        );
        let delivered = self.subs.route(&envelope.topic, |state, connections| {
            let seq = match given {
                // A broker's event read twice (a gateway reconnected): already delivered.
                Some(seq) if seq <= state.history.head() => return false,
                Some(seq) => {
                    // Seqs the hub never got (a gateway starting on a stream's tail, or
                    // entries trimmed before it read them) are announced to the topic's
                    // subscribers, never silently skipped.
                    let gap = seq - state.history.head() - 1;
                    if gap > 0 {
                        let subscribers = state.all.iter().chain(state.by_run.values().flatten());
                        for (_, queue) in subscribers {
                            queue.add_missed(&envelope.topic, gap);
                        }
                    }
                    state.history.advance_to(seq)
                }
                None => state.history.next_seq(),
            };
            let frame = frames.frame(envelope, seq);
            state.history.record(seq, &envelope.event, &frame);
            if everyone {
                for (id, queue) in connections.iter() {
                    fan_out.push(id, queue, &frame);
                }
                return true;
            }
            for (id, queue) in &state.all {
                fan_out.push(*id, queue, &frame);
            }
            let runs = envelope
                .event
                .backtest_id()
                .and_then(|run| state.by_run.get(run));
            for (id, queue) in runs.into_iter().flatten() {
                fan_out.push(*id, queue, &frame);
            }
            true
        });
        if !delivered {
            return 0;
        }
        add(&self.shared.counters.lagged, fan_out.lagged);
        bump(&self.shared.counters.events_published);
        for id in fan_out.slow {
            self.subs.close_slow(id);
        }
        fan_out.pushes
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Register { id, queue, access } => {
                if self.closed {
                    queue.request_close(CloseCode::GoingAway, false);
                }
                self.subs.register(id, queue, access);
            }
            Command::Authorize { id, grants } => self.subs.authorize(id, grants),
            Command::Subscribe { id, request } => self.subs.subscribe(id, request),
            Command::Unsubscribe { id, topic } => self.subs.unsubscribe(id, topic),
            Command::Disconnect { id, slot } => {
                self.subs.remove(id);
                drop(slot);
            }
            Command::Drained { id } => self.subs.continue_replays(id),
            Command::SetArchive(archive) => self.subs.set_archive(archive),
            Command::Archived {
                id,
                topic,
                events,
                missed,
                until,
                complete,
            } => {
                let frames = events
                    .into_iter()
                    .map(|(seq, event)| {
                        let run = event.backtest_id().cloned();
                        let frame = self.frames.frame(&Envelope::new(topic.clone(), event), seq);
                        (seq, run, frame)
                    })
                    .collect();
                let fetched = Fetched {
                    frames,
                    missed,
                    until,
                    complete,
                };
                self.subs.archived(id, &topic, fetched);
            }
            Command::Shutdown { done } => {
                // Deliver what was published before the shutdown, then stop taking more.
                self.shared.inbox.close();
                while let Some(message) = self.shared.inbox.pop() {
                    self.announce_refusals();
                    let _ = self.input(message);
                }
                self.closed = true;
                self.subs.close_all(CloseCode::GoingAway);
                let _ = done.send(());
            }
        }
    }
}

/// The push of one event frame to its connections, and what did not fit.
struct FanOut<'a> {
    topic: &'a Topic,
    terminal: bool,
    /// Close a client whose queue overflows ([`LagPolicy::Disconnect`]).
    close_laggards: bool,
    pushes: usize,
    lagged: u64,
    /// Connections to close as too slow.
    slow: Vec<u64>,
}

impl<'a> FanOut<'a> {
    fn new(topic: &'a Topic, terminal: bool, close_laggards: bool) -> Self {
        Self {
            topic,
            terminal,
            close_laggards,
            pushes: 0,
            lagged: 0,
            slow: Vec::new(),
        }
    }

    /// Pushes the frame into one connection's queue. A frame that does not fit is
    /// counted (and announced to the client with `lagged`); a terminal event that does
    /// not fit even past the capacity closes the client.
    #[inline]
    fn push(&mut self, id: u64, queue: &ClientQueue, frame: &Utf8Bytes) {
        self.pushes += 1;
        match queue.push_event(self.topic, frame, self.terminal) {
            Pushed::Queued | Pushed::Closed => {}
            Pushed::Dropped => {
                self.lagged += 1;
                if self.close_laggards {
                    self.slow.push(id);
                }
            }
            Pushed::Overflow => {
                self.lagged += 1;
                self.slow.push(id);
            }
        }
    }
}
