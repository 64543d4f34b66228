//! A run's own logger and the seed's `setup_backtest_logging`.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::entry::{RunContext, from_record};
use super::scope::Busy;
use super::{BridgeStats, Counters, LogScope};
use crate::sink::{ProgressSink, SharedSink};
use crate::streamer::{ProgressStreamer, RunningBacktest, StreamerConfig};
use crate::wire::{BacktestId, Envelope, Event, LogEntry, LogLevel, Timestamp, Topic};

/// The logger of one run: every line it takes becomes a `log_entry` of that run
/// (`logger_name` `backtest.<id>`), published straight to the run's sink on the run's
/// topic. It needs no global installation, like the seed's per-run `ws_logger`.
///
/// It also implements [`log::Log`](https://docs.rs/log/0.4/log/trait.Log.html), so `log::info!(logger: &run_logger, ...)` works
/// (the global `log::max_level()` still applies to the macros; it is `Off` until a
/// logger is installed, so prefer the methods when no logger is). Cloning is cheap.
///
/// ```
/// use backtest_stream::log_bridge::RunLogger;
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
/// use backtest_stream::wire::Event;
///
/// let memory = MemorySink::new();
/// let run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 10);
/// let logger = RunLogger::for_run(&run);
/// logger.info("Trade executed: BUY 0.1 lots EURUSD");
/// let Event::LogEntry(entry) = &*memory.events()[1] else { panic!() };
/// assert_eq!(entry.level.as_str(), "INFO");
/// assert_eq!(entry.logger_name, format!("backtest.{}", run.id()));
/// assert!(entry.line > 0); // the caller's line; `module` is the caller's file name
/// run.complete(Default::default());
/// ```
#[derive(Clone)]
pub struct RunLogger {
    inner: Arc<RunLoggerInner>,
}

struct RunLoggerInner {
    backtest_id: BacktestId,
    logger_name: String,
    sink: SharedSink,
    topic: Topic,
    level: LevelFilter,
    counters: Arc<Counters>,
}

impl fmt::Debug for RunLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLogger")
            .field("backtest_id", &self.inner.backtest_id)
            .field("topic", &self.inner.topic)
            .field("level", &self.inner.level)
            .finish_non_exhaustive()
    }
}

impl RunLogger {
    /// A logger for run `backtest_id` publishing to `sink` on `topic`, taking every level.
    pub fn new(backtest_id: BacktestId, sink: SharedSink, topic: Topic) -> Self {
        Self {
            inner: Arc::new(RunLoggerInner {
                logger_name: format!("backtest.{backtest_id}"),
                backtest_id,
                sink,
                topic,
                level: LevelFilter::Trace,
                counters: Arc::default(),
            }),
        }
    }

    /// The logger of a running backtest: its id, sink and topic.
    pub fn for_run(run: &RunningBacktest) -> Self {
        Self::new(run.id().clone(), run.sink().clone(), run.topic().clone())
    }

    /// The logger of the run a streamer will start.
    pub fn for_streamer(streamer: &ProgressStreamer) -> Self {
        Self::new(
            streamer.id().clone(),
            streamer.sink().clone(),
            streamer.config().topic.clone(),
        )
    }

