//! The [`ReferenceEngine`]: runs a [`Strategy`] over bars with the [module
//! rules](crate::reference), and its [`BacktestReport`].

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::engine::{
    BacktestEngine, BacktestRunner, Cancelled, EngineOutput, RunError, RunMonitor,
};
use crate::reference::account::Account;
use crate::reference::metrics::{self, DEFAULT_PERIODS_PER_YEAR, DrawdownTracker, Metrics};
use crate::reference::{Bar, Order, Strategy, StrategyContext, StrategyError};
use crate::sink::SharedSink;
use crate::streamer::{ProgressDetails, RunInfo, RunResults};
use crate::wire::{BacktestId, Results, Timestamp, Trade};

/// The account and labels of a reference-engine run.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Starting cash (default 10,000), finite and positive.
    pub initial_cash: f64,
    /// Price offset against the trader on each fill at an open (default 0).
    pub slippage: f64,
    /// Periods per year for the Sharpe ratio (default 252; 365 for markets that trade
    /// every day).
    pub periods_per_year: f64,
    /// The symbol label of `backtest_start`.
    pub symbol: String,
    /// The timeframe label of `backtest_start`.
    pub timeframe: String,
    /// The most trades listed in the `results.trades` of `backtest_complete` (default:
    /// all). A run with more lists its last `n` trades and says how many it left out
    /// in `results.trades_omitted`; [`BacktestReport::trades`] always has them all.
    /// Each listed trade costs about a microsecond and a few hundred bytes.
    pub max_result_trades: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            initial_cash: 10_000.0,
            slippage: 0.0,
            periods_per_year: DEFAULT_PERIODS_PER_YEAR,
            symbol: String::new(),
            timeframe: String::new(),
            max_result_trades: None,
        }
    }
}

/// Why a reference-engine run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceEngineError {
    /// There are no bars.
    #[error("no bars to run on")]
    NoBars,
    /// A setting of [`EngineConfig`] is out of range.
    #[error("invalid engine setting `{field}`: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The bars are not in ascending time.
    #[error("bar {index} ({timestamp}) is not after the bar before it; bars must ascend")]
    NotAscending {
        /// The index of the bar.
        index: usize,
        /// Its timestamp.
        timestamp: Timestamp,
    },
    /// The strategy returned an error.
    #[error("strategy `{strategy}` failed at bar {index} ({timestamp})")]
    Strategy {
        /// The strategy's name.
        strategy: String,
        /// The bar.
        index: usize,
        /// Its timestamp.
        timestamp: Timestamp,
        /// The strategy's error.
        source: StrategyError,
    },
    /// The run was cancelled.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// The outcome of a reference-engine run.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestReport {
    /// The headline figures.
    pub metrics: Metrics,
    /// The closed trades, in order (shared with the `backtest_complete` event: see
    /// [`Results`]).
    pub trades: Arc<[Trade]>,
    /// Starting cash.
    pub initial_cash: f64,
    /// Bars processed.
    pub bars: u64,
    /// Orders placed on the last bar (never filled).
    pub unfilled_orders: u64,
    /// Orders rejected at fill time (see the [module rules](crate::reference)).
    pub rejected_orders: u64,
    /// The run's parameters: the strategy's name and parameters and the engine's
    /// settings.
    pub parameters: Map<String, Value>,
    /// The most trades [`run_results`](EngineOutput::run_results) lists (see
    /// [`EngineConfig::max_result_trades`]).
    pub max_result_trades: Option<usize>,
}

impl EngineOutput for BacktestReport {
    /// The metrics, and in `results`: `trades` (the trade list, see
    /// [`EngineConfig::max_result_trades`]), `trades_omitted`, `parameters`, `bars`,
    /// `unfilled_orders`, `rejected_orders`.
    fn run_results(&self) -> RunResults {
        let listed = self
            .max_result_trades
            .map_or(self.trades.len(), |max| max.min(self.trades.len()));
        let omitted = self.trades.len() - listed;
        let trades: Arc<[Trade]> = if omitted == 0 {
            Arc::clone(&self.trades)
        } else {
            Arc::from(&self.trades[omitted..])
        };
        let mut results = Results::with_trades(trades);
        results.insert("trades_omitted", omitted);
        results.insert("parameters", Value::Object(self.parameters.clone()));
        results.insert("bars", self.bars);
        results.insert("unfilled_orders", self.unfilled_orders);
        results.insert("rejected_orders", self.rejected_orders);
        RunResults {
            final_balance: self.metrics.final_balance,
            total_trades: self.metrics.total_trades,
            win_rate: self.metrics.win_rate,
            sharpe_ratio: self.metrics.sharpe_ratio,
            drawdown: self.metrics.drawdown,
            return_pct: self.metrics.return_pct,
            results,
        }
    }
}

