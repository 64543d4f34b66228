//! A small, exact reference engine: market orders on bars, one position at a time, with
//! the [`SmaCrossover`] strategy, the [`metrics`] of `backtest_complete`, and [`Bar`] data
//! from CSV files ([`load_csv`], feature `csv`) or a seeded generator ([`SyntheticBars`]).
//!
//! [`ReferenceEngine`] implements [`BacktestEngine`](crate::engine::BacktestEngine), so a
//! [`BacktestRunner`](crate::engine::BacktestRunner) streams its runs; [`run_backtest`]
//! does it all in one call.
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
//! - Each fill is logged at INFO through [`log`](https://docs.rs/log/0.4/log/): `Trade executed: BUY 1 @ 179.13` (prices
//!   with at most six decimals, trailing zeros trimmed; the key-value `function` names
//!   `fill` or `close_position`).
//! - The metrics are those of [`metrics`], computed from the per-bar equity.
//!
//! # Defaults
//!
//! One set, used by the library's `Default`s, the demo and `examples/backtest` alike:
//!
//! | setting | default | where |
//! |---|---|---|
//! | SMA periods | fast 10, slow 30 | [`SmaCrossover::DEFAULT_FAST`], [`SmaCrossover::DEFAULT_SLOW`] |
//! | order size | 10 units | [`SmaCrossover::DEFAULT_SIZE`] |
//! | starting cash | 10,000 | [`EngineConfig::initial_cash`] |
//! | slippage | 0 | [`EngineConfig::slippage`] |
//! | Sharpe annualisation | 252 periods a year | [`metrics::DEFAULT_PERIODS_PER_YEAR`] |
//! | synthetic data | 10,000 hourly bars from 2024-01-01, seed 42, first open 100 | [`SyntheticBars::default`] |
//! | symbol and timeframe | `SYNTH` and `H1` for synthetic bars; for a CSV file, the file's name and the spacing of its first two bars | [`SyntheticBars::SYMBOL`] |
//!
//! The demo's runs default to 5,000 bars paced at 3 ms each (a run a person can watch
//! for 15 s); that is pacing, not a different strategy or market.

mod account;
mod bar;
#[cfg(feature = "csv")]
mod csv;
mod engine;
pub mod metrics;
mod sma_crossover;
mod strategy;
mod synthetic;

pub use bar::{Bar, timeframe, timeframe_of};
#[cfg(feature = "csv")]
pub use csv::{CSV_COLUMNS, CsvError, load_csv, read_csv, read_csv_range};
pub use engine::{
    BacktestReport, EngineConfig, ReferenceEngine, ReferenceEngineError, run_backtest,
};
pub use sma_crossover::{SmaCrossover, SmaParamsError};
pub use strategy::{InvalidOrder, Order, Position, Strategy, StrategyContext, StrategyError};
pub use synthetic::{SyntheticBars, SyntheticError};
