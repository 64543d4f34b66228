//! Streaming for any backtest engine: the [`BacktestEngine`] trait and the
//! [`BacktestRunner`] that wraps a run with `backtest_start`, throttled
//! `backtest_progress`, correlated logs, and `backtest_complete` or `backtest_error`.
//!
//! This is the Rust form of the original `SentinelEnhancedTester`: every engine that
//! implements [`BacktestEngine`] gets the same streaming, on by default, with a
//! caller-chosen id and the variant (mode) as a label.
//!
//! # Threads
//!
//! The engine runs on the thread that calls [`BacktestRunner::run`]. Its log records are
//! tied to the run through the log bridge for exactly that thread and exactly the
//! duration of the run; records made on threads the engine spawns itself are not tied
//! to the run unless those threads enter the run's log scope themselves: take the id,
//! sink and topic from [`RunMonitor::running`] and call
//! [`LogScope::enter`](crate::LogScope::enter) on the worker thread.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{
    BacktestId, LogScope, ProgressDetails, ProgressSink, ProgressStreamer, RunInfo, RunResults,
    RunningBacktest, SharedSink, StreamerConfig, Topic,
};

/// A backtest engine that the [`BacktestRunner`] can stream.
///
/// An engine reports each processed bar to the [`RunMonitor`] it is given; the
/// monitor sends progress at the configured cadence and tells the engine when the run
/// was cancelled. Everything else (start, logs, the final event, panics) is the
/// runner's job.
///
/// ```
/// use backtest_stream::{
///     BacktestEngine, BacktestRunner, Cancelled, EventKind, MemorySink, ProgressDetails,
///     RunInfo, RunMonitor, RunResults,
/// };
///
/// /// Counts to `n`, "earning" one unit per bar.
/// struct Counter { n: u64 }
///
/// impl BacktestEngine for Counter {
///     type Output = RunResults;
///     type Error = Cancelled;
///
///     fn run_info(&self) -> RunInfo { RunInfo::new("counter", "TEST") }
///     fn total_bars(&self) -> u64 { self.n }
///     fn run(&mut self, monitor: &mut RunMonitor<'_>) -> Result<RunResults, Cancelled> {
///         for bar in 1..=self.n {
///             monitor.bar(bar, || ProgressDetails { current_pnl: bar as f64, ..Default::default() })?;
///         }
///         Ok(RunResults { final_balance: self.n as f64, ..Default::default() })
///     }
/// }
///
/// let memory = MemorySink::new();
/// let results = BacktestRunner::new(memory.clone())
///     .min_interval(std::time::Duration::ZERO) // every 100 bars, however fast
///     .run(&mut Counter { n: 1_000 })?;
/// assert_eq!(results.final_balance, 1_000.0);
/// let kinds: Vec<EventKind> = memory.events().iter().map(|e| e.kind()).collect();
/// assert_eq!(kinds.len(), 12); // start, 10 × progress, complete
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait BacktestEngine {
    /// What a successful run gives back; it must be able to produce the figures of
    /// `backtest_complete`.
    type Output: EngineOutput;
    /// What a failed run gives back. Its [`source`](std::error::Error::source) chain is
    /// sent as the `error_details` of `backtest_error`.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The labels of `backtest_start` (symbol, timeframe, dates; the variant can be
    /// overridden by the runner).
    fn run_info(&self) -> RunInfo;

    /// The number of bars the run will process, for the progress percentage.
    fn total_bars(&self) -> u64;

    /// Runs the backtest on the calling thread, reporting each bar to `monitor`.
    ///
    /// An engine should stop with an error when [`RunMonitor::bar`] returns
    /// [`Cancelled`] (with `?` when its error type implements `From<Cancelled>`).
    fn run(&mut self, monitor: &mut RunMonitor<'_>) -> Result<Self::Output, Self::Error>;
}

/// The results of a run, as `backtest_complete` carries them.
pub trait EngineOutput {
    /// The figures and results metadata of `backtest_complete`.
    fn run_results(&self) -> RunResults;
}

impl EngineOutput for RunResults {
    fn run_results(&self) -> RunResults {
        self.clone()
    }
}

/// A run was cancelled through its [`CancelToken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the backtest was cancelled")]
pub struct Cancelled;

/// Cancels a run from any thread. Cloning gives another handle to the same token.
///
/// ```
/// use backtest_stream::CancelToken;
///
/// let token = CancelToken::new();
/// let remote = token.clone();
/// std::thread::spawn(move || remote.cancel()).join().unwrap();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop. The engine sees it at its next bar.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What an engine reports its progress to, and learns cancellation from.
///
/// A monitor either streams (inside [`BacktestRunner::run`] with a sink) or is
/// [detached](RunMonitor::detached): then [`bar`](RunMonitor::bar) only checks for
/// cancellation, which costs one relaxed atomic load.
pub struct RunMonitor<'a> {
    run: Option<&'a mut RunningBacktest>,
    cancel: Option<&'a CancelToken>,
    cancelled_at: Option<u64>,
    /// The last bar count reported without cancellation.
    last_bar: u64,
}

