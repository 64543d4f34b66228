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
//! - **The protocol** of [`docs/PROTOCOL.md`](crate::wire::protocol), spoken with the
//!   types of [`wire`](crate::wire): subscribe (with `backtest_id`, `since` + `epoch`
//!   replay, `snapshot`), unsubscribe, ping, `bad_request` errors, and the
//!   [`CloseCode`](crate::wire::CloseCode)s of its table. Subscribing, its replay and the
//!   switch to live delivery run on the hub task between two events, so the seam has no
//!   gap and no duplicate; a replay longer than the client's queue continues as the
//!   queue drains. The protocol's "Replay details" settle `missed` with a run filter,
//!   `since` with `snapshot`, and `since` without `epoch`.
//! - **Limits** ([`ServerConfig`]): connections, message size, queue and history
//!   sizes, subscriptions per connection, ping interval and timeout (dead peers are
//!   dropped), the write-stall timeout (clients that never read are dropped), allowed
//!   origins, a handshake hook, and [`RateLimits`] (client messages, upgrades per
//!   address, connections per subject, the replay budget). [`Hub::stats`] tells
//!   connections, subscriptions, events and drops by reason.
//! - **Authentication and per-run permissions** ([`ServerConfig::authorizer`], see
//!   [`crate::auth`]): a token in the upgrade request or a first `auth` message, grants
//!   checked once per subscription (the hot path is unchanged) and so on every path an
//!   event takes (live, `since` replay, `snapshot`), refresh, and 4004 at expiry.
//! - **Standalone or embedded, one admission**: [`Server`] listens on its own address
//!   (or [`BackgroundServer`] on a thread of its own, for programs without tokio);
//!   [`Hub::upgrade`] answers the upgrade request of an axum or hyper route (feature
//!   `hyper`); [`Hub::accept`] upgrades a raw stream (TLS, ...); [`Hub::serve`] serves a
//!   WebSocket another library upgraded. All of them decide on a connection the same
//!   way: origin check, handshake hook, rate limit per address, token, connection
//!   limit.
//!
//! ```no_run
//! use backtest_stream::server::{Server, ServerConfig};
//! use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
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

mod accept;
mod access;
mod admission;
mod archive;
mod background;
mod catch_up;
mod config;
mod connection;
mod error;
mod frames;
mod handshake;
mod history;
mod hub;
mod inbox;
mod limits;
mod listener;
#[cfg(feature = "metrics")]
pub mod metrics;
mod queue;
mod shared;
mod sink;
mod stats;
mod subscriptions;
mod task;
#[cfg(feature = "hyper")]
mod upgrade;

#[cfg(feature = "redis")]
pub(crate) use archive::{Archive, ArchiveRequest};
pub use background::BackgroundServer;
pub use config::{LagPolicy, ServerConfig};
pub use connection::ConnectionEnd;
pub use error::ServerError;
pub use handshake::{HandshakeDecision, HandshakeHook, HandshakeRequest};
pub use hub::Hub;
pub use limits::RateLimits;
pub use listener::Server;
#[cfg(feature = "redis")]
pub(crate) use shared::{Command, Input};
pub use sink::HubSink;
pub use stats::{AccessEvents, ConnectionEvents, DroppedFrames, ReplayEvents, ServerStats};
