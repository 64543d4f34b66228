//! The [`ProgressSink`] trait: the one interface every transport implements.
//!
//! A sink receives [`Envelope`]s (an [`Event`] and the [`Topic`] it is published on).
//! Sinks compose the way `tracing-subscriber` layers do: `Option<S>`, `Box<S>`, `Arc<S>`,
//! `&S`, `Vec<S>` and tuples of sinks are sinks themselves, so a program can stack a JSON
//! Lines record, an in-memory recorder and a WebSocket hub without writing glue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::{Event, Topic};

/// An event together with the topic it is published on.
///
/// The event sits behind an [`Arc`], so handing an envelope to several sinks or queues
/// never copies the event. Its JSON form is the event's JSON plus a top-level `topic`
/// key, the shape of a broadcast frame:
///
/// ```
/// use backtest_stream::{Envelope, Event, LogEntry, LogLevel, Timestamp, Topic};
///
/// let entry = LogEntry {
///     backtest_id: None,
///     timestamp: Timestamp::from_unix_millis(0).unwrap(),
///     level: LogLevel::Info,
///     message: "hello".into(),
///     module: "main".into(),
///     function: String::new(),
///     line: 7,
///     logger_name: "app".into(),
/// };
/// let envelope = Envelope::new(Topic::LOGS, Event::LogEntry(entry));
/// let json = envelope.to_json();
/// assert!(json.starts_with(r#"{"type":"log_entry","data":{"backtest_id":null,"#));
/// assert!(json.ends_with(r#","topic":"logs"}"#));
/// assert_eq!(Envelope::from_json(&json).unwrap(), envelope);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The topic the event is published on.
    pub topic: Topic,
    /// The event.
    pub event: Arc<Event>,
}

impl Envelope {
    /// Wraps an event for publishing on `topic`.
    pub fn new(topic: Topic, event: impl Into<Arc<Event>>) -> Self {
        Self {
            topic,
            event: event.into(),
        }
    }

    /// Appends the envelope's JSON (`{"type":...,"data":{...},"topic":"..."}`) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.event.write_json(out);
        // The event JSON is an object: replace its closing brace with the topic key.
        if out.last() == Some(&b'}') {
            out.pop();
            out.extend_from_slice(b",\"topic\":");
            crate::json_text::string(out, self.topic.as_str());
            out.push(b'}');
        }
    }

    /// The envelope's JSON text.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        // Only valid UTF-8 is written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Parses an envelope from JSON. A missing `topic` means [`Topic::BACKTEST`]; other
    /// unknown keys (such as a frame's `seq`) are ignored.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(flatten)]
            event: Event,
            #[serde(default)]
            topic: Topic,
        }
        let raw: Raw = serde_json::from_str(text)?;
        Ok(Self::new(raw.topic, raw.event))
    }
}

/// Why a sink could not take an event.
///
/// A failing sink never aborts a backtest: the [`ProgressStreamer`](crate::ProgressStreamer)
/// counts these errors and reports them through its statistics and an optional hook,
/// never through logging.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink's bounded queue is full; the event was dropped and counted.
    #[error("sink queue is full ({capacity} events); event dropped")]
    Full {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The sink was closed (its receiver or writer thread is gone).
    #[error("sink is closed")]
    Closed,
    /// Writing failed.
    #[error("sink I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// Some sinks of a fan-out failed; the others got the event.
    #[error("{failed} of {total} sinks failed; first error: {first}")]
    FanOut {
        /// How many sinks failed.
        failed: usize,
        /// How many sinks there are.
        total: usize,
        /// The first failure.
        first: Box<SinkError>,
    },
    /// Any other failure of a user-defined sink.
    #[error("sink failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SinkError {
    /// Wraps any error as [`SinkError::Other`].
    pub fn other(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SinkError::Other(error.into())
    }
}

