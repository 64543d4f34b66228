//! What a strategy is and sees: [`Strategy`], [`StrategyContext`], [`Order`] and
//! [`Position`].

use std::fmt;

use serde_json::{Map, Value};

use crate::reference::Bar;
use crate::wire::{Side, Timestamp};

/// The error a strategy may return from [`Strategy::on_bar`]: any error.
pub type StrategyError = Box<dyn std::error::Error + Send + Sync>;

/// A trading strategy for the [`ReferenceEngine`](crate::reference::ReferenceEngine).
///
/// ```
/// use backtest_stream::reference::{Strategy, StrategyContext, StrategyError};
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
    /// What the strategy sees at the close of the last bar of `history`.
    pub(super) fn new(
        history: &'a [Bar],
        position: Option<Position>,
        cash: f64,
        equity: f64,
        orders: &'a mut Vec<Order>,
    ) -> Self {
        Self {
            history,
            position,
            cash,
            equity,
            orders,
        }
    }

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
