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
//! [`LogScope::enter`](crate::log_bridge::LogScope::enter) on the worker thread.

mod error;
mod monitor;
mod panic;
mod runner;

pub use error::{RunError, error_chain};
pub use monitor::{CancelToken, Cancelled, RunMonitor};
pub use runner::BacktestRunner;

use crate::streamer::{RunInfo, RunResults};

/// A backtest engine that the [`BacktestRunner`] can stream.
///
/// An engine reports each processed bar to the [`RunMonitor`] it is given; the
/// monitor sends progress at the configured cadence and tells the engine when the run
/// was cancelled. Everything else (start, logs, the final event, panics) is the
/// runner's job.
///
/// ```
/// use backtest_stream::engine::{BacktestEngine, BacktestRunner, Cancelled, RunMonitor};
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::streamer::{ProgressDetails, RunInfo, RunResults};
/// use backtest_stream::wire::EventKind;
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