impl fmt::Debug for RunMonitor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunMonitor")
            .field("streaming", &self.run.is_some())
            .field("cancelled_at", &self.cancelled_at)
            .finish_non_exhaustive()
    }
}

impl<'a> RunMonitor<'a> {
    /// A monitor that streams nothing and is never cancelled: for running an engine
    /// without the runner.
    pub fn detached() -> RunMonitor<'static> {
        RunMonitor {
            run: None,
            cancel: None,
            cancelled_at: None,
            last_bar: 0,
        }
    }

    /// A monitor that streams nothing but sees `token`.
    pub fn with_cancel_token(token: &'a CancelToken) -> Self {
        Self {
            run: None,
            cancel: Some(token),
            cancelled_at: None,
            last_bar: 0,
        }
    }

    /// Reports that `bars_processed` bars are done. Sends `backtest_progress` when the
    /// cadence says so (`details` is called only then, so a suppressed update costs a
    /// comparison) and returns `Err(Cancelled)` once the run is cancelled.
    #[inline]
    pub fn bar(
        &mut self,
        bars_processed: u64,
        details: impl FnOnce() -> ProgressDetails,
    ) -> Result<(), Cancelled> {
        if let Some(token) = self.cancel {
            if token.is_cancelled() {
                self.cancelled_at.get_or_insert(bars_processed);
                return Err(Cancelled);
            }
        }
        self.last_bar = bars_processed;
        if let Some(run) = self.run.as_deref_mut() {
            run.progress(bars_processed, details);
        }
        Ok(())
    }

    /// Whether the run was cancelled (without reporting a bar). An engine that stops
    /// with an error after seeing this is reported as cancelled, after the last bar it
    /// reported.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_some_and(CancelToken::is_cancelled)
    }

    /// Whether the monitor streams events (false when streaming is off).
    pub fn is_streaming(&self) -> bool {
        self.run.is_some()
    }

    /// The streamed run, if streaming is on: for engines that publish extra events.
    pub fn running(&mut self) -> Option<&mut RunningBacktest> {
        self.run.as_deref_mut()
    }
}

/// Why a wrapped run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E: std::error::Error + 'static> {
    /// The engine returned an error.
    #[error("the backtest engine failed: {0}")]
    Engine(#[source] E),
    /// The engine panicked; the panic was caught.
    #[error("the backtest engine panicked at {location}: {message}")]
    Panicked {
        /// The panic message.
        message: String,
        /// Where it panicked (`file:line:column`), or `unknown location` when the panic
        /// hook could not record it.
        location: String,
    },
    /// The run was cancelled through its [`CancelToken`].
    #[error("the backtest was cancelled after {bars_processed} of {total_bars} bars")]
    Cancelled {
        /// The bar count the engine reported when it saw the cancellation (or the last
        /// one it reported, when it checked [`RunMonitor::is_cancelled`] itself).
        bars_processed: u64,
        /// Bars in the run.
        total_bars: u64,
    },
}

/// Runs a [`BacktestEngine`] with streaming: the Rust `SentinelEnhancedTester`.
///
/// - `backtest_start` from the engine's [`RunInfo`] (the variant can be set here);
/// - `backtest_progress` every 100 bars and at most every 10 ms by default (see
///   [`DEFAULT_MIN_INTERVAL`](BacktestRunner::DEFAULT_MIN_INTERVAL)), always with a
///   final 100 % update, through the streamer's throttle, with the details the engine
///   gives (current bar date, trades so far, current P&L);
/// - the log records made on the calling thread during the run, as the run's
///   `log_entry` events (through the log bridge);
/// - `backtest_complete` with the engine's results, or `backtest_error` when the
///   engine returns an error (with the error chain), panics (with the panic message
///   and location) or is cancelled.
///
/// Streaming is on when the runner has a sink and off with [`BacktestRunner::disabled`];
/// the engine runs the same either way.
///
/// Panic locations are recorded by a panic hook that the runner installs once, in
/// front of the hook already set (which still runs); a hook set later by the program
/// replaces it, and locations are then reported as `unknown location`.
#[derive(Clone)]
pub struct BacktestRunner {
    sink: Option<SharedSink>,
    id: BacktestId,
    variant: Option<String>,
    config: StreamerConfig,
    cancel: CancelToken,
}

