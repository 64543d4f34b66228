//! A small, exact reference engine: market orders on bars, one position at a time.
//!
//! # The rules
//!
//! - A [`Strategy`] is called at the close of every bar, in order, with the history so
//!   far (the current bar included), the open position and the account; it may place
//!   market orders: [`buy`](StrategyContext::buy), [`sell`](StrategyContext::sell) and
//!   [`close`](StrategyContext::close).
//! - A market order placed at the close of bar *i* fills at the open of bar *i + 1*, in
//!   the order placed, with no commission, spread or slippage unless
//!   [`EngineConfig::slippage`] is set (then buys fill that much above the open and
//!   sells that much below). An order placed on the last bar does not fill (it is
//!   counted in [`BacktestReport::unfilled_orders`]).
//! - One position at a time: a buy when flat opens a long position of `size` units, a
//!   sell when flat opens a short one, a close ends the open position. Any other order
//!   (a buy or sell while a position is open, a close while flat) is rejected: logged
//!   at WARN and counted in [`BacktestReport::rejected_orders`].
//! - A trade's P&L is `quantity × (exit − entry)`, with the quantity positive for a
//!   long position and negative for a short one. Cash changes only when a position
//!   closes, by the trade's P&L. Equity at each bar is cash plus the open position
//!   marked at that bar's close (`quantity × (close − entry)`); before the first fill it
//!   is the starting cash.
//! - A position still open after the last bar is closed at the last bar's close
//!   (without slippage) and counts as a trade, so the final balance is the equity at the
//!   last bar.
//! - Each fill is logged at INFO through [`log`]: `Trade executed: BUY 1 @ 179.13` (prices
//!   with at most six decimals, trailing zeros trimmed; the key-value `function` names
//!   `fill` or `close_position`).
//! - The metrics are those of [`crate::metrics`], computed from the per-bar equity.

use std::fmt;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::engine::{BacktestEngine, Cancelled, EngineOutput, RunError, RunMonitor};
use crate::metrics::{DEFAULT_PERIODS_PER_YEAR, DrawdownTracker, Metrics};
pub use crate::trade::{Side, Trade};
use crate::{
    BacktestId, BacktestRunner, Bar, ProgressDetails, Results, RunInfo, RunResults, SharedSink,
    Timestamp,
};

/// The error a strategy may return from [`Strategy::on_bar`]: any error.
pub type StrategyError = Box<dyn std::error::Error + Send + Sync>;

/// A trading strategy for the [`ReferenceEngine`].
///
/// ```
/// use backtest_stream::{Strategy, StrategyContext, StrategyError};
///
/// /// Buys on the first bar and holds.
/// struct BuyAndHold;
///
/// impl Strategy for BuyAndHold {
///     fn name(&self) -> &str { "buy_and_hold" }
///     fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
///         if ctx.index() == 0 {
///             ctx.buy(1.0)?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Strategy {
    /// The strategy's name, the default variant label of a run.
    fn name(&self) -> &str;

    /// The strategy's parameters, for the run's results (default: none).
    fn parameters(&self) -> Map<String, Value> {
        Map::new()
    }

    /// Called once before the first bar of a run: reset any state of a previous run.
    fn on_start(&mut self) {}

    /// Called at the close of each bar. An error ends the run with that error.
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError>;
}

impl<S: Strategy + ?Sized> Strategy for &mut S {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn parameters(&self) -> Map<String, Value> {
        (**self).parameters()
    }
    fn on_start(&mut self) {
        (**self).on_start();
    }
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        (**self).on_bar(ctx)
    }
}

impl<S: Strategy + ?Sized> Strategy for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn parameters(&self) -> Map<String, Value> {
        (**self).parameters()
    }
    fn on_start(&mut self) {
        (**self).on_start();
    }
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        (**self).on_bar(ctx)
    }
}