/// Receives published events: the interface every transport implements and every engine
/// can call.
///
/// Implementations must be cheap and must not block the caller on I/O: a backtest loop
/// calls [`publish`](ProgressSink::publish) between bars. A sink that writes to a file
/// or a network hands the work to another thread through a bounded queue and reports
/// overflow as [`SinkError::Full`]. The trait is object-safe: `Box<dyn ProgressSink>`
/// and `Arc<dyn ProgressSink>` are sinks.
///
/// ```
/// use backtest_stream::{Envelope, ProgressSink, SinkError};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// Counts events per kind of interest.
/// #[derive(Default)]
/// struct CountTerminal(AtomicU64);
///
/// impl ProgressSink for CountTerminal {
///     fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
///         if envelope.event.is_terminal() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait ProgressSink: Send + Sync {
    /// Takes one event. Must not block on I/O.
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError>;

    /// Waits until everything published so far has been handed to its destination
    /// (written, sent). This may block; call it at the end of a program, not in a loop.
    fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl<S: ProgressSink + ?Sized> ProgressSink for &S {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        (**self).publish(envelope)
    }
    fn flush(&self) -> Result<(), SinkError> {
        (**self).flush()
    }
}

impl<S: ProgressSink + ?Sized> ProgressSink for Box<S> {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        (**self).publish(envelope)
    }
    fn flush(&self) -> Result<(), SinkError> {
        (**self).flush()
    }
}

impl<S: ProgressSink + ?Sized> ProgressSink for Arc<S> {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        (**self).publish(envelope)
    }
    fn flush(&self) -> Result<(), SinkError> {
        (**self).flush()
    }
}

/// `None` is a sink that drops everything, so streaming can be switched off in place.
impl<S: ProgressSink> ProgressSink for Option<S> {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        match self {
            Some(sink) => sink.publish(envelope),
            None => Ok(()),
        }
    }
    fn flush(&self) -> Result<(), SinkError> {
        match self {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }
}

/// Every sink of the vector gets every event, even when some of them fail.
impl<S: ProgressSink> ProgressSink for Vec<S> {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        collect_failures(self.len(), self.iter().map(|s| s.publish(envelope)))
    }
    fn flush(&self) -> Result<(), SinkError> {
        collect_failures(self.len(), self.iter().map(|s| s.flush()))
    }
}

/// Both sinks of the pair get every event, even when one of them fails.
impl<A: ProgressSink, B: ProgressSink> ProgressSink for (A, B) {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        collect_failures(2, [self.0.publish(envelope), self.1.publish(envelope)])
    }
    fn flush(&self) -> Result<(), SinkError> {
        collect_failures(2, [self.0.flush(), self.1.flush()])
    }
}

/// Folds the results of delivering to `total` sinks into one result.
fn collect_failures(
    total: usize,
    results: impl IntoIterator<Item = Result<(), SinkError>>,
) -> Result<(), SinkError> {
    let mut failed = 0;
    let mut first = None;
    for result in results {
        if let Err(e) = result {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(first) if total == 1 => Err(first),
        Some(first) => Err(SinkError::FanOut {
            failed,
            total,
            first: Box::new(first),
        }),
    }
}

/// A sink that drops every event: streaming switched off.
///
/// ```
/// use backtest_stream::{NoopSink, ProgressStreamer, RunInfo};
///
/// let run = ProgressStreamer::new(NoopSink).start(RunInfo::default(), 10);
/// run.complete(Default::default());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl ProgressSink for NoopSink {
    fn publish(&self, _envelope: &Envelope) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A sink made from a closure; build it with [`sink_fn`].
#[derive(Clone)]
pub struct FnSink<F>(F);

impl<F> std::fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnSink")
    }
}

/// Makes a sink from a closure called with each envelope.
///
/// ```
/// use backtest_stream::{sink_fn, ProgressStreamer, RunInfo};
///
/// let sink = sink_fn(|envelope| {
///     println!("{}", envelope.event.kind());
///     Ok(())
/// });
/// let run = ProgressStreamer::new(sink).start(RunInfo::default(), 1);
/// run.complete(Default::default());
/// ```
pub fn sink_fn<F>(f: F) -> FnSink<F>
where
    F: Fn(&Envelope) -> Result<(), SinkError> + Send + Sync,
{
    FnSink(f)
}

impl<F> ProgressSink for FnSink<F>
where
    F: Fn(&Envelope) -> Result<(), SinkError> + Send + Sync,
{
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        (self.0)(envelope)
    }
}

/// Delivers every event to several sinks and counts the failures of each.
///
/// One failing sink never keeps the others from getting the event. Unlike a plain
/// `Vec` of sinks, a fan-out can hold sinks of different types and tells which of its
/// sinks failed how often.
///
/// ```
/// use backtest_stream::{sink_fn, FanOut, MemorySink, ProgressStreamer, RunInfo, SinkError};
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
