//! The account of a run: cash, the open position and the closed trades; how orders fill,
//! and the log line each fill makes.

use crate::reference::{Bar, Order, Position};
use crate::wire::{Side, Trade};

/// Cash, the open position, the closed trades and the count of rejected orders.
#[derive(Debug)]
pub(super) struct Account {
    pub(super) cash: f64,
    pub(super) position: Option<Position>,
    pub(super) trades: Vec<Trade>,
    pub(super) rejected_orders: u64,
}

impl Account {
    /// An account holding `cash` and no position.
    pub(super) fn new(cash: f64) -> Self {
        Self {
            cash,
            position: None,
            trades: Vec::new(),
            rejected_orders: 0,
        }
    }

    /// Cash plus the open position marked at `price`.
    #[inline]
    pub(super) fn equity_at(&self, price: f64) -> f64 {
        match &self.position {
            Some(p) => self.cash + p.pnl_at(price),
            None => self.cash,
        }
    }

    /// Fills one order at `bar`'s open (bar number `index`), `slippage` against the
    /// trader; an order the position does not allow is rejected and counted.
    #[cold]
    pub(super) fn fill(&mut self, order: Order, bar: &Bar, index: usize, slippage: f64) {
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
        match (order, self.position) {
            (Order::Buy { size }, None) => {
                self.position = Some(open(Side::Long, size, bar.open + slippage, "BUY"));
            }
            (Order::Sell { size }, None) => {
                self.position = Some(open(Side::Short, size, bar.open - slippage, "SELL"));
            }
            (Order::Close, Some(p)) => {
                let price = match p.side {
                    Side::Long => bar.open - slippage,
                    Side::Short => bar.open + slippage,
                };
                self.position = None;
                self.close_position(p, bar, price, false);
            }
            (order, position) => {
                self.rejected_orders += 1;
                let state = match position.map(|p| p.side) {
                    None => "flat",
                    Some(Side::Long) => "long",
                    Some(Side::Short) => "short",
                };
                log::warn!(function = "fill"; "Order rejected at bar {index}: {order:?} while {state}");
            }
        }
    }

    /// Closes `position` at `price` on `bar` (`at_end`: because the data ended), adding
    /// its P&L to the cash and the trade to the list.
    pub(super) fn close_position(
        &mut self,
        position: Position,
        bar: &Bar,
        price: f64,
        at_end: bool,
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
        self.cash += pnl;
        self.trades.push(Trade {
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
