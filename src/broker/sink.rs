//! [`RedisSink`]: a [`ProgressSink`] that writes events to Redis Streams from a
//! background thread, never waiting on the network when publishing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::broker::config::RedisSinkConfig;
use crate::broker::queue::Queue;
use crate::broker::writer;
use crate::sink::{ProgressSink, SinkError};
use crate::wire::Envelope;

/// Why a [`RedisSink`] cannot start or flush.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSinkError {
    /// The URL is no Redis URL (`redis://host:port/db`, `rediss://...`).
    #[error("invalid Redis URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The writer thread could not start.
    #[error("cannot start the Redis writer: {0}")]
    Start(#[source] std::io::Error),
    /// Events were still waiting when the time to flush ran out (Redis is unreachable
    /// or slow).
    #[error("{waiting} events not yet written to Redis")]
    NotFlushed {
        /// Events taken but not written.
        waiting: u64,
    },
}

/// What a [`RedisSink`] has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisSinkStats {
    /// Events taken into the queue.
    pub accepted: u64,
    /// Events written to Redis.
    pub written: u64,
    /// Progress events refused because the queue was three quarters full.
    pub refused_progress: u64,
    /// Starts and log lines refused because the queue was full.
    pub refused_other: u64,
    /// Terminal events refused after waiting `terminal_wait` for room (the publisher
    /// was told): 0 unless Redis was unreachable for long.
    pub terminal_refused: u64,
    /// Loss markers written (each announces the refused events of one topic and run).
    pub loss_markers: u64,
    /// Whether the last call to Redis succeeded.
    pub connected: bool,
    /// Calls to Redis that failed (each is retried).
    pub failures: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// What the writer reports, shared with the sink.
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    pub(crate) written: AtomicU64,
    pub(crate) markers: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) failures: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

struct Inner {
    queue: Arc<Queue>,
    state: Arc<WriterState>,
    config: RedisSinkConfig,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer writes what is queued (bounded in time), then stops.
        self.queue.closed.store(true, Ordering::Release);
        self.queue.ready.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// A [`ProgressSink`] that writes each event to its topic's Redis stream, numbered there
/// (see [the module](crate::broker)). Cheap to clone; the writer stops (after writing
/// what is queued, for up to `terminal_wait`) when the last clone is dropped.
///
/// Publishing never waits on the network: events go into a bounded queue that a
/// background thread writes in batches, one script call per topic and batch. While
/// Redis is unreachable the writer retries with backoff and the queue holds what comes;
/// when it is full, progress gives way first, then log lines and starts (counted in
/// [`stats`](Self::stats), and announced in the stream with a loss marker), and a
/// terminal event waits up to `terminal_wait` for room, then fails the publish.
#[derive(Clone)]
pub struct RedisSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// A sink writing to the Redis at `url` with the default configuration. Redis need
    /// not be up yet: the writer connects (and reconnects) by itself.
    pub fn connect(url: &str) -> Result<Self, RedisSinkError> {
        Self::connect_with_config(url, RedisSinkConfig::default())
    }

    /// A sink writing to the Redis at `url` with `config`.
    pub fn connect_with_config(url: &str, config: RedisSinkConfig) -> Result<Self, RedisSinkError> {
        let client = ::redis::Client::open(url).map_err(|e| RedisSinkError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let queue = Arc::new(Queue::new(config.queue_capacity, config.terminal_reserve));
        let state = Arc::new(WriterState::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RedisSinkError::Start)?;
        let writer = writer::Writer::new(client, Arc::clone(&queue), Arc::clone(&state), &config);
        let thread = std::thread::Builder::new()
            .name("redis-sink".into())
            .spawn(move || runtime.block_on(writer.run()))
            .map_err(RedisSinkError::Start)?;
        Ok(Self {
            inner: Arc::new(Inner {
                queue,
                state,
                config,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// What the sink has done so far.
    pub fn stats(&self) -> RedisSinkStats {
        let queue = &self.inner.queue;
        let state = &self.inner.state;
        RedisSinkStats {
            accepted: queue.accepted.load(Ordering::Acquire),
            written: state.written.load(Ordering::Acquire),
            refused_progress: queue.refused.progress.load(Ordering::Relaxed),
            refused_other: queue.refused.other.load(Ordering::Relaxed),
            terminal_refused: queue.refused.terminal.load(Ordering::Relaxed),
            loss_markers: state.markers.load(Ordering::Relaxed),
            connected: state.connected.load(Ordering::Relaxed),
            failures: state.failures.load(Ordering::Relaxed),
            last_error: state
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Waits until every event taken so far is written, for up to `timeout`.
    pub fn flush_within(&self, timeout: Duration) -> Result<(), RedisSinkError> {
        let target = self.inner.queue.accepted.load(Ordering::Acquire);
        let deadline = Instant::now() + timeout;
        loop {
            let written = self.inner.state.written.load(Ordering::Acquire);
            if written >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RedisSinkError::NotFlushed {
                    waiting: target - written,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A terminal event that found even the reserve full: waits for room, bounded.
    #[cold]
    fn wait_for_room(&self, mut envelope: Envelope) -> Result<(), SinkError> {
        let queue = &self.inner.queue;
        let deadline = Instant::now() + self.inner.config.terminal_wait;
        loop {
            std::thread::sleep(Duration::from_millis(1));
            match queue.push(envelope) {
                Ok(()) => return Ok(()),
                Err(back) if Instant::now() >= deadline => {
                    queue.refuse(&back);
                    return Err(self.full());
                }
                Err(back) => envelope = back,
            }
        }
    }

    fn full(&self) -> SinkError {
        SinkError::Full {
            capacity: self.inner.config.queue_capacity,
        }
    }
}

impl ProgressSink for RedisSink {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        let queue = &self.inner.queue;
        if queue.closed.load(Ordering::Relaxed) {
            return Err(SinkError::Closed);
        }
        match queue.push(envelope.clone()) {
            Ok(()) => Ok(()),
            Err(back) if back.event.is_terminal() => self.wait_for_room(back),
            Err(back) => {
                queue.refuse(&back);
                Err(self.full())
            }
        }
    }

    /// Waits (up to 30 s) until everything published so far is written to Redis.
    fn flush(&self) -> Result<(), SinkError> {
        self.flush_within(Duration::from_secs(30))
            .map_err(|e| SinkError::Other(Box::new(e)))
    }
}