/// A market order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Order {
    /// Buy `size` units (open a long position when flat).
    Buy {
        /// Units, finite and positive.
        size: f64,
    },
    /// Sell `size` units (open a short position when flat).
    Sell {
        /// Units, finite and positive.
        size: f64,
    },
    /// Close the open position.
    Close,
}

/// The open position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Long or short.
    pub side: Side,
    /// Units, positive.
    pub size: f64,
    /// The fill price of the entry.
    pub entry_price: f64,
    /// The timestamp of the bar whose open filled the entry.
    pub entry_time: Timestamp,
    /// The index of that bar.
    pub entry_index: usize,
}

impl Position {
    /// The signed quantity: `size` for a long position, `-size` for a short one.
    pub fn quantity(&self) -> f64 {
        match self.side {
            Side::Long => self.size,
            Side::Short => -self.size,
        }
    }

    /// The position's P&L if it were closed at `price`: `quantity × (price − entry)`.
    pub fn pnl_at(&self, price: f64) -> f64 {
        self.quantity() * (price - self.entry_price)
    }
}

/// An order with a size that is not finite and positive.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid order size {size} at bar {index}: a size must be finite and positive")]
pub struct InvalidOrder {
    /// The size given.
    pub size: f64,
    /// The bar at which the order was placed.
    pub index: usize,
}

/// What a [`Strategy`] sees and does at a bar's close.
pub struct StrategyContext<'a> {
    history: &'a [Bar],
    position: Option<Position>,
    cash: f64,
    equity: f64,
    orders: &'a mut Vec<Order>,
}

impl fmt::Debug for StrategyContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StrategyContext")
            .field("index", &self.index())
            .field("position", &self.position)
            .field("cash", &self.cash)
            .field("equity", &self.equity)
            .field("orders", &self.orders)
            .finish()
    }
}

impl<'a> StrategyContext<'a> {
    /// The index of the current bar (0 for the first).
    #[inline]
    pub fn index(&self) -> usize {
        self.history.len() - 1
    }

    /// The current bar.
    #[inline]
    pub fn bar(&self) -> &'a Bar {
        &self.history[self.history.len() - 1]
    }

    /// All bars so far, the current one last.
    #[inline]
    pub fn history(&self) -> &'a [Bar] {
        self.history
    }

    /// The open position, if any.
    #[inline]
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// Whether no position is open.
    #[inline]
    pub fn is_flat(&self) -> bool {
        self.position.is_none()
    }

    /// Whether a long position is open.
    #[inline]
    pub fn is_long(&self) -> bool {
        self.position.is_some_and(|p| p.side == Side::Long)
    }

    /// Whether a short position is open.
    #[inline]
    pub fn is_short(&self) -> bool {
        self.position.is_some_and(|p| p.side == Side::Short)
    }

    /// The cash: starting cash plus the P&L of closed trades.
    pub fn cash(&self) -> f64 {
        self.cash
    }

    /// The equity at this bar's close.
    pub fn equity(&self) -> f64 {
        self.equity
    }

    /// Orders placed at this bar so far (they fill at the next bar's open).
    pub fn pending_orders(&self) -> &[Order] {
        self.orders
    }

    /// Places a market buy of `size` units.
    pub fn buy(&mut self, size: f64) -> Result<(), InvalidOrder> {
        self.check_size(size)?;
        self.orders.push(Order::Buy { size });
        Ok(())
    }

    /// Places a market sell of `size` units.
    pub fn sell(&mut self, size: f64) -> Result<(), InvalidOrder> {
        self.check_size(size)?;
        self.orders.push(Order::Sell { size });
        Ok(())
    }

    /// Places a market order closing the open position.
    pub fn close(&mut self) {
        self.orders.push(Order::Close);
    }

    fn check_size(&self, size: f64) -> Result<(), InvalidOrder> {
        if size.is_finite() && size > 0.0 {
            Ok(())
        } else {
            Err(InvalidOrder {
                size,
                index: self.index(),
            })
        }
    }
}

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
    /// Orders rejected at fill time (see the [module rules](self)).
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

