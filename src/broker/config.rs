//! [`RedisSinkConfig`]: the bounds and timers of a [`RedisSink`](crate::broker::RedisSink).

use std::time::Duration;

/// How a [`RedisSink`](crate::broker::RedisSink) queues, batches and writes.
///
/// ```
/// use std::time::Duration;
/// use backtest_stream::broker::RedisSinkConfig;
///
/// let config = RedisSinkConfig::default().max_len(10_000).terminal_wait(Duration::from_secs(2));
/// assert_eq!(config.max_len, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisSinkConfig {
    /// Events waiting to be written (default 65,536). While Redis is slow or unreachable
    /// they wait here; past three quarters of it progress events are refused, past all
    /// of it log lines and starts too (counted, and announced to the topic's
    /// subscribers with a loss marker once writing resumes).
    pub queue_capacity: usize,
    /// Room beyond [`queue_capacity`](Self::queue_capacity) kept for the runs' terminal
    /// events (default 4,096).
    pub terminal_reserve: usize,
    /// How long a terminal event waits for room when even the reserve is full (default
    /// 5 s); then the publish fails and the caller is told.
    pub terminal_wait: Duration,
    /// Entries kept per topic stream, roughly (`XADD ... MAXLEN ~`; default 100,000).
    pub max_len: u64,
    /// The prefix of the keys (default `backtest-stream`).
    pub key_prefix: String,
    /// Events written per script call at most (default 512).
    pub batch_size: usize,
    /// The longest pause between two attempts to reach Redis (default 5 s); the first
    /// is 100 ms, doubling.
    pub max_backoff: Duration,
    /// How long one call to Redis may take before it counts as failed (default 5 s).
    pub response_timeout: Duration,
}

impl Default for RedisSinkConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            terminal_reserve: 4_096,
            terminal_wait: Duration::from_secs(5),
            max_len: 100_000,
            key_prefix: "backtest-stream".into(),
            batch_size: 512,
            max_backoff: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
        }
    }
}

impl RedisSinkConfig {
    /// Sets [`queue_capacity`](Self::queue_capacity) (at least 4).
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events.max(4);
        self
    }
    /// Sets [`terminal_reserve`](Self::terminal_reserve).
    pub fn terminal_reserve(mut self, events: usize) -> Self {
        self.terminal_reserve = events;
        self
    }
    /// Sets [`terminal_wait`](Self::terminal_wait).
    pub fn terminal_wait(mut self, wait: Duration) -> Self {
        self.terminal_wait = wait;
        self
    }
    /// Sets [`max_len`](Self::max_len) (at least 1).
    pub fn max_len(mut self, entries: u64) -> Self {
        self.max_len = entries.max(1);
        self
    }
    /// Sets [`key_prefix`](Self::key_prefix).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
    /// Sets [`batch_size`](Self::batch_size) (at least 1).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }
    /// Sets [`max_backoff`](Self::max_backoff).
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }
    /// Sets [`response_timeout`](Self::response_timeout).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }
}