    /// A logger of the same run that drops lines less severe than `level` (default:
    /// none is dropped). It shares this logger's counters.
    pub fn with_level(self, level: LevelFilter) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(RunLoggerInner {
                backtest_id: inner.backtest_id.clone(),
                logger_name: inner.logger_name.clone(),
                sink: inner.sink.clone(),
                topic: inner.topic.clone(),
                level,
                counters: Arc::clone(&inner.counters),
            }),
        }
    }

    /// The run's id.
    pub fn backtest_id(&self) -> &BacktestId {
        &self.inner.backtest_id
    }

    /// Routes the `log` records of this thread to this run while the guard lives (see
    /// [`LogScope`]); they are streamed when a [`LogBridge`](super::LogBridge) is
    /// installed.
    pub fn scope(&self) -> LogScope {
        LogScope::enter(
            self.inner.backtest_id.clone(),
            self.inner.sink.clone(),
            self.inner.topic.clone(),
        )
    }

    /// What happened to the lines of this logger so far.
    pub fn stats(&self) -> BridgeStats {
        self.inner.counters.snapshot()
    }

    /// Publishes one line at `level`. `module` and `line` are the caller's file name
    /// (without extension) and line; `function` is empty.
    #[track_caller]
    pub fn log_message(&self, level: Level, message: impl fmt::Display) {
        if level > self.inner.level {
            return;
        }
        let location = Location::caller();
        self.publish_with(|| LogEntry {
            backtest_id: Some(self.inner.backtest_id.clone()),
            timestamp: Timestamp::now(),
            level: LogLevel::from(level),
            message: message.to_string(),
            module: file_stem(location.file()).to_owned(),
            function: String::new(),
            line: location.line(),
            logger_name: self.inner.logger_name.clone(),
        });
    }

    /// Publishes a `TRACE` line.
    #[track_caller]
    pub fn trace(&self, message: impl fmt::Display) {
        self.log_message(Level::Trace, message);
    }
    /// Publishes a `DEBUG` line.
    #[track_caller]
    pub fn debug(&self, message: impl fmt::Display) {
        self.log_message(Level::Debug, message);
    }
    /// Publishes an `INFO` line.
    #[track_caller]
    pub fn info(&self, message: impl fmt::Display) {
        self.log_message(Level::Info, message);
    }
    /// Publishes a `WARNING` line.
    #[track_caller]
    pub fn warn(&self, message: impl fmt::Display) {
        self.log_message(Level::Warn, message);
    }
    /// Publishes an `ERROR` line.
    #[track_caller]
    pub fn error(&self, message: impl fmt::Display) {
        self.log_message(Level::Error, message);
    }

    fn publish_with(&self, entry: impl FnOnce() -> LogEntry) {
        let counters = &self.inner.counters;
        let _busy = match Busy::enter() {
            Ok(busy) => busy,
            Err(why) => return counters.not_entered(why),
        };
        let envelope = Envelope::new(self.inner.topic.clone(), Event::LogEntry(entry()));
        counters.publish(&*self.inner.sink, &envelope);
    }
}

/// `src/engine/mode_runner.rs` gives `mode_runner`.
fn file_stem(path: &str) -> &str {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    name.strip_suffix(".rs").unwrap_or(name)
}

impl Log for RunLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.inner.level
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() > self.inner.level {
            return;
        }
        self.publish_with(|| {
            from_record(
                record,
                Some(RunContext {
                    backtest_id: &self.inner.backtest_id,
                    logger_name: &self.inner.logger_name,
                }),
            )
        });
    }

    fn flush(&self) {}
}

/// What [`setup_backtest_logging`] gives a run: its streamer and its logger.
#[derive(Debug)]
pub struct BacktestLogging {
    /// The run's streamer: call [`start`](ProgressStreamer::start) to begin the run.
    pub streamer: ProgressStreamer,
    /// The run's logger, publishing `log_entry` events of the run to the same sink and
    /// topic. Enter [`RunLogger::scope`] to route `log` macros there too.
    pub logger: RunLogger,
}

/// The seed's `setup_backtest_logging(backtest_id)`: one call that gives a run its
/// streamer and its correlated logger, both publishing to `sink` on topic `backtest`
/// with the same id (`backtest_id`, or a fresh UUID v4 when `None`).
///
/// ```
/// use backtest_stream::log_bridge::setup_backtest_logging;
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::streamer::RunInfo;
///
/// let memory = MemorySink::new();
/// let logging = setup_backtest_logging(memory.clone(), None);
/// let run = logging.streamer.start(RunInfo::new("spiced", "EURUSD"), 100);
/// logging.logger.info("strategy loaded");
/// run.complete(Default::default());
/// let ids: Vec<_> = memory.events().iter().map(|e| e.backtest_id().cloned()).collect();
/// assert_eq!(ids.len(), 3);
/// assert!(ids.iter().all(|id| id == &ids[0]));
/// ```
pub fn setup_backtest_logging(
    sink: impl ProgressSink + 'static,
    backtest_id: Option<BacktestId>,
) -> BacktestLogging {
    let mut streamer = ProgressStreamer::from_shared(Arc::new(sink), StreamerConfig::default());
    if let Some(id) = backtest_id {
        streamer = streamer.with_id(id);
    }
    let logger = RunLogger::for_streamer(&streamer);
    BacktestLogging { streamer, logger }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems() {
        assert_eq!(file_stem("src/engine/mode_runner.rs"), "mode_runner");
        assert_eq!(file_stem("C:\\x\\lib.rs"), "lib");
        assert_eq!(file_stem("main"), "main");
    }
}