/// The reference engine: runs a [`Strategy`] over bars with the [module rules](self).
///
/// ```
/// use backtest_stream::{EngineConfig, ReferenceEngine, SmaCrossover, SyntheticBars};
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

        let mut cash = initial_cash;
        let mut position: Option<Position> = None;
        let mut trades: Vec<Trade> = Vec::new();
        let mut rejected_orders = 0u64;
        let mut drawdown = DrawdownTracker::new();
        let mut day = bars[0].timestamp.as_offset_date_time().date();
        let mut day_equity = initial_cash;
        let mut previous_time: Option<Timestamp> = None;

        for (index, bar) in bars.iter().enumerate() {
            if previous_time.is_some_and(|t| bar.timestamp <= t) {
                return Err(ReferenceEngineError::NotAscending {
                    index,
                    timestamp: bar.timestamp,
                });
            }
            previous_time = Some(bar.timestamp);

            // Orders placed at the previous close fill at this open.
            if !self.orders.is_empty() {
                for order in self.orders.drain(..) {
                    fill(
                        order,
                        bar,
                        index,
                        slippage,
                        &mut position,
                        &mut cash,
                        &mut trades,
                        &mut rejected_orders,
                    );
                }
            }

            let equity = match &position {
                Some(p) => cash + p.pnl_at(bar.close),
                None => cash,
            };
            drawdown.update(equity);
            let date = bar.timestamp.as_offset_date_time().date();
            if date != day {
                self.daily_equity.push(day_equity);
                day = date;
            }
            day_equity = equity;

            let mut ctx = StrategyContext {
                history: &bars[..=index],
                position,
                cash,
                equity,
                orders: &mut self.orders,
            };
            if let Err(source) = self.strategy.on_bar(&mut ctx) {
                return Err(ReferenceEngineError::Strategy {
                    strategy: self.strategy.name().to_owned(),
                    index,
                    timestamp: bar.timestamp,
                    source,
                });
            }

            let trades_count = trades.len() as u64;
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
        if let Some(open) = position.take() {
            // Closed at the last close, without slippage: the equity at the last bar.
            let last = &bars[bars.len() - 1];
            close_position(open, last, last.close, true, &mut cash, &mut trades);
        }

        let final_balance = cash;
        let metrics = Metrics {
            final_balance,
            return_pct: crate::metrics::return_pct(initial_cash, final_balance),
            drawdown: drawdown.max_drawdown_pct(),
            total_trades: trades.len() as u64,
            win_rate: crate::metrics::win_rate(trades.iter().map(|t| t.pnl)),
            sharpe_ratio: crate::metrics::sharpe_ratio(
                &self.daily_equity,
                self.config.periods_per_year,
            ),
        };
        let mut parameters = Map::new();
        parameters.insert("strategy".into(), self.strategy.name().into());
        for (key, value) in self.strategy.parameters() {
            parameters.insert(key, value);
        }
        parameters.insert("initial_cash".into(), initial_cash.into());
        parameters.insert("slippage".into(), slippage.into());
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
        Ok(BacktestReport {
            metrics,
            trades: trades.into(),
            initial_cash,
            bars: bars.len() as u64,
            unfilled_orders,
            rejected_orders,
            parameters,
            max_result_trades: self.config.max_result_trades,
        })
    }
}

