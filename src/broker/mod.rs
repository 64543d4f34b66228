//! Scale-out through a broker (feature `redis`): backtest workers publish into Redis
//! Streams with [`RedisSink`], and gateways ([`Gateway`], with feature `server` too)
//! serve the streams to clients, each a hub fed by the broker.
//!
//! One stream per topic holds the topic's events in order, numbered once, in Redis: the
//! entry id of an event is `{seq}-0`, so every gateway reading the stream delivers the
//! same `seq` under the same `epoch`. The keys of topic `T` (with the default prefix):
//!
//! | key | holds |
//! | --- | --- |
//! | `backtest-stream:{T}:stream` | the stream: `{seq}-0` entries with field `e` (the event's JSON, `{"type":...,"data":...}`), and `{seq}-N` loss markers with field `m` (`{"missed":N,"backtest_id":...}`: events the sink had to drop, announced to subscribers as `lagged`) |
//! | `backtest-stream:{T}:seq` | the last seq given |
//! | `backtest-stream:{T}:epoch` | the epoch of the numbering: made with the topic's first event, made anew when the seq counter was lost (a Redis without persistence restarted) |
//!
//! Seq and epoch are assigned by a script, atomically with the append; a batch retried
//! after a lost reply is applied once. Needs Redis 7 or later.
//!
//! ```no_run
//! use backtest_stream::broker::RedisSink;
//! use backtest_stream::streamer::{ProgressStreamer, RunInfo, RunResults};
//!
//! let sink = RedisSink::connect("redis://127.0.0.1:6379")?;
//! let mut run = ProgressStreamer::new(sink.clone()).start(RunInfo::new("vanilla", "EURUSD"), 100);
//! for bar in 1..=100 {
//!     run.progress(bar, Default::default);
//! }
//! run.complete(RunResults::default());
//! sink.flush_within(std::time::Duration::from_secs(5))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "server")]
mod archive;
mod config;
#[cfg(feature = "server")]
mod follow;
#[cfg(feature = "server")]
mod gateway;
mod queue;
mod script;
mod sink;
mod writer;

pub use crate::broker::config::RedisSinkConfig;
#[cfg(feature = "metrics")]
pub(crate) use crate::broker::gateway::FollowState;
#[cfg(feature = "server")]
pub use crate::broker::gateway::{Gateway, GatewayConfig, GatewayError, GatewayStats};
pub use crate::broker::sink::{RedisSink, RedisSinkError, RedisSinkStats};
