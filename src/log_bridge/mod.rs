//! The log bridge: records of the [`log`](https://docs.rs/log/0.4/log/) crate become `log_entry` events of the right
//! backtest.
//!
//! [`LogBridge`] is a [`log::Log`](https://docs.rs/log/0.4/log/trait.Log.html) implementation. Install it once per program with
//! [`LogBridge::try_init`] (or the one-line [`init`]); it can wrap the program's own
//! logger (for example `env_logger`), which keeps getting every record, so the console
//! output stays as it was and the UI gets the same lines.
//!
//! ```
//! use backtest_stream::log_bridge::{LogBridge, LogScope};
//! use backtest_stream::sink::MemorySink;
//! use backtest_stream::streamer::{ProgressStreamer, RunInfo};
//! use backtest_stream::wire::EventKind;
//! use log::LevelFilter;
//!
//! // The program's console logger, as before.
//! let console = env_logger::Builder::new().filter_level(LevelFilter::Warn).build();
//! let console_level = console.filter();
//! // The user interface's sink (a WebSocket hub, a JSON Lines file, ...).
//! let ui = MemorySink::new();
//! let bridge = LogBridge::builder()
//!     .parse_filters("info,hyper=warn")?
//!     .default_sink(ui.clone()) // records made outside any run: topic `logs`
//!     .wrap(console, console_level)
//!     .build()
//!     .try_init()?;
//!
//! let run = ProgressStreamer::new(ui.clone()).start(RunInfo::new("vanilla", "EURUSD"), 100);
//! {
//!     let _scope = LogScope::enter_run(&run); // this thread's records are the run's
//!     log::info!(function = "on_bar"; "Trade executed: BUY 0.1 lots EURUSD");
//! }
//! run.complete(Default::default());
//!
//! let logs: Vec<_> = ui.events().into_iter()
//!     .filter(|e| e.kind() == EventKind::LogEntry).collect();
//! assert_eq!(logs.len(), 1);
//! assert!(logs[0].to_json().contains(r#""logger_name":"backtest."#));
//! assert_eq!(bridge.stats().delivered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where a record goes
//!
//! | the record is made ... | `backtest_id` | `logger_name` | published to |
//! | --- | --- | --- | --- |
//! | inside a [`LogScope`] | the scope's run | `backtest.<id>` | the scope's sink, on the scope's topic |
//! | outside any scope | `null` | the record's target | the bridge's default sink, on topic `logs` (dropped and counted as `unrouted` without a default sink) |
//! | with a `backtest_id = ...` key-value | that id (it wins over the scope) | `backtest.<id>` | the same sink and topic as without the key-value |
//!
//! An explicit id thus changes what the record says, not where it goes: inside a scope
//! it goes to the scope's sink, outside to the default sink. The default sink is
//! typically the program's one hub (a WebSocket server), where the id is what the user
//! interface filters on.
//!
//! # Field mapping
//!
//! | `log_entry` field | taken from |
//! | --- | --- |
//! | `timestamp` | the time the bridge received the record |
//! | `level` | `TRACE`, `DEBUG`, `INFO`, `WARNING` (Rust's `Warn`), `ERROR` |
//! | `message` | the formatted message, then ` key=value` for every key-value other than `backtest_id` and `function` |
//! | `module` | the last segment of the record's module path (`my_app::engine::fills` gives `fills`), or of its target when the path is unknown |
//! | `function` | a `function` key-value (`log::info!(function = "on_bar"; "...")`); `""` without one: `log` records carry no function name |
//! | `line` | the record's line, `0` when unknown |
//! | `logger_name` | `backtest.<id>` for a run's records, the record's target otherwise |
//!
//! A `backtest_id` key-value that is not a valid [`BacktestId`](crate::wire::BacktestId) is kept in the message
//! as ` backtest_id=...` and does not change the record's id.
//!
//! # Never harming the program
//!
//! - A record that fails the filters costs a comparison and allocates nothing.
//! - The bridge never blocks on I/O: it hands events to sinks, which must not block
//!   ([`ProgressSink`]).
//! - A record made while the bridge is publishing on the same thread (a sink that logs,
//!   or a library it calls) is not streamed, only counted ([`BridgeStats::reentrant`]);
//!   it still reaches the inner logger. No recursion, no deadlock.
//! - A sink that fails or panics is counted ([`BridgeStats::failed`]); the panic does
//!   not reach the code that logged.
//! - Sink worker threads can opt out entirely with [`suppress`].

mod entry;
mod filter;
mod run_logger;
mod scope;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use log::{LevelFilter, Log, Metadata, Record};

