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
//!   1001, 1008, 1009, 1013. Subscribing, its replay and the switch to live delivery
//!   run on the hub task between two events, so the seam has no gap and no duplicate;
//!   a replay longer than the client's queue continues as the queue drains.
//! - **Limits** ([`ServerConfig`]): connections, message size, queue and history
//!   sizes, subscriptions per connection, ping interval and timeout (dead peers are
//!   dropped), allowed origins and a handshake hook for authentication.
//!   [`Hub::stats`] tells connections, subscriptions, events and drops by reason.
//! - **Standalone or embedded**: [`Server`] listens on its own address (or
//!   [`BackgroundServer`] on a thread of its own, for programs without tokio);
//!   [`Hub::serve`] serves a connection that another framework already upgraded.
//!
//! # Replay details
//!
//! These settle what `PROTOCOL.md` leaves open:
//!
//! - **`missed` with a `backtest_id` filter is an upper bound.** The history is kept per
//!   topic, not per run, so the `missed` of a filtered `since` (in its `lagged` notice,
//!   and `recovered: false`) counts every event of the topic after `since` that is no
//!   longer retained, whichever run it belonged to. `missed: 0` (`recovered: true`)
//!   is exact: nothing of the run was lost.
//! - **`since` and `snapshot` together send no seq twice.** The snapshot then only
//!   fills the part of the gap that is no longer retained: frames the client already
//!   has (`seq <= since`) and frames the replay sends (still retained) are left out of
//!   it, and what remains is sent in seq order, before the replay. So a client sees
//!   strictly increasing seqs: the latest state of runs from the lost part of the gap,
//!   a `lagged` notice when something was lost, the retained events, then live ones.
//!   Without `since` (or when it cannot be honoured: another epoch, or ahead of the
//!   head) the whole snapshot is sent, as for a late joiner.
//! - **`since` without `epoch`** is taken to be of this server's epoch. A client that
//!   may outlive a server restart should send the `epoch` of its last confirmation:
//!   only then can a new server answer `recovered: false` instead of replaying seqs
//!   that meant other events.
//! - **A client that never reads** is dropped once its socket has taken none of its
//!   waiting frames for [`ServerConfig::write_stall_timeout`], even if it keeps
//!   sending (which counts as a sign of life for the ping check).
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
