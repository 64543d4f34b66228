//! A run's lifecycle: the [`ProgressStreamer`] publishes `backtest_start`, throttled
//! `backtest_progress`, then `backtest_complete` or `backtest_error`, with the duration
//! computed for you: the Rust form of the original `BacktestProgressStreamer`.

mod running;

use std::sync::Arc;
use std::time::Duration;

use crate::sink::{ProgressSink, SharedSink, SinkError};
pub use crate::streamer::running::RunningBacktest;
use crate::wire::{BacktestId, Topic};

/// A hook called with every error a sink returns, instead of logging it (a log record
/// about a failing sink could travel through that same sink).
pub type SinkErrorHook = Arc<dyn Fn(&BacktestId, &SinkError) + Send + Sync>;

/// How a run publishes.
#[derive(Clone)]
pub struct StreamerConfig {
    /// The topic the run publishes on (default [`Topic::BACKTEST`]).
    pub topic: Topic,
    /// Send progress every this many bars (default 100; 0 is taken as 1).
    pub progress_every: u64,
    /// Send progress no more often than this (default: no limit). The final 100 %
    /// update is always sent.
    pub min_interval: Option<Duration>,
    /// Points a run's progress chart gets whatever its speed (default 100, one per whole
    /// percent; 0 turns the rule off): the first cadence point past each
    /// `1/chart_points` of the run sends an update even while
    /// [`min_interval`](Self::min_interval) holds updates back.
    pub chart_points: u32,
    /// Called with every sink error (default: none; errors are counted in
    /// [`DeliveryStats`] either way).
    pub on_sink_error: Option<SinkErrorHook>,
}

impl Default for StreamerConfig {
    fn default() -> Self {
        Self {
            topic: Topic::BACKTEST,
            progress_every: 100,
            min_interval: None,
            chart_points: 100,
            on_sink_error: None,
        }
    }
}

impl std::fmt::Debug for StreamerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamerConfig")
            .field("topic", &self.topic)
            .field("progress_every", &self.progress_every)
            .field("min_interval", &self.min_interval)
            .field("chart_points", &self.chart_points)
            .field("on_sink_error", &self.on_sink_error.is_some())
            .finish()
    }
}

/// What a run is: the labels of its `backtest_start` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunInfo {
    /// The variant or mode (`"vanilla"`, `"spiced"`, ...).
    pub variant: String,
    /// The traded symbol.
    pub symbol: String,
    /// The bar timeframe (`"H1"`).
    pub timeframe: String,
    /// The first date of the data (`"2023-01-01"`).
    pub start_date: String,
    /// The last date of the data.
    pub end_date: String,
}

impl RunInfo {
    /// A run of `variant` on `symbol`; the other labels are empty.
    pub fn new(variant: impl Into<String>, symbol: impl Into<String>) -> Self {
        Self {
            variant: variant.into(),
            symbol: symbol.into(),
            ..Self::default()
        }
    }

    /// Sets the timeframe.
    pub fn timeframe(mut self, timeframe: impl Into<String>) -> Self {
        self.timeframe = timeframe.into();
        self
    }

    /// Sets the first and last date.
    pub fn dates(mut self, start_date: impl Into<String>, end_date: impl Into<String>) -> Self {
        self.start_date = start_date.into();
        self.end_date = end_date.into();
        self
    }
}

/// The details of a progress update, built only when the update is actually sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgressDetails {
    /// The date of the current bar (`"2023-06-15"`).
    pub current_date: String,
    /// Trades so far.
    pub trades_count: u64,
    /// Profit and loss so far.
    pub current_pnl: f64,
    /// A status text; `None` gives `"Processing bar N/TOTAL"`.
    pub status: Option<String>,
}

/// The final figures of a successful run, for `backtest_complete`.
///
/// Every figure left at its default is not a number, sent as `null` ("not reported"),
/// rather than a misleading zero.
///
/// ```
/// use backtest_stream::streamer::RunResults;
///
/// let results = RunResults { final_balance: 10_250.0, total_trades: 3, ..Default::default() };
/// assert!(results.sharpe_ratio.is_nan());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RunResults {
    /// The account balance at the end.
    pub final_balance: f64,
    /// Closed trades.
    pub total_trades: u64,
    /// Winning trades in percent (`NaN` without trades: sent as `null`).
    pub win_rate: f64,
    /// Annualised Sharpe ratio (`NaN` when unknown: sent as `null`).
    pub sharpe_ratio: f64,
    /// Maximum drawdown in percent, positive.
    pub drawdown: f64,
    /// Total return in percent.
    pub return_pct: f64,
    /// Extra results (trade list, parameters, ...): see [`Results`](crate::wire::Results).
    pub results: crate::wire::Results,
}

