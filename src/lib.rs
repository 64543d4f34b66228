//! Stream the life of a trading backtest (start, progress, log lines, final results,
//! errors) to user interfaces in real time.
//!
//! The crate is built from a few parts that compose:
//!
//! - the **event model** ([`Event`] and its five payloads), serialized exactly as the
//!   original system did: `{"type": "backtest_progress", "data": {...}}`;
//! - the **[`ProgressSink`] trait**, which every transport implements, with ready sinks:
//!   [`MemorySink`], [`channel`], [`JsonLinesSink`], [`FanOut`], [`NoopSink`] and
//!   [`sink_fn`];
//! - the **[`ProgressStreamer`]**, which turns a run's lifecycle into events: start,
//!   throttled progress, complete or error, with the duration computed for you;
//! - the **[`log_bridge`]**, a [`log::Log`] implementation ([`LogBridge`]) that streams
//!   the program's log records as `log_entry` events of the right run ([`LogScope`]),
//!   next to the program's own console logger;
//! - the **engine wrapper**: a [`BacktestRunner`] gives any [`BacktestEngine`] the
//!   whole stream (start, throttled progress, the run's own log lines, complete or
//!   error, also on a panic or a cancellation), and the crate brings a small, exact
//!   [`ReferenceEngine`] with the [`SmaCrossover`] strategy, the [`metrics`], and
//!   [`Bar`] data from CSV files or a seeded generator ([`SyntheticBars`]);
//!   [`run_backtest`] does it all in one call;
//! - the **[`server`]** (feature `server`): a WebSocket broadcast hub with topic and
//!   per-run subscriptions, replay, snapshots and slow-client isolation, standalone
//!   ([`server::Server`], [`server::BackgroundServer`]) or embedded in an existing web
//!   application ([`server::Hub::serve`]).
//!
//! Where to look: the wire format is `event.rs`, the sink trait `sink.rs`, the server
//! `server/`.
//!
//! # Quick start
//!
//! ```
//! use backtest_stream::{JsonLinesSink, ProgressDetails, ProgressStreamer, RunInfo, RunResults};
//!
//! let bars = 10_000;
//! let mut run = ProgressStreamer::new(JsonLinesSink::stdout())
//!     .start(RunInfo::new("vanilla", "EURUSD").timeframe("H1"), bars);
//! let mut pnl = 0.0;
//! for bar in 1..=bars {
//!     pnl += 0.01; // ... the engine's work ...
//!     run.progress(bar, || ProgressDetails { current_pnl: pnl, ..Default::default() });
//! }
//! run.complete(RunResults { final_balance: 10_000.0 + pnl, ..Default::default() });
//! ```
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `server` | yes | the WebSocket broadcast server (tokio, tokio-tungstenite) |
//! | `tracing` | no | [`tracing_layer`]: `tracing` events as `log_entry` events, correlated by span (tracing, tracing-subscriber) |
//! | `csv` | yes | the CSV bar loader (`load_csv`, `read_csv`; the `csv` crate) |
//!
//! The core (events, sinks, streamer) needs no async runtime: a plain synchronous
//! backtest loop can use it, and publishing never blocks on I/O.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bar;
#[cfg(feature = "csv")]
mod csv_data;
pub mod engine;
mod event;
mod id;
mod json_text;
mod jsonl;
mod memory;
pub mod metrics;
pub mod reference_engine;
mod results;
mod sink;
mod sma_crossover;
mod streamer;
mod synthetic;
mod timestamp;
mod topic;
mod trade;

#[cfg(feature = "server")]
pub mod server;

pub use bar::Bar;
#[cfg(feature = "csv")]
pub use csv_data::{CSV_COLUMNS, CsvError, load_csv, read_csv};
pub use engine::{
    BacktestEngine, BacktestRunner, CancelToken, Cancelled, EngineOutput, RunError, RunMonitor,
    error_chain,
};
pub mod log_bridge;
#[cfg(feature = "tracing")]
pub mod tracing_layer;

pub use event::{
    BacktestComplete, BacktestError, BacktestProgress, BacktestStart, Event, EventKind, LogEntry,
    LogLevel,
};
pub use id::{BacktestId, InvalidBacktestId};
pub use jsonl::{
    JsonLinesConfig, JsonLinesReader, JsonLinesSink, JsonLinesStats, OverflowPolicy,
    ReadJsonLinesError, read_json_lines,
};
pub use log_bridge::{BacktestLogging, LogBridge, LogScope, RunLogger, setup_backtest_logging};
pub use memory::{ChannelSink, MemorySink, channel};
pub use metrics::Metrics;
pub use reference_engine::{
    BacktestReport, EngineConfig, InvalidOrder, Order, Position, ReferenceEngine,
    ReferenceEngineError, Strategy, StrategyContext, StrategyError, run_backtest,
};
pub use results::Results;
pub use sink::{
    Envelope, FanOut, FanOutFailures, FnSink, NoopSink, ProgressSink, SinkError, sink_fn,
};
pub use sma_crossover::{SmaCrossover, SmaParamsError};
pub use streamer::{
    DeliveryStats, ProgressDetails, ProgressStreamer, RunInfo, RunResults, RunSummary,
    RunningBacktest, SharedSink, SinkErrorHook, StreamerConfig,
};
pub use synthetic::{SyntheticBars, SyntheticError};
pub use timestamp::{Timestamp, TimestampError};
pub use topic::{InvalidTopic, Topic};
pub use trade::{Side, Trade};

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