/// The reference engine: runs a [`Strategy`] over bars with the [module rules](crate::reference).
///
/// ```
/// use backtest_stream::reference::{EngineConfig, ReferenceEngine, SmaCrossover, SyntheticBars};
///
/// let bars = SyntheticBars::with_count(2_000).generate()?;
/// let strategy = SmaCrossover::new(10, 20, 1.0)?;
/// let report = ReferenceEngine::new(&bars, strategy, EngineConfig::default()).run_detached()?;
/// assert_eq!(report.bars, 2_000);
/// assert_eq!(report.metrics.total_trades as usize, report.trades.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReferenceEngine<'a, S> {
    bars: &'a [Bar],
    strategy: S,
    config: EngineConfig,
    orders: Vec<Order>,
    daily_equity: Vec<f64>,
}

impl<'a, S: Strategy> ReferenceEngine<'a, S> {
    /// An engine running `strategy` over `bars`.
    pub fn new(bars: &'a [Bar], strategy: S, config: EngineConfig) -> Self {
        Self {
            bars,
            strategy,
            config,
            orders: Vec::with_capacity(4),
            daily_equity: Vec::new(),
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    /// Runs without streaming and without cancellation.
    pub fn run_detached(&mut self) -> Result<BacktestReport, ReferenceEngineError> {
        self.run_bars(&mut RunMonitor::detached())
    }

    fn check_config(&self) -> Result<(), ReferenceEngineError> {
        let invalid = |field, reason| Err(ReferenceEngineError::InvalidConfig { field, reason });
        let c = &self.config;
        if !(c.initial_cash.is_finite() && c.initial_cash > 0.0) {
            return invalid("initial_cash", "must be finite and positive");
        }
        if !(c.slippage.is_finite() && c.slippage >= 0.0) {
            return invalid("slippage", "must be finite and not negative");
        }
        if !(c.periods_per_year.is_finite() && c.periods_per_year > 0.0) {
            return invalid("periods_per_year", "must be finite and positive");
        }
        if self.bars.is_empty() {
            return Err(ReferenceEngineError::NoBars);
        }
        Ok(())
    }

    fn run_bars(
        &mut self,
        monitor: &mut RunMonitor<'_>,
    ) -> Result<BacktestReport, ReferenceEngineError> {
        self.check_config()?;
        let bars = self.bars;
        let initial_cash = self.config.initial_cash;
        let slippage = self.config.slippage;
        self.orders.clear();
        self.daily_equity.clear();
        self.strategy.on_start();

        let mut account = Account::new(initial_cash);
        let mut drawdown = DrawdownTracker::new();
        let mut day = bars[0].timestamp.as_offset_date_time().date();
        let mut day_equity = initial_cash;
        for (index, bar) in bars.iter().enumerate() {
            if index > 0 && bar.timestamp <= bars[index - 1].timestamp {
                return Err(ReferenceEngineError::NotAscending {
                    index,
                    timestamp: bar.timestamp,
                });
            }
            // Orders placed at the previous close fill at this open.
            if !self.orders.is_empty() {
                for order in self.orders.drain(..) {
                    account.fill(order, bar, index, slippage);
                }
            }
            let equity = account.equity_at(bar.close);
            drawdown.update(equity);
            let date = bar.timestamp.as_offset_date_time().date();
            if date != day {
                self.daily_equity.push(day_equity);
                day = date;
            }
            day_equity = equity;
            self.on_bar(index, &account, equity)?;

            let trades_count = account.trades.len() as u64;
            monitor.bar(index as u64 + 1, || ProgressDetails {
                current_date: bar.timestamp.date_string(),
                trades_count,
                current_pnl: equity - initial_cash,
                status: None,
            })?;
        }
        self.daily_equity.push(day_equity);

        let unfilled_orders = self.orders.len() as u64;
        self.orders.clear();
        if let Some(open) = account.position.take() {
            // Closed at the last close, without slippage: the equity at the last bar.
            let last = &bars[bars.len() - 1];
            account.close_position(open, last, last.close, true);
        }
        Ok(self.report(account, drawdown.max_drawdown_pct(), unfilled_orders))
    }

    /// Calls the strategy at the close of bar `index`.
    fn on_bar(
        &mut self,
        index: usize,
        account: &Account,
        equity: f64,
    ) -> Result<(), ReferenceEngineError> {
        let mut ctx = StrategyContext::new(
            &self.bars[..=index],
            account.position,
            account.cash,
            equity,
            &mut self.orders,
        );
        self.strategy
            .on_bar(&mut ctx)
            .map_err(|source| ReferenceEngineError::Strategy {
                strategy: self.strategy.name().to_owned(),
                index,
                timestamp: self.bars[index].timestamp,
                source,
            })
    }

    /// The report of a finished run.
    fn report(&self, account: Account, drawdown: f64, unfilled_orders: u64) -> BacktestReport {
        let initial_cash = self.config.initial_cash;
        let trades = account.trades;
        let metrics = Metrics {
            final_balance: account.cash,
            return_pct: metrics::return_pct(initial_cash, account.cash),
            drawdown,
            total_trades: trades.len() as u64,
            win_rate: metrics::win_rate(trades.iter().map(|t| t.pnl)),
            sharpe_ratio: metrics::sharpe_ratio(&self.daily_equity, self.config.periods_per_year),
        };
        BacktestReport {
            metrics,
            trades: trades.into(),
            initial_cash,
            bars: self.bars.len() as u64,
            unfilled_orders,
            rejected_orders: account.rejected_orders,
            parameters: self.parameters(),
            max_result_trades: self.config.max_result_trades,
        }
    }

    /// The strategy's name and parameters and the engine's settings.
    fn parameters(&self) -> Map<String, Value> {
        let mut parameters = Map::new();
        parameters.insert("strategy".into(), self.strategy.name().into());
        for (key, value) in self.strategy.parameters() {
            parameters.insert(key, value);
        }
        parameters.insert("initial_cash".into(), self.config.initial_cash.into());
        parameters.insert("slippage".into(), self.config.slippage.into());
        parameters.insert(
            "periods_per_year".into(),
            self.config.periods_per_year.into(),
        );
        if !self.config.symbol.is_empty() {
            parameters.insert("symbol".into(), self.config.symbol.clone().into());
        }
        if !self.config.timeframe.is_empty() {
            parameters.insert("timeframe".into(), self.config.timeframe.clone().into());
        }
        parameters
    }
}

impl<S: Strategy> BacktestEngine for ReferenceEngine<'_, S> {
    type Output = BacktestReport;
    type Error = ReferenceEngineError;

    /// Variant: the strategy's name; symbol and timeframe from the config; dates: the
    /// first and last bar's UTC dates.
    fn run_info(&self) -> RunInfo {
        let mut info = RunInfo::new(self.strategy.name(), self.config.symbol.clone())
            .timeframe(self.config.timeframe.clone());
        if let (Some(first), Some(last)) = (self.bars.first(), self.bars.last()) {
            info = info.dates(first.timestamp.date_string(), last.timestamp.date_string());
        }
        info
    }

    fn total_bars(&self) -> u64 {
        self.bars.len() as u64
    }

    fn run(
        &mut self,
        monitor: &mut RunMonitor<'_>,
    ) -> Result<BacktestReport, ReferenceEngineError> {
        self.run_bars(monitor)
    }
}

/// Runs `strategy` on `data` with the reference engine in one call: the Rust
/// `run_full_system_backtest(mode, data, enable_ws_streaming, backtest_id)`.
///
/// `mode` is the variant label of `backtest_start`; `streaming` is the sink to stream
/// to, or `None` to stream nothing; `backtest_id` is the caller's id (a random one
/// when `None`). The engine runs with [`EngineConfig::default`] (10,000 cash, no
/// slippage, Sharpe over 252 days); use [`ReferenceEngine`] with a [`BacktestRunner`]
/// for anything else.
///
/// ```
/// use std::sync::Arc;
/// use backtest_stream::reference::{SmaCrossover, SyntheticBars, run_backtest};
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::wire::{BacktestId, EventKind};
///
/// let data = SyntheticBars::with_count(1_000).generate()?;
/// let memory = MemorySink::new();
/// let report = run_backtest(
///     "vanilla",
///     &data,
///     SmaCrossover::new(10, 20, 1.0)?,
///     Some(Arc::new(memory.clone())),
///     Some(BacktestId::new("my-custom-id")?),
/// )?;
/// let events = memory.events();
/// assert_eq!(events[0].kind(), EventKind::BacktestStart);
/// assert_eq!(events.last().unwrap().kind(), EventKind::BacktestComplete);
/// assert!(events.iter().all(|e| e.backtest_id().unwrap() == "my-custom-id"));
/// println!("return {:.2} %", report.metrics.return_pct);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run_backtest<S: Strategy>(
    mode: &str,
    data: &[Bar],
    strategy: S,
    streaming: Option<SharedSink>,
    backtest_id: Option<BacktestId>,
) -> Result<BacktestReport, RunError<ReferenceEngineError>> {
    let mut runner = BacktestRunner::streaming(streaming).variant(mode);
    if let Some(id) = backtest_id {
        runner = runner.with_id(id);
    }
    runner.run(&mut ReferenceEngine::new(
        data,
        strategy,
        EngineConfig::default(),
    ))
}