impl Default for RunResults {
    fn default() -> Self {
        Self {
            final_balance: f64::NAN,
            total_trades: 0,
            win_rate: f64::NAN,
            sharpe_ratio: f64::NAN,
            drawdown: f64::NAN,
            return_pct: f64::NAN,
            results: crate::wire::Results::new(),
        }
    }
}

/// How publishing went for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Events the sink accepted.
    pub published: u64,
    /// Events the sink refused (each also passed to the error hook, if any).
    pub failed: u64,
    /// The last error, as text.
    pub last_error: Option<String>,
}

/// What [`RunningBacktest::complete`] and [`RunningBacktest::error`] return.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run.
    pub backtest_id: BacktestId,
    /// Wall-clock time from start to end.
    pub duration: Duration,
    /// How publishing went.
    pub delivery: DeliveryStats,
}

/// Streams one backtest run to a sink: the Rust form of the original
/// `BacktestProgressStreamer`.
///
/// A streamer is configured, then [started](ProgressStreamer::start), which publishes
/// `backtest_start` and gives a [`RunningBacktest`] for progress and the final event.
///
/// ```
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
/// use backtest_stream::wire::{BacktestId, EventKind};
///
/// let memory = MemorySink::new();
/// let mut run = ProgressStreamer::new(memory.clone())
///     .with_id(BacktestId::new("my-custom-id")?)
///     .progress_every(250)
///     .start(RunInfo::new("spiced", "EURUSD").timeframe("H1"), 1_000);
/// for bar in 1..=1_000 {
///     run.progress(bar, || ProgressDetails { trades_count: bar / 100, ..Default::default() });
/// }
/// let summary = run.complete(RunResults { final_balance: 12_500.0, ..Default::default() });
/// assert_eq!(summary.delivery.published, 6); // start, 4 × progress, complete
/// assert_eq!(memory.events()[5].kind(), EventKind::BacktestComplete);
/// # Ok::<(), backtest_stream::wire::InvalidBacktestId>(())
/// ```
#[derive(Clone)]
pub struct ProgressStreamer {
    sink: SharedSink,
    id: BacktestId,
    config: StreamerConfig,
}

impl std::fmt::Debug for ProgressStreamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressStreamer")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProgressStreamer {
    /// A streamer for a new run with a random id and the default configuration.
    pub fn new(sink: impl ProgressSink + 'static) -> Self {
        Self::with_config(sink, StreamerConfig::default())
    }

    /// A streamer for a new run with a random id and the given configuration.
    pub fn with_config(sink: impl ProgressSink + 'static, config: StreamerConfig) -> Self {
        Self::from_shared(Arc::new(sink), config)
    }

    /// A streamer publishing to a sink that other parts of the program share.
    pub fn from_shared(sink: SharedSink, config: StreamerConfig) -> Self {
        Self {
            sink,
            id: BacktestId::random(),
            config,
        }
    }

    /// Uses the caller's id for the run instead of a random one.
    pub fn with_id(mut self, id: BacktestId) -> Self {
        self.id = id;
        self
    }

    /// Publishes on `topic` instead of [`Topic::BACKTEST`].
    pub fn topic(mut self, topic: Topic) -> Self {
        self.config.topic = topic;
        self
    }

    /// Sends progress every `bars` bars (0 is taken as 1).
    pub fn progress_every(mut self, bars: u64) -> Self {
        self.config.progress_every = bars;
        self
    }

    /// Sends progress no more often than every `interval` (the final update excepted).
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.config.min_interval = Some(interval);
        self
    }

    /// Sets [`StreamerConfig::chart_points`] (0 turns the rule off).
    pub fn chart_points(mut self, points: u32) -> Self {
        self.config.chart_points = points;
        self
    }

    /// Calls `hook` with every error the sink returns.
    pub fn on_sink_error(
        mut self,
        hook: impl Fn(&BacktestId, &SinkError) + Send + Sync + 'static,
    ) -> Self {
        self.config.on_sink_error = Some(Arc::new(hook));
        self
    }

    /// The id the run will have.
    pub fn id(&self) -> &BacktestId {
        &self.id
    }

    /// The configuration.
    pub fn config(&self) -> &StreamerConfig {
        &self.config
    }

    /// The sink.
    pub fn sink(&self) -> &SharedSink {
        &self.sink
    }

    /// Starts the run: publishes `backtest_start` now. `total_bars` is the length of the
    /// run, for the progress percentage.
    pub fn start(self, info: RunInfo, total_bars: u64) -> RunningBacktest {
        RunningBacktest::begin(self.sink, self.id, self.config, info, total_bars)
    }
}