use crate::sink::{ProgressSink, SharedSink};
use crate::wire::{Envelope, Event, Topic};

pub use entry::{BACKTEST_ID_KEY, FUNCTION_KEY};
pub use filter::FilterParseError;
pub use run_logger::{BacktestLogging, RunLogger, setup_backtest_logging};
pub use scope::{LogScope, SuppressGuard, suppress};

use filter::TargetFilter;
pub(crate) use scope::{Busy, NotEntered};

#[cfg(feature = "tracing")]
pub(crate) use entry::last_segment;
pub(crate) use entry::{RunContext, from_record};
#[cfg(feature = "tracing")]
pub(crate) use scope::{ScopeTarget, current as current_scope};

/// A logger that drops everything: the inner logger of a bridge that wraps none.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoInner;

impl Log for NoInner {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn log(&self, _: &Record<'_>) {}
    fn flush(&self) {}
}

/// What happened to the records that passed the bridge's filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Published to a sink, which accepted them.
    pub delivered: u64,
    /// Published to a sink that returned an error or panicked.
    pub failed: u64,
    /// Made on a thread that was already publishing a record (by a sink, or a library a
    /// sink uses): not streamed, to avoid recursion.
    pub reentrant: u64,
    /// Made on a thread with a [`SuppressGuard`]: not streamed, on purpose.
    pub suppressed: u64,
    /// Made outside any scope while the bridge has no default sink.
    pub unrouted: u64,
}

impl BridgeStats {
    /// Records that passed the filters but did not reach a sink (all but `delivered`
    /// and `suppressed`).
    pub fn undelivered(&self) -> u64 {
        self.failed + self.reentrant + self.unrouted
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    reentrant: AtomicU64,
    suppressed: AtomicU64,
    unrouted: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> BridgeStats {
        BridgeStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            reentrant: self.reentrant.load(Ordering::Relaxed),
            suppressed: self.suppressed.load(Ordering::Relaxed),
            unrouted: self.unrouted.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn not_entered(&self, why: NotEntered) {
        match why {
            NotEntered::Reentrant => Self::bump(&self.reentrant),
            NotEntered::Suppressed => Self::bump(&self.suppressed),
        }
    }

    pub(crate) fn unrouted(&self) {
        Self::bump(&self.unrouted);
    }

    /// Publishes `envelope` to `sink`, catching a panicking sink, and counts the outcome.
    pub(crate) fn publish(&self, sink: &dyn ProgressSink, envelope: &Envelope) {
        match catch_unwind(AssertUnwindSafe(|| sink.publish(envelope))) {
            Ok(Ok(())) => Self::bump(&self.delivered),
            Ok(Err(_)) | Err(_) => Self::bump(&self.failed),
        }
    }
}

/// A handle on a bridge's counters that stays usable after the bridge was installed.
#[derive(Debug, Clone)]
pub struct BridgeHandle {
    counters: Arc<Counters>,
    max_level: LevelFilter,
}

impl BridgeHandle {
    /// What happened to the records so far.
    pub fn stats(&self) -> BridgeStats {
        self.counters.snapshot()
    }

    /// The most verbose level the bridge (or its inner logger) lets through; the global
    /// `log::max_level()` is set to it on installation.
    pub fn max_level(&self) -> LevelFilter {
        self.max_level
    }
}

/// Installing a global logger failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The program already has a global logger (the `log` crate allows one per process).
    #[error("a global logger is already installed; the log bridge was not installed")]
    AlreadyInstalled,
}

static INSTALLED: OnceLock<BridgeHandle> = OnceLock::new();
static GLOBAL: OnceLock<Box<dyn Log>> = OnceLock::new();

/// The handle of the bridge installed in this process, if one was.
pub fn installed() -> Option<BridgeHandle> {
    INSTALLED.get().cloned()
}

/// Installs a bridge streaming `info` and more severe records, with `default_sink`
/// receiving the records made outside any run (topic `logs`).
///
/// The shorthand for `LogBridge::builder().default_sink(sink).build().try_init()`. A
/// second installation (of any logger) is an [`InstallError`], never a panic.
///
/// ```no_run
/// use backtest_stream::log_bridge;
/// use backtest_stream::sink::MemorySink;
///
/// let ui = MemorySink::new();
/// let handle = log_bridge::init(ui.clone())?;
/// log::info!("streamed on topic `logs`");
/// assert_eq!(handle.stats().delivered, 1);
/// # Ok::<(), log_bridge::InstallError>(())
/// ```
pub fn init(default_sink: impl ProgressSink + 'static) -> Result<BridgeHandle, InstallError> {
    LogBridge::builder()
        .default_sink(default_sink)
        .build()
        .try_init()
}

/// A [`log::Log`](https://docs.rs/log/0.4/log/trait.Log.html) implementation that streams records as `log_entry` events, and passes
/// every record on to an inner logger `L` (none by default).
///
/// Build one with [`LogBridge::builder`]; install it with [`LogBridge::try_init`], or
/// call [`Log::log`](https://docs.rs/log/0.4/log/trait.Log.html#tymethod.log) on it directly (in tests, or to feed it from another logger).
///
/// ```
/// use backtest_stream::log_bridge::LogBridge;
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::wire::{EventKind, Topic};
/// use log::{LevelFilter, Log};
///
/// let ui = MemorySink::new();
/// let bridge = LogBridge::builder()
///     .level(LevelFilter::Info)
///     .target_level("noisy_dep", LevelFilter::Warn)
///     .default_sink(ui.clone())
///     .build();
/// let record = |target, level| {
///     bridge.log(&log::Record::builder().target(target).level(level)
///         .args(format_args!("hello")).build())
/// };
/// record("my_app", log::Level::Info);
/// record("noisy_dep::io", log::Level::Info); // filtered out
/// let envelopes = ui.envelopes();
/// assert_eq!(envelopes.len(), 1);
/// assert_eq!(envelopes[0].topic, Topic::LOGS);
/// assert_eq!(envelopes[0].event.kind(), EventKind::LogEntry);
/// assert_eq!(bridge.stats().delivered, 1);
/// ```
pub struct LogBridge<L = NoInner> {
    filter: TargetFilter,
    default: Option<(SharedSink, Topic)>,
    inner: L,
    inner_max: LevelFilter,
    counters: Arc<Counters>,
}

impl<L> std::fmt::Debug for LogBridge<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBridge")
            .field("filter", &self.filter)
            .field("default_topic", &self.default.as_ref().map(|(_, t)| t))
            .field("inner_max", &self.inner_max)
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

/// Builds a [`LogBridge`].
pub struct LogBridgeBuilder<L = NoInner> {
    filter: TargetFilter,
    default: Option<(SharedSink, Topic)>,
    inner: L,
    inner_max: LevelFilter,
}

impl<L> std::fmt::Debug for LogBridgeBuilder<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBridgeBuilder")
            .field("filter", &self.filter)
            .field("inner_max", &self.inner_max)
            .finish_non_exhaustive()
    }
}