/// Fills one order at `bar`'s open.
#[allow(clippy::too_many_arguments)]
#[cold]
fn fill(
    order: Order,
    bar: &Bar,
    index: usize,
    slippage: f64,
    position: &mut Option<Position>,
    cash: &mut f64,
    trades: &mut Vec<Trade>,
    rejected_orders: &mut u64,
) {
    let open = |side: Side, size: f64, price: f64, verb: &str| {
        log::info!(function = "fill"; "Trade executed: {verb} {size} @ {}", LogPrice(price));
        Position {
            side,
            size,
            entry_price: price,
            entry_time: bar.timestamp,
            entry_index: index,
        }
    };
    match (order, *position) {
        (Order::Buy { size }, None) => {
            *position = Some(open(Side::Long, size, bar.open + slippage, "BUY"));
        }
        (Order::Sell { size }, None) => {
            *position = Some(open(Side::Short, size, bar.open - slippage, "SELL"));
        }
        (Order::Close, Some(p)) => {
            let price = match p.side {
                Side::Long => bar.open - slippage,
                Side::Short => bar.open + slippage,
            };
            *position = None;
            close_position(p, bar, price, false, cash, trades);
        }
        (order, position) => {
            *rejected_orders += 1;
            let state = match position {
                None => "flat",
                Some(Position {
                    side: Side::Long, ..
                }) => "long",
                Some(Position {
                    side: Side::Short, ..
                }) => "short",
            };
            log::warn!(function = "fill"; "Order rejected at bar {index}: {order:?} while {state}");
        }
    }
}

/// A price as log lines show it: at most six decimals, trailing zeros trimmed
/// (`179.13`, `1.084215`), so synthetic prices read like quotes. Formatted only when the
/// record is actually logged.
struct LogPrice(f64);

impl std::fmt::Display for LogPrice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        // Formatted on the stack: a fill's log line costs no allocation for its price
        // (only prices of more than 56 integer digits take the heap).
        let mut stack = StackText::default();
        let heap;
        let text = if write!(stack, "{:.6}", self.0).is_ok() {
            stack.as_str()
        } else {
            heap = format!("{:.6}", self.0);
            &heap
        };
        let trimmed = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            text
        };
        f.write_str(trimmed)
    }
}

/// A short text written in place; writing more than it holds is an error.
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn close_position(
    position: Position,
    bar: &Bar,
    price: f64,
    at_end: bool,
    cash: &mut f64,
    trades: &mut Vec<Trade>,
) {
    let verb = match position.side {
        Side::Long => "SELL",
        Side::Short => "BUY",
    };
    let size = position.size;
    if at_end {
        log::info!(
            function = "close_position";
            "Trade executed: {verb} {size} @ {} (closing at the end of the data)",
            LogPrice(price)
        );
    } else {
        log::info!(function = "close_position"; "Trade executed: {verb} {size} @ {}", LogPrice(price));
    }
    let pnl = position.pnl_at(price);
    *cash += pnl;
    trades.push(Trade {
        side: position.side,
        size,
        entry_time: position.entry_time,
        entry_price: position.entry_price,
        exit_time: bar.timestamp,
        exit_price: price,
        pnl,
        closed_at_end: at_end,
    });
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
/// use backtest_stream::{
///     BacktestId, EventKind, MemorySink, SmaCrossover, SyntheticBars, run_backtest,
/// };
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

#[cfg(test)]
mod tests {
    use super::LogPrice;

    #[test]
    fn log_prices_have_at_most_six_decimals_and_no_trailing_zeros() {
        let cases = [
            (179.13, "179.13"),
            (100.0, "100"),
            (1.23456789, "1.234568"),
            (-2.5, "-2.5"),
            (1e-7, "0"),
            (0.1 + 0.2, "0.3"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
        ];
        for (price, text) in cases {
            assert_eq!(LogPrice(price).to_string(), text, "{price}");
        }
        // Longer than the stack buffer: formatted on the heap, same rule.
        let huge = LogPrice(1e300).to_string();
        assert_eq!(huge.len(), 301);
        assert!(huge.starts_with('1') && !huge.contains('.'));
        // At the stack buffer's edge (64 bytes with the decimals) and one past it.
        for price in [1e56, 1e57, -1e56] {
            let expected = format!("{price:.6}");
            let expected = expected.trim_end_matches('0').trim_end_matches('.');
            assert_eq!(LogPrice(price).to_string(), expected, "{price}");
        }
    }
}
