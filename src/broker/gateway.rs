//! [`Gateway`]: a hub whose input is the broker: it follows the topics' Redis streams
//! and delivers their events with the broker's `seq` and `epoch`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use crate::broker::archive::archive;
use crate::broker::follow::Follower;
use crate::server::{Command, Hub};
use crate::wire::Topic;

/// What a [`Gateway`] follows, and how.
///
/// ```
/// use backtest_stream::broker::GatewayConfig;
/// use backtest_stream::wire::Topic;
///
/// let config = GatewayConfig::default().topics([Topic::BACKTEST]);
/// assert_eq!(config.topics, [Topic::BACKTEST]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// The topics followed (default `backtest` and `logs`).
    pub topics: Vec<Topic>,
    /// The prefix of the keys (default `backtest-stream`, as the sink's).
    pub key_prefix: String,
    /// Entries read from each stream's tail when the gateway starts, to rebuild its
    /// history and snapshot state (default 1,024; make it the hub's `history_size`).
    pub tail: usize,
    /// Entries read per call at most (default 512).
    pub batch: usize,
    /// How long one blocking read waits for new entries (default 1 s).
    pub block: Duration,
    /// The longest pause between two attempts to reach Redis (default 5 s).
    pub max_backoff: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            topics: vec![Topic::BACKTEST, Topic::LOGS],
            key_prefix: "backtest-stream".into(),
            tail: 1_024,
            batch: 512,
            block: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl GatewayConfig {
    /// Sets [`topics`](Self::topics).
    pub fn topics(mut self, topics: impl IntoIterator<Item = Topic>) -> Self {
        self.topics = topics.into_iter().collect();
        self
    }
    /// Sets [`key_prefix`](Self::key_prefix).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
    /// Sets [`tail`](Self::tail).
    pub fn tail(mut self, entries: usize) -> Self {
        self.tail = entries;
        self
    }
    /// Sets [`batch`](Self::batch) (at least 1).
    pub fn batch(mut self, entries: usize) -> Self {
        self.batch = entries.max(1);
        self
    }
    /// Sets [`block`](Self::block).
    pub fn block(mut self, wait: Duration) -> Self {
        self.block = wait;
        self
    }
    /// Sets [`max_backoff`](Self::max_backoff).
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }
}

/// Why a [`Gateway`] cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The URL is no Redis URL.
    #[error("invalid Redis URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No topic to follow.
    #[error("no topic to follow")]
    NoTopics,
}

/// What a [`Gateway`] has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Whether the last call to Redis succeeded (a gateway cut from Redis says so here,
    /// and catches up when Redis is back).
    pub connected: bool,
    /// Events read from the streams and handed to the hub.
    pub events: u64,
    /// Loss markers read (announced to subscribers as `lagged`).
    pub loss_markers: u64,
    /// Entries that could not be read (not an event, not a marker): skipped.
    pub malformed: u64,
    /// Times a topic's epoch changed (the broker lost its data).
    pub epoch_changes: u64,
    /// Calls to Redis that failed.
    pub failures: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Connections to Redis made again after a failure.
    pub reconnects: u64,
    /// The last seq read, per topic.
    pub last_seq: BTreeMap<Topic, u64>,
    /// The broker lag: events numbered in Redis that the gateway had not yet read, per
    /// topic, as of its last look at the topics' counters (at most `block` ago while
    /// connected).
    pub behind: BTreeMap<Topic, u64>,
}

/// What the follower reports, shared with the gateway.
#[derive(Debug, Default)]
pub(crate) struct FollowState {
    pub(crate) stats: Mutex<GatewayStats>,
}

impl FollowState {
    /// The stats now.
    pub(crate) fn snapshot(&self) -> GatewayStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut GatewayStats)) {
        change(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A hub fed by the broker instead of in-process publishers (see [the
/// module](crate::broker)): it follows each topic's stream with blocking reads from
/// where it stopped, delivers with the broker's `seq` and `epoch` (so several gateways
/// give identical streams, and a client may resume on any of them), rebuilds its
/// history and snapshot state from the streams' tails when it starts, serves a `since`
/// older than its history from the streams (up to the client's queue capacity; the rest
/// announced with `lagged`), announces loss
/// markers as `lagged`, and when a topic's epoch changes (the broker lost its data)
/// starts the topic anew and asks its subscribers to reconnect. Serve the hub as any
/// other (`Server`, `Hub::upgrade`); the gateway stops when dropped.
#[derive(Debug)]
pub struct Gateway {
    hub: Hub,
    state: Arc<FollowState>,
    task: tokio::task::JoinHandle<()>,
    fetching: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Starts following the Redis at `url` into `hub` (on the hub's runtime). Redis
    /// need not be up yet: the gateway connects (and reconnects) by itself.
    pub fn start(hub: &Hub, url: &str, config: GatewayConfig) -> Result<Self, GatewayError> {
        if config.topics.is_empty() {
            return Err(GatewayError::NoTopics);
        }
        let client = ::redis::Client::open(url).map_err(|e| GatewayError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let state = Arc::new(FollowState::default());
        // Replays older than the hub's history come from the streams.
        let (archive, fetcher) = archive(client.clone(), hub.clone(), config.key_prefix.clone());
        hub.command(Command::SetArchive(Arc::new(archive)));
        let fetching = hub.runtime.spawn(fetcher.run());
        let follower = Follower::new(client, hub.clone(), Arc::clone(&state), config);
        let task = hub.runtime.spawn(follower.run());
        Ok(Self {
            hub: hub.clone(),
            state,
            task,
            fetching,
        })
    }

    /// The hub the gateway feeds.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// What the gateway has done so far.
    pub fn stats(&self) -> GatewayStats {
        self.state.snapshot()
    }

    /// The shared state behind [`stats`](Self::stats), for the metrics.
    #[cfg(feature = "metrics")]
    pub(crate) fn state(&self) -> Arc<FollowState> {
        Arc::clone(&self.state)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
        self.fetching.abort();
    }
}