impl LogBridge {
    /// A builder: level `Info`, no per-target filter, no default sink, no inner logger.
    pub fn builder() -> LogBridgeBuilder {
        LogBridgeBuilder {
            filter: TargetFilter::new(LevelFilter::Info),
            default: None,
            inner: NoInner,
            inner_max: LevelFilter::Off,
        }
    }
}

impl<L: Log> LogBridgeBuilder<L> {
    /// The level streamed for targets without their own level (default `Info`).
    pub fn level(mut self, level: LevelFilter) -> Self {
        self.filter.set_default(level);
        self
    }

    /// The level streamed for `target` and the targets below it (`target::...`). The
    /// most specific target wins.
    pub fn target_level(mut self, target: &str, level: LevelFilter) -> Self {
        self.filter.set_target(target, level);
        self
    }

    /// Adds `env_logger`-style directives: comma-separated `level` or `target=level`
    /// items (`"info,hyper=warn,my_app::engine=trace"`); later items win.
    ///
    /// ```
    /// use backtest_stream::log_bridge::LogBridge;
    /// assert!(LogBridge::builder().parse_filters("info,hyper=warn").is_ok());
    /// assert!(LogBridge::builder().parse_filters("hyper=loud").is_err());
    /// ```
    pub fn parse_filters(mut self, spec: &str) -> Result<Self, FilterParseError> {
        self.filter.parse_into(spec)?;
        Ok(self)
    }

    /// Where records made outside any run go, on topic `logs`. Without one they are
    /// counted as `unrouted` and not streamed.
    pub fn default_sink(self, sink: impl ProgressSink + 'static) -> Self {
        self.default_shared_sink(Arc::new(sink), Topic::LOGS)
    }

    /// Like [`default_sink`](Self::default_sink), with a sink shared with other parts of
    /// the program and a topic of your choice.
    pub fn default_shared_sink(mut self, sink: SharedSink, topic: Topic) -> Self {
        self.default = Some((sink, topic));
        self
    }

