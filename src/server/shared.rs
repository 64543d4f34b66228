//! What the hub's handles, its task, its sinks and its connections share: the
//! configuration, the publish inbox, the counters, and the messages they send the task.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use crate::auth::Grants;
use crate::server::access::Access;
use crate::server::archive::Archive;
use crate::server::config::ServerConfig;
use crate::server::inbox::{Inbox, Refused};
use crate::server::limits::{AddressLimiter, SubjectCounts};
use crate::server::queue::ClientQueue;
use crate::server::stats::{Counters, bump};
use crate::sink::SinkError;
use crate::wire::{BacktestId, Envelope, Event, Subscribe, Topic};

/// What publishers send to the hub task.
pub(crate) enum Input {
    /// An event for the subscribers of its topic.
    Publish(Envelope),
    /// An event for every connection.
    Broadcast(Envelope),
    /// An event numbered elsewhere (by a broker), delivered with this seq; one at or
    /// below its topic's head is a duplicate, and skipped. (This and the next two are
    /// made only by the broker's gateway, feature `redis`.)
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Numbered(Envelope, u64),
    /// Events lost before they were numbered (a broker's loss marker): announced to
    /// the subscribers of the topic (and run) as missed.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Missed {
        topic: Topic,
        run: Option<BacktestId>,
        missed: u64,
    },
    /// The epoch of a topic's numbering (a broker's). A change means the broker lost
    /// its data: the topic starts anew and its subscribers are asked to reconnect.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Epoch { topic: Topic, epoch: String },
    /// Answer once everything before has been handed to the connections.
    Flush(std::sync::mpsc::SyncSender<()>),
}

impl Input {
    /// The event of an event input.
    fn envelope(&self) -> Option<&Envelope> {
        match self {
            Input::Publish(envelope)
            | Input::Broadcast(envelope)
            | Input::Numbered(envelope, _) => Some(envelope),
            Input::Flush(_) | Input::Missed { .. } | Input::Epoch { .. } => None,
        }
    }
}

/// Events refused before the hub numbered them, per topic and run: the hub tells the
/// subscribers they missed them.
pub(crate) type Refusals = HashMap<(Topic, Option<BacktestId>), u64>;

/// What connections (and shutdown) ask of the hub task.
pub(crate) enum Command {
    Register {
        id: u64,
        queue: Arc<ClientQueue>,
        access: Access,
    },
    /// The connection presented a valid token (first, or a refresh).
    Authorize {
        id: u64,
        grants: Arc<Grants>,
    },
    Subscribe {
        id: u64,
        request: Subscribe,
    },
    Unsubscribe {
        id: u64,
        topic: Topic,
    },
    /// The connection ended. Its slot is released once the hub has forgotten it and its
    /// subscriptions, so `stats()` never shows subscriptions of no connection.
    Disconnect {
        id: u64,
        slot: Option<Slot>,
    },
    /// The connection's queue is empty: continue its replay.
    Drained {
        id: u64,
    },
    /// Where events older than the history are fetched (a gateway's broker).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    SetArchive(Arc<dyn Archive>),
    /// The archive's answer to a fetch for connection `id`: the events of seqs
    /// `[from, until)` it found, and how many of the range it misses.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Archived {
        id: u64,
        topic: Topic,
        events: Vec<(u64, Event)>,
        missed: u64,
        until: u64,
        complete: bool,
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
    /// Connections subscribed to each topic, as the hub task last published it.
    pub(crate) subscriptions: Mutex<BTreeMap<Topic, usize>>,
    next_id: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    /// Notified whenever the number of connections drops to zero.
    pub(crate) no_connections: Notify,
    /// Events refused by a full publish queue, not yet announced to their subscribers.
    refusals: Mutex<Refusals>,
    /// Whether `refusals` holds anything (read by the hub without taking the lock).
    refused: AtomicBool,
    /// Connections per subject.
    pub(crate) subjects: SubjectCounts,
    /// Upgrades per client address, when limited.
    pub(crate) upgrades: Option<AddressLimiter>,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Self {
        let upgrades = config
            .rate_limits
            .upgrades_per_minute_per_address
            .map(AddressLimiter::new);
        Self {
            inbox: Inbox::new(config.publish_queue_capacity, config.terminal_reserve),
            config,
            epoch: uuid::Uuid::new_v4().simple().to_string(),
            counters: Counters::default(),
            subscriptions: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            no_connections: Notify::new(),
            refusals: Mutex::new(HashMap::new()),
            refused: AtomicBool::new(false),
            subjects: SubjectCounts::default(),
            upgrades,
        }
    }

