//! What an engine talks to while it runs: the [`RunMonitor`], and cancellation
//! ([`CancelToken`], [`Cancelled`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::streamer::{ProgressDetails, RunningBacktest};

/// A run was cancelled through its [`CancelToken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the backtest was cancelled")]
pub struct Cancelled;

/// Cancels a run from any thread. Cloning gives another handle to the same token.
///
/// ```
/// use backtest_stream::engine::CancelToken;
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
/// A monitor either streams (inside [`BacktestRunner::run`](crate::engine::BacktestRunner::run) with a sink) or is
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

    /// The monitor of a run the runner wraps: streaming into `run` (if any), cancelled
    /// by `token`.
    pub(super) fn wrapping(run: Option<&'a mut RunningBacktest>, token: &'a CancelToken) -> Self {
        Self {
            run,
            cancel: Some(token),
            cancelled_at: None,
            last_bar: 0,
        }
    }

    /// Where the run stopped if it was cancelled: the bar count at which `bar` saw the
    /// token, or else, when the token is set, the last bar reported.
    pub(super) fn cancelled_at(&self) -> Option<u64> {
        self.cancelled_at
            .or_else(|| self.is_cancelled().then_some(self.last_bar))
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