    /// Wraps the program's own logger: it gets every record, as if it were installed
    /// alone. `max_level` is the most verbose level it writes (for `env_logger`,
    /// `logger.filter()`); the global `log::max_level()` is set to cover both.
    ///
    /// ```
    /// use backtest_stream::log_bridge::LogBridge;
    /// use log::{LevelFilter, Log};
    ///
    /// struct Console;
    /// impl Log for Console {
    ///     fn enabled(&self, m: &log::Metadata) -> bool { m.level() <= log::Level::Debug }
    ///     fn log(&self, r: &log::Record) { if self.enabled(r.metadata()) { eprintln!("{}", r.args()) } }
    ///     fn flush(&self) {}
    /// }
    /// let bridge = LogBridge::builder().wrap(Console, LevelFilter::Debug).build();
    /// assert_eq!(bridge.max_level(), LevelFilter::Debug);
    /// ```
    pub fn wrap<I: Log>(self, inner: I, max_level: LevelFilter) -> LogBridgeBuilder<I> {
        LogBridgeBuilder {
            filter: self.filter,
            default: self.default,
            inner,
            inner_max: max_level,
        }
    }

    /// Builds the bridge.
    pub fn build(self) -> LogBridge<L> {
        LogBridge {
            filter: self.filter,
            default: self.default,
            inner: self.inner,
            inner_max: self.inner_max,
            counters: Arc::default(),
        }
    }
}

impl<L: Log> LogBridge<L> {
    /// What happened to the records so far.
    pub fn stats(&self) -> BridgeStats {
        self.counters.snapshot()
    }

    /// A handle on the counters, usable after the bridge is installed.
    pub fn handle(&self) -> BridgeHandle {
        BridgeHandle {
            counters: Arc::clone(&self.counters),
            max_level: self.max_level(),
        }
    }

    /// The most verbose level the bridge or its inner logger lets through.
    pub fn max_level(&self) -> LevelFilter {
        std::cmp::max(self.filter.max(), self.inner_max)
    }

    /// The inner logger.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// Whether the bridge itself (not the inner logger) streams records of this level
    /// and target.
    #[inline]
    pub fn streams(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata.level(), metadata.target())
    }

    /// Streams one record (the filters already passed).
    #[inline(never)]
    fn stream(&self, record: &Record<'_>) {
        let _busy = match Busy::enter() {
            Ok(busy) => busy,
            Err(why) => return self.counters.not_entered(why),
        };
        let scope = scope::current();
        let (sink, topic, run) = match &scope {
            Some(scope) => (
                &scope.sink,
                &scope.topic,
                Some(RunContext {
                    backtest_id: &scope.backtest_id,
                    logger_name: &scope.logger_name,
                }),
            ),
            None => match &self.default {
                Some((sink, topic)) => (sink, topic, None),
                None => return self.counters.unrouted(),
            },
        };
        let entry = from_record(record, run);
        let envelope = Envelope::new(topic.clone(), Event::LogEntry(entry));
        self.counters.publish(&**sink, &envelope);
    }
}

impl<L: Log + 'static> LogBridge<L> {
    /// Installs the bridge as the program's global logger and sets `log::max_level()`
    /// to [`max_level`](Self::max_level). Fails with [`InstallError::AlreadyInstalled`]
    /// when the program already has a logger.
    pub fn try_init(self) -> Result<BridgeHandle, InstallError> {
        let handle = self.handle();
        let max = self.max_level();
        // The `log` crate's `set_boxed_logger` needs its `std` feature; a static cell
        // holds the bridge instead. At most one bridge is ever kept there.
        if GLOBAL.set(Box::new(self)).is_err() {
            return Err(InstallError::AlreadyInstalled);
        }
        let Some(logger) = GLOBAL.get() else {
            return Err(InstallError::AlreadyInstalled);
        };
        log::set_logger(&**logger).map_err(|_| InstallError::AlreadyInstalled)?;
        log::set_max_level(max);
        let _ = INSTALLED.set(handle.clone());
        Ok(handle)
    }
}

impl<L: Log> Log for LogBridge<L> {
    #[inline]
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.streams(metadata)
            || (metadata.level() <= self.inner_max && self.inner.enabled(metadata))
    }

    #[inline]
    fn log(&self, record: &Record<'_>) {
        if record.level() <= self.inner_max {
            self.inner.log(record);
        }
        if self.filter.enabled(record.level(), record.target()) {
            self.stream(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
        if let Some((sink, _)) = &self.default {
            let _ = catch_unwind(AssertUnwindSafe(|| sink.flush()));
        }
    }
}
