//! The WebSocket broadcast server (feature `server`): the original system's
//! `ConnectionManager` and `/ws` endpoint, without its weaknesses.
//!
//! - **Publishing never waits.** A backtest thread publishes through a [`HubSink`]
//!   (or [`Hub::publish`]): the event goes into a bounded queue, whatever the number of
//!   clients. One hub task numbers each event per topic (`seq`), serializes it **once**
//!   into a shared frame, keeps it in a bounded per-topic history and hands the frame to
//!   each subscribed connection's bounded queue.
//! - **A slow client only hurts itself.** Each connection writes its own queue in
//!   batches (one flush per batch). What overflows is counted and announced with a
//!   `lagged` notice; the terminal event of a run still gets through
//!   ([`LagPolicy`] can instead disconnect clients that fall behind).
//! - **The protocol** of `PROTOCOL.md`: subscribe (with `backtest_id`, `since` +
//!   `epoch` replay, `snapshot`), unsubscribe, ping, `bad_request` errors; close codes
//!   1001, 1008, 1009, 1013.
//! - **Standalone or embedded**: [`Server`] listens on its own address (or
//!   [`BackgroundServer`] on a thread of its own, for programs without tokio);
//!   [`Hub::serve`] serves a connection that another framework already upgraded.
//!
//! ```no_run
//! use backtest_stream::server::{Server, ServerConfig};
//! use backtest_stream::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::bind(ServerConfig::default()).await?; // ws://127.0.0.1:8000/ws
//! let sink = server.hub().sink();
//! std::thread::spawn(move || {
//!     let bars = 10_000;
//!     let mut run = ProgressStreamer::new(sink).start(RunInfo::new("vanilla", "EURUSD"), bars);
//!     for bar in 1..=bars {
//!         run.progress(bar, ProgressDetails::default);
//!     }
//!     run.complete(RunResults::default());
//! });
//! server.run_until(std::future::pending::<()>()).await?;
//! # Ok(())
//! # }
//! ```

mod background;
mod config;
mod connection;
mod error;
mod history;
mod hub;
mod inbox;
mod listener;
mod protocol;
mod queue;
mod sink;
mod stats;

pub use background::BackgroundServer;
pub use config::{HandshakeDecision, HandshakeHook, HandshakeRequest, LagPolicy, ServerConfig};
pub use connection::ConnectionEnd;
pub use error::ServerError;
pub use hub::Hub;
pub use listener::Server;
pub use protocol::{BadRequest, ClientMessage, Subscribe};
pub use sink::HubSink;
pub use stats::{ConnectionEvents, DroppedFrames, ServerStats};
