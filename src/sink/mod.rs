//! Where events go: the [`ProgressSink`] trait that every transport implements, and the
//! ready sinks.
//!
//! A sink receives [`Envelope`]s (an event and the topic it is published on). Sinks
//! compose the way `tracing-subscriber` layers do: `Option<S>`, `Box<S>`, `Arc<S>`, `&S`,
//! `Vec<S>` and pairs of sinks are sinks themselves, so a program can stack a JSON Lines
//! record, an in-memory recorder and a WebSocket hub without writing glue.
//!
//! | sink | what it is for |
//! | --- | --- |
//! | [`MemorySink`] | a bounded in-memory recording, for tests and in-process UIs |
//! | [`channel`] | a bounded channel: events arrive on a `Receiver` in another thread |
//! | [`JsonLinesSink`] | one JSON object per line to any `io::Write`, on its own writer thread; [`read_json_lines`] replays it |
//! | [`FanOut`] | several sinks of any types, with failures counted per sink |
//! | [`NoopSink`] | streaming switched off |
//! | [`sink_fn`] | anything else |
//!
//! The WebSocket hub's sink is [`HubSink`](crate::server::HubSink) (feature `server`).

mod fan_out;
mod json_lines;
mod memory;

pub use fan_out::{FanOut, FanOutFailures};
pub use json_lines::{
    JsonLinesConfig, JsonLinesReader, JsonLinesSink, JsonLinesStats, OverflowPolicy,
    ReadJsonLinesError, read_json_lines,
};
pub use memory::{ChannelSink, MemorySink, channel};

use std::sync::Arc;

use crate::wire::Envelope;

/// A sink shared between several parts of a program (a streamer, the log bridge, ...).
pub type SharedSink = Arc<dyn ProgressSink>;

/// Why a sink could not take an event.
///
/// A failing sink never aborts a backtest: the [`ProgressStreamer`](crate::streamer::ProgressStreamer)
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
/// use backtest_stream::sink::{ProgressSink, SinkError};
/// use backtest_stream::wire::Envelope;
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
pub(crate) fn collect_failures(
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
/// use backtest_stream::sink::NoopSink;
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
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
/// use backtest_stream::sink::sink_fn;
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
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