impl fmt::Debug for BacktestRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BacktestRunner")
            .field("streaming", &self.sink.is_some())
            .field("id", &self.id)
            .field("variant", &self.variant)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BacktestRunner {
    /// The default minimum time between two progress updates: 10 ms, at most 100
    /// updates a second.
    ///
    /// The bar cadence alone (every 100 bars) was made for engines that process a few
    /// thousand bars a second; an engine that processes tens of millions would send
    /// hundreds of thousands of updates a second, which no user interface can show and
    /// which would cost the run several percent of its time.
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(10);

    /// A runner streaming to `sink`, with a random id.
    pub fn new(sink: impl ProgressSink + 'static) -> Self {
        Self::streaming(Some(Arc::new(sink)))
    }

    /// A runner streaming to a shared sink, or not streaming at all (`None`).
    pub fn streaming(sink: Option<SharedSink>) -> Self {
        Self {
            sink,
            id: BacktestId::random(),
            variant: None,
            config: StreamerConfig {
                min_interval: Some(Self::DEFAULT_MIN_INTERVAL),
                ..StreamerConfig::default()
            },
            cancel: CancelToken::new(),
        }
    }

    /// A runner that streams nothing (cancellation still works).
    pub fn disabled() -> Self {
        Self::streaming(None)
    }

    /// Uses the caller's id instead of a random one.
    pub fn with_id(mut self, id: BacktestId) -> Self {
        self.id = id;
        self
    }

    /// Sets the variant (mode) label of `backtest_start`, overriding the engine's.
    pub fn variant(mut self, variant: impl Into<String>) -> Self {
        self.variant = Some(variant.into());
        self
    }

    /// Replaces the streamer configuration (topic, cadence, throttle, error hook).
    pub fn config(mut self, config: StreamerConfig) -> Self {
        self.config = config;
        self
    }

    /// Publishes on `topic` instead of [`Topic::BACKTEST`].
    pub fn topic(mut self, topic: Topic) -> Self {
        self.config.topic = topic;
        self
    }

    /// Sends progress every `bars` bars (default 100).
    pub fn progress_every(mut self, bars: u64) -> Self {
        self.config.progress_every = bars;
        self
    }

    /// Sends progress no more often than every `interval` (the final update excepted;
    /// default [`BacktestRunner::DEFAULT_MIN_INTERVAL`]). `Duration::ZERO` sends every
    /// update the bar cadence asks for.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.config.min_interval = Some(interval);
        self
    }

    /// Uses `token` to cancel the run (by default the runner has its own; see
    /// [`cancel_token`](BacktestRunner::cancel_token)).
    pub fn with_cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// The token that cancels the run: clone it and call
    /// [`cancel`](CancelToken::cancel) from any thread.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The id the run will have.
    pub fn id(&self) -> &BacktestId {
        &self.id
    }

    /// The streamer configuration the run will use.
    pub fn streamer_config(&self) -> &StreamerConfig {
        &self.config
    }

    /// Whether the run will stream.
    pub fn is_streaming(&self) -> bool {
        self.sink.is_some()
    }

    /// Runs `engine` on this thread with streaming and returns its output.
    ///
    /// Panics of the engine are caught and returned as [`RunError::Panicked`] (after
    /// `backtest_error` is sent); a cancelled run returns [`RunError::Cancelled`] when
    /// the engine stopped with an error, and its output when the engine finished
    /// anyway.
    pub fn run<E: BacktestEngine + ?Sized>(
        self,
        engine: &mut E,
    ) -> Result<E::Output, RunError<E::Error>> {
        let total_bars = engine.total_bars();
        let mut run = self.sink.map(|sink| {
            let mut info = engine.run_info();
            if let Some(variant) = self.variant {
                info.variant = variant;
            }
            ProgressStreamer::from_shared(sink, self.config)
                .with_id(self.id)
                .start(info, total_bars)
        });

        let (outcome, cancelled_at) = {
            let _log_scope = run.as_ref().map(enter_log_scope);
            let mut monitor = RunMonitor {
                run: run.as_mut(),
                cancel: Some(&self.cancel),
                cancelled_at: None,
                last_bar: 0,
            };
            let outcome = catch_panic(|| engine.run(&mut monitor));
            // An engine that checked the token itself (with `is_cancelled`) and stopped
            // with its own error was cancelled too.
            let cancelled_at = monitor
                .cancelled_at
                .or_else(|| self.cancel.is_cancelled().then_some(monitor.last_bar));
            (outcome, cancelled_at)
        };

        let error = match outcome {
            Ok(Ok(output)) => {
                let Some(run) = run else {
                    return Ok(output);
                };
                // The results come from the engine's code too: a panic there is caught
                // and reported like one in the run.
                match catch_panic(|| output.run_results()) {
                    Ok(results) => {
                        run.complete(results);
                        return Ok(output);
                    }
                    Err(panic) => {
                        let error = panic.into_run_error();
                        let (message, details) = describe_error(&error);
                        run.error(message, details);
                        return Err(error);
                    }
                }
            }
            Ok(Err(error)) => match cancelled_at {
                Some(bars_processed) => RunError::Cancelled {
                    bars_processed,
                    total_bars,
                },
                None => RunError::Engine(error),
            },
            Err(panic) => panic.into_run_error(),
        };
        if let Some(run) = run {
            let (message, details) = describe_error(&error);
            run.error(message, details);
        }
        Err(error)
    }
}

