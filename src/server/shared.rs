//! What the hub's handles, its task, its sinks and its connections share: the
//! configuration, the publish inbox, the counters, and the messages they send the task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::server::config::ServerConfig;
use crate::server::inbox::{Inbox, Refused};
use crate::server::queue::ClientQueue;
use crate::server::stats::{Counters, bump};
use crate::sink::SinkError;
use crate::wire::{Envelope, Subscribe, Topic};

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
    /// Connections subscribed to each topic, as the hub task last published it.
    pub(crate) subscriptions: Mutex<BTreeMap<Topic, usize>>,
    next_id: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    /// Notified whenever the number of connections drops to zero.
    pub(crate) no_connections: Notify,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Self {
        Self {
            inbox: Inbox::new(config.publish_queue_capacity),
            config,
            epoch: uuid::Uuid::new_v4().simple().to_string(),
            counters: Counters::default(),
            subscriptions: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            no_connections: Notify::new(),
        }
    }

    /// Hands an input to the hub task without waiting.
    #[inline]
    pub(crate) fn try_input(&self, message: Input) -> Result<(), SinkError> {
        match self.inbox.push(message) {
            Ok(()) => Ok(()),
            Err(Refused::Full(_)) => {
                bump(&self.counters.publish_queue_full);
                Err(SinkError::Full {
                    capacity: self.inbox.capacity(),
                })
            }
            Err(Refused::Closed(_)) => Err(SinkError::Closed),
        }
    }

    /// Waits (blocking the thread) until the hub handed everything published before to
    /// the connections.
    pub(crate) fn flush_input(&self) -> Result<(), SinkError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut message = Input::Flush(tx);
        loop {
            match self.inbox.push(message) {
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
