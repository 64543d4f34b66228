//! The [`BacktestRunner`]: a run of any engine, streamed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::panic::catch_panic;
use crate::engine::{BacktestEngine, CancelToken, EngineOutput, RunError, RunMonitor, error_chain};
use crate::log_bridge::LogScope;
use crate::sink::{ProgressSink, SharedSink};
use crate::streamer::{ProgressStreamer, RunningBacktest, StreamerConfig};
use crate::wire::{BacktestId, Topic};

/// Runs a [`BacktestEngine`] with streaming: the Rust `SentinelEnhancedTester`.
///
/// - `backtest_start` from the engine's [`RunInfo`](crate::streamer::RunInfo) (the variant can be set here);
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

    /// The points a run's progress chart gets whatever its speed (default 100: the
    /// first cadence point past each whole percent is sent even within the minimum
    /// interval; 0 turns the rule off). See
    /// [`StreamerConfig::chart_points`](crate::streamer::StreamerConfig::chart_points).
    pub fn chart_points(mut self, points: u32) -> Self {
        self.config.chart_points = points;
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
            let mut monitor = RunMonitor::wrapping(run.as_mut(), &self.cancel);
            let outcome = catch_panic(|| engine.run(&mut monitor));
            // An engine that checked the token itself (with `is_cancelled`) and stopped
            // with its own error was cancelled too.
            (outcome, monitor.cancelled_at())
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
/// (once a [`LogBridge`](crate::log_bridge::LogBridge) is installed as the global logger).
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