    /// Hands an input to the hub task. An event waits for nothing when the publish queue
    /// has room; a full queue refuses it (counted, and announced to its topic's
    /// subscribers), except a run's terminal event, which takes the queue's reserve and,
    /// failing that, waits up to `terminal_wait` for room.
    #[inline]
    pub(crate) fn try_input(&self, message: Input) -> Result<(), SinkError> {
        let urgent = message
            .envelope()
            .is_some_and(|envelope| envelope.event.is_terminal());
        match self.inbox.push(message, urgent) {
            Ok(()) => Ok(()),
            Err(Refused::Full(message)) if urgent => self.wait_for_room(message),
            Err(Refused::Full(message)) => Err(self.refuse(&message)),
            Err(Refused::Closed(_)) => Err(SinkError::Closed),
        }
    }

    /// A terminal event that found even the reserve full: waits for room, bounded.
    #[cold]
    fn wait_for_room(&self, mut message: Input) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.config.terminal_wait;
        loop {
            std::thread::sleep(Duration::from_micros(100));
            match self.inbox.push(message, true) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed(_)) => return Err(SinkError::Closed),
                Err(Refused::Full(back)) if Instant::now() >= deadline => {
                    bump(&self.counters.terminal_refused);
                    return Err(self.refuse(&back));
                }
                Err(Refused::Full(back)) => message = back,
            }
        }
    }

    /// Counts a refused event for its topic and run, for the hub to announce.
    #[cold]
    fn refuse(&self, message: &Input) -> SinkError {
        bump(&self.counters.publish_queue_full);
        if let Some(envelope) = message.envelope() {
            let key = (
                envelope.topic.clone(),
                envelope.event.backtest_id().cloned(),
            );
            *self.lock_refusals().entry(key).or_insert(0) += 1;
            self.refused.store(true, Ordering::Release);
        }
        SinkError::Full {
            capacity: self.inbox.capacity(),
        }
    }

    /// The refusals not yet announced, if any; they are the caller's to announce.
    #[inline]
    pub(crate) fn take_refusals(&self) -> Option<Refusals> {
        if !self.refused.load(Ordering::Acquire) || !self.refused.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(std::mem::take(&mut *self.lock_refusals()))
    }

    fn lock_refusals(&self) -> MutexGuard<'_, Refusals> {
        self.refusals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits (blocking the thread) until the hub handed everything published before to
    /// the connections.
    pub(crate) fn flush_input(&self) -> Result<(), SinkError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut message = Input::Flush(tx);
        loop {
            match self.inbox.push(message, false) {
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
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(SinkError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the hub did not take the published events within 60 s",
                )))
            }
        }
    }

    /// Takes a connection slot, or `None` when `max_connections` are open (counted).
    pub(crate) fn take_slot(self: &Arc<Self>) -> Option<Slot> {
        let max = self.config.max_connections as u64;
        let counter = &self.counters.connections;
        let mut current = counter.load(Ordering::Acquire);
        loop {
            if current >= max {
                bump(&self.counters.refused_max_connections);
                return None;
            }
            match counter.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Slot {
                        shared: Arc::clone(self),
                        id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Whether a graceful shutdown has begun.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// How long a flush waits for the hub at most.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection slot, counted in `connections` until it is dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    pub(crate) id: u64,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("id", &self.id).finish()
    }
}

impl Drop for Slot {
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
