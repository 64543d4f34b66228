//! Stream the life of a trading backtest (start, progress, log lines, final results,
//! errors) to user interfaces in real time.
//!
//! The crate is a stack of small layers, each a module; every public item has exactly
//! one path, and each layer uses only the ones above it in this table:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`wire`] | the contract: the five events, their framing, the client/server protocol, close codes ([`wire::protocol`] is `docs/PROTOCOL.md`) |
//! | [`sink`] | the [`ProgressSink`](sink::ProgressSink) trait every transport implements, and ready sinks: memory, channel, JSON Lines, fan-out |
//! | [`streamer`] | a run's lifecycle: start, throttled progress, complete or error ([`ProgressStreamer`](streamer::ProgressStreamer)) |
//! | [`log_bridge`] | a [`log::Log`](https://docs.rs/log/0.4/log/trait.Log.html) bridge that turns the program's log records into `log_entry` events of the right run |
//! | [`tracing_layer`] | the same for `tracing` events (feature `tracing`) |
//! | [`engine`] | streaming for any backtest engine: the [`BacktestEngine`](engine::BacktestEngine) trait and the [`BacktestRunner`](engine::BacktestRunner) |
//! | [`reference`](mod@reference) | a small, exact reference engine: strategies, the SMA crossover, metrics, bars from CSV files or a generator |
//! | [`auth`] | who may follow what: [`Grants`](auth::Grants), the [`Authorizer`](auth::Authorizer) trait, and a JWT verifier (feature `auth`) |
//! | [`broker`](mod@broker) | scale-out: [`RedisSink`](broker::RedisSink) writes events to Redis Streams, numbered there, for gateways (feature `redis`) |
//! | [`server`] | the WebSocket broadcast hub, standalone or embedded in an axum/hyper application (feature `server`) |
//!
//! The core (`wire`, `sink`, `streamer`, `log_bridge`, `engine`, `reference`) needs no
//! async runtime: a plain synchronous backtest loop can use it, and publishing never
//! blocks on I/O.
//!
//! # Quick start
//!
//! ```
//! use backtest_stream::sink::JsonLinesSink;
//! use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
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
//! | `server` | yes | [`server`]: the WebSocket broadcast hub (tokio, tokio-tungstenite) |
//! | `hyper` | no | [`server::Hub::upgrade`]: the hub on a hyper or axum route (hyper, hyper-util) |
//! | `auth` | no | [`auth::JwtVerifier`]: JSON Web Token verification (jsonwebtoken, RustCrypto backend) |
//! | `redis` | no | [`broker::RedisSink`]: events to Redis Streams (the `redis` crate, tokio) |
//! | `metrics` | no | [`server::metrics`]: the hub's and a gateway's figures as Prometheus metrics (prometheus-client) |
//! | `csv` | yes | [`reference::load_csv`] and [`reference::read_csv`] (the `csv` crate) |
//! | `tracing` | no | [`tracing_layer`]: `tracing` events as `log_entry` events, correlated by span |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    unreachable_pub,
    missing_debug_implementations,
    clippy::too_many_lines,
    rust_2018_idioms
)]

pub mod auth;
#[cfg(feature = "redis")]
pub mod broker;
pub mod engine;
pub mod log_bridge;
pub mod reference;
#[cfg(feature = "server")]
pub mod server;
pub mod sink;
pub mod streamer;
#[cfg(feature = "tracing")]
pub mod tracing_layer;
pub mod wire;

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
