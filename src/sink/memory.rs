//! In-process sinks: a bounded recorder ([`MemorySink`]) and a bounded channel
//! ([`channel`]), for tests and in-process user interfaces.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use crate::sink::{ProgressSink, SinkError};
use crate::wire::{Envelope, Event};

/// Records published events in memory, keeping the most recent `capacity` of them.
///
/// Cloning gives another handle to the same recording, so a test can keep one handle
/// while a streamer owns another. When full, the oldest event is evicted and counted
/// ([`MemorySink::evicted`]).
///
/// ```
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
/// use backtest_stream::wire::EventKind;
///
/// let memory = MemorySink::new();
/// let run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 100);
/// run.complete(Default::default());
/// let kinds: Vec<EventKind> = memory.events().iter().map(|e| e.kind()).collect();
/// assert_eq!(kinds, [EventKind::BacktestStart, EventKind::BacktestComplete]);
/// ```
#[derive(Debug, Clone)]
pub struct MemorySink {
    inner: Arc<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    capacity: usize,
    events: Mutex<VecDeque<Envelope>>,
    evicted: AtomicU64,
}

impl Default for MemorySink {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySink {
    /// The capacity of [`MemorySink::new`]: one million events.
    pub const DEFAULT_CAPACITY: usize = 1 << 20;

    /// A recorder keeping up to [`MemorySink::DEFAULT_CAPACITY`] events.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A recorder keeping up to `capacity` events (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new(MemoryInner {
                capacity,
                events: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
                evicted: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Envelope>> {
        // A panic while holding the lock cannot leave the deque inconsistent.
        self.inner
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The recorded envelopes, oldest first.
    pub fn envelopes(&self) -> Vec<Envelope> {
        self.lock().iter().cloned().collect()
    }

    /// The recorded events, oldest first.
    pub fn events(&self) -> Vec<Arc<Event>> {
        self.lock().iter().map(|e| Arc::clone(&e.event)).collect()
    }

    /// Removes and returns everything recorded.
    pub fn take(&self) -> Vec<Envelope> {
        self.lock().drain(..).collect()
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The maximum number of events held.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How many old events were evicted to make room for new ones.
    pub fn evicted(&self) -> u64 {
        self.inner.evicted.load(Ordering::Relaxed)
    }
}

impl ProgressSink for MemorySink {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        let mut events = self.lock();
        if events.len() == self.inner.capacity {
            events.pop_front();
            self.inner.evicted.fetch_add(1, Ordering::Relaxed);
        }
        events.push_back(envelope.clone());
        Ok(())
    }
}

/// The sending half of [`channel`]: a sink that never blocks.
///
/// When the channel is full the event is dropped, counted ([`ChannelSink::dropped`]) and
/// reported as [`SinkError::Full`]; when the receiver is gone, as [`SinkError::Closed`].
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: mpsc::SyncSender<Envelope>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
}

/// A bounded channel whose sending half is a sink: events published on the sink arrive
/// on the returned [`std::sync::mpsc::Receiver`], for example in a UI thread.
///
/// ```
/// use backtest_stream::sink::channel;
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
///
/// let (sink, events) = channel(1024);
/// std::thread::spawn(move || {
///     let run = ProgressStreamer::new(sink).start(RunInfo::default(), 10);
///     run.complete(Default::default());
/// });
/// let received: Vec<_> = events.iter().collect(); // ends when the run's sink is dropped
/// assert_eq!(received.len(), 2);
/// ```
pub fn channel(capacity: usize) -> (ChannelSink, mpsc::Receiver<Envelope>) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::sync_channel(capacity);
    (
        ChannelSink {
            tx,
            capacity,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

impl ChannelSink {
    /// How many events were dropped because the channel was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl ProgressSink for ChannelSink {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        self.tx.try_send(envelope.clone()).map_err(|e| {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            match e {
                mpsc::TrySendError::Full(_) => SinkError::Full {
                    capacity: self.capacity,
                },
                mpsc::TrySendError::Disconnected(_) => SinkError::Closed,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{BacktestError, BacktestId, Timestamp, Topic};

    fn envelope(n: u32) -> Envelope {
        Envelope::new(
            Topic::BACKTEST,
            Event::BacktestError(BacktestError {
                backtest_id: BacktestId::new(format!("run-{n}")).unwrap(),
                error: String::new(),
                error_details: String::new(),
                timestamp: Timestamp::now(),
            }),
        )
    }

    #[test]
    fn memory_sink_evicts_the_oldest_and_counts() {
        let sink = MemorySink::with_capacity(2);
        for n in 0..5 {
            sink.publish(&envelope(n)).unwrap();
        }
        assert_eq!(sink.evicted(), 3);
        let ids: Vec<String> = sink
            .events()
            .iter()
            .map(|e| e.backtest_id().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["run-3", "run-4"]);
        assert_eq!(sink.take().len(), 2);
        assert!(sink.is_empty());
    }

    #[test]
    fn channel_sink_reports_full_and_closed() {
        let (sink, rx) = channel(1);
        sink.publish(&envelope(1)).unwrap();
        assert!(matches!(
            sink.publish(&envelope(2)),
            Err(SinkError::Full { capacity: 1 })
        ));
        let got = rx.recv().unwrap();
        assert_eq!(got.event.backtest_id().unwrap(), "run-1");
        drop(rx);
        assert!(matches!(sink.publish(&envelope(3)), Err(SinkError::Closed)));
        assert_eq!(sink.dropped(), 2);
    }
}