/// Enters the run's log scope (the log bridge's [`LogScope`]), so that the records
/// this thread logs while the returned guard lives become the run's `log_entry` events
/// (once a [`LogBridge`](crate::LogBridge) is installed as the global logger).
///
/// This is the single place where the runner meets the log bridge.
fn enter_log_scope(run: &RunningBacktest) -> LogScope {
    LogScope::enter_run(run)
}

/// The `error` and `error_details` of `backtest_error` for a failed run.
fn describe_error<E: std::error::Error + 'static>(error: &RunError<E>) -> (String, String) {
    match error {
        RunError::Engine(source) => (source.to_string(), error_chain(source)),
        RunError::Panicked { message, location } => (
            format!("Backtest engine panicked: {message}"),
            format!("panicked at {location}: {message}"),
        ),
        RunError::Cancelled {
            bars_processed,
            total_bars,
        } => (
            "Backtest cancelled".to_owned(),
            format!("cancelled by the caller after {bars_processed} of {total_bars} bars"),
        ),
    }
}

/// An error and its sources, one per line: `error\ncaused by: source\n...` (a cause
/// whose message the error before it already ends with is not repeated).
///
/// ```
/// use backtest_stream::error_chain;
///
/// #[derive(Debug)]
/// struct LoadFailed(std::io::Error);
/// impl std::fmt::Display for LoadFailed {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("cannot load the strategy parameters")
///     }
/// }
/// impl std::error::Error for LoadFailed {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
/// }
///
/// let error = LoadFailed(std::io::Error::other("disk full"));
/// assert_eq!(error_chain(&error), "cannot load the strategy parameters\ncaused by: disk full");
/// ```
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's message in their own; skip the echo.
        if !text.ends_with(&cause_text) {
            text.push_str("\ncaused by: ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A caught panic: its message and, when the hook saw it, its location.
struct CaughtPanic {
    message: String,
    location: Option<String>,
}

impl CaughtPanic {
    fn into_run_error<E: std::error::Error + 'static>(self) -> RunError<E> {
        RunError::Panicked {
            message: self.message,
            location: self
                .location
                .unwrap_or_else(|| "unknown location".to_owned()),
        }
    }
}

thread_local! {
    /// How many wrapped runs are active on this thread (runs may nest).
    static CAPTURE_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The location of the last panic on this thread while capturing.
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL_HOOK: Once = Once::new();

/// Installs, once, a panic hook that records the location of panics in wrapped runs
/// and then calls the hook that was set before.
fn install_panic_hook() {
    INSTALL_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let capturing = CAPTURE_DEPTH.try_with(Cell::get).unwrap_or(0) > 0;
            if capturing {
                if let Some(location) = info.location() {
                    let text = format!(
                        "{}:{}:{}",
                        location.file(),
                        location.line(),
                        location.column()
                    );
                    let _ = LAST_PANIC_LOCATION.try_with(|slot| {
                        if let Ok(mut slot) = slot.try_borrow_mut() {
                            *slot = Some(text);
                        }
                    });
                }
            }
            previous(info);
        }));
    });
}

/// Runs `f`, catching a panic with its message and location.
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    install_panic_hook();
    CAPTURE_DEPTH.with(|depth| depth.set(depth.get() + 1));
    LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURE_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    result.map_err(|payload| CaughtPanic {
        message: panic_message(payload.as_ref()),
        location: LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take()),
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
