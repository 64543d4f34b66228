//! [`FanOut`]: several sinks of any types, with the failures of each counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sink::{ProgressSink, SinkError, collect_failures};
use crate::wire::Envelope;

/// Delivers every event to several sinks and counts the failures of each.
///
/// One failing sink never keeps the others from getting the event. Unlike a plain
/// `Vec` of sinks, a fan-out can hold sinks of different types and tells which of its
/// sinks failed how often.
///
/// ```
/// use backtest_stream::sink::{sink_fn, FanOut, MemorySink, SinkError};
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
///
/// let memory = MemorySink::new();
/// let fan_out = FanOut::new()
///     .with(memory.clone())
///     .with(sink_fn(|_| Err(SinkError::Closed)));
/// let stats = fan_out.failures();
/// let run = ProgressStreamer::new(fan_out).start(RunInfo::default(), 1);
/// run.complete(Default::default());
/// assert_eq!(memory.len(), 2); // backtest_start, backtest_complete
/// assert_eq!(stats.per_sink(), vec![0, 2]);
/// ```
#[derive(Default)]
pub struct FanOut {
    sinks: Vec<(Box<dyn ProgressSink>, Arc<AtomicU64>)>,
    failures: FanOutFailures,
}

/// A shared view of a [`FanOut`]'s failure counters, one per sink in insertion order.
#[derive(Debug, Clone, Default)]
pub struct FanOutFailures(Arc<std::sync::RwLock<Vec<Arc<AtomicU64>>>>);

impl FanOutFailures {
    /// Failures per sink, in the order the sinks were added.
    pub fn per_sink(&self) -> Vec<u64> {
        match self.0.read() {
            Ok(counters) => counters.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// Failures of all sinks together.
    pub fn total(&self) -> u64 {
        self.per_sink().iter().sum()
    }
}

impl FanOut {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn with(mut self, sink: impl ProgressSink + 'static) -> Self {
        self.push(sink);
        self
    }

    /// Adds a sink.
    pub fn push(&mut self, sink: impl ProgressSink + 'static) {
        let counter = Arc::new(AtomicU64::new(0));
        match self.failures.0.write() {
            Ok(mut counters) => counters.push(Arc::clone(&counter)),
            Err(poisoned) => poisoned.into_inner().push(Arc::clone(&counter)),
        }
        self.sinks.push((Box::new(sink), counter));
    }

    /// How many sinks there are.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// Whether there are no sinks.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// The failure counters, which stay readable after the fan-out moved into a streamer.
    pub fn failures(&self) -> FanOutFailures {
        self.failures.clone()
    }

    fn deliver(
        &self,
        mut op: impl FnMut(&dyn ProgressSink) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        collect_failures(
            self.sinks.len(),
            self.sinks.iter().map(|(sink, counter)| {
                let result = op(sink.as_ref());
                if result.is_err() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                result
            }),
        )
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("sinks", &self.sinks.len())
            .field("failures", &self.failures.per_sink())
            .finish()
    }
}

impl ProgressSink for FanOut {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        self.deliver(|sink| sink.publish(envelope))
    }
    fn flush(&self) -> Result<(), SinkError> {
        self.deliver(|sink| sink.flush())
    }
}
