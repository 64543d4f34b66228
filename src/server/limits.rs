//! Rate limits ([`RateLimits`]): client messages per connection, upgrades per client
//! address, connections per subject, and the replay budget of a connection; and the
//! limiters that apply them.
//!
//! The token buckets of messages and upgrades are `governor`'s (GCRA); the replay budget
//! is a byte bucket that may go into debt: a replay that starts within the budget is
//! sent whole (it cannot stop midway without a gap), and the next waits until the debt
//! is paid back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

/// The rate limits of a server (see the protocol, "Rate limits"). Every limit has a
/// default; change what you need with the builder methods.
///
/// ```
/// use std::time::Duration;
/// use backtest_stream::server::{RateLimits, ServerConfig};
///
/// let config = ServerConfig::default().rate_limits(
///     RateLimits::default()
///         .messages(20, 40)
///         .upgrades_per_minute_per_address(Some(30))
///         .replay_budget(8 << 20, Duration::from_secs(10)),
/// );
/// assert_eq!(config.rate_limits.message_burst, 40);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// Client messages a connection may send per second, on average (default 50). A
    /// message over the limit is answered with a `rate_limited` error and not acted on.
    pub messages_per_second: u32,
    /// Client messages a connection may send at once (default 100).
    pub message_burst: u32,
    /// Messages over the limit a client may send in a row before it is closed with 4503
    /// (default 50).
    pub refused_before_close: u32,
    /// Upgrade requests per minute from one client address (default: no limit, as many
    /// clients may share the address of a proxy); over it: HTTP 429 with `Retry-After`.
    pub upgrades_per_minute_per_address: Option<u32>,
    /// Connections at once per subject (the token's `sub`; default 64); one more is
    /// closed with 4504. Only with an authorizer.
    pub connections_per_subject: Option<usize>,
    /// Bytes of `since` replay and `snapshot` one connection may be sent per
    /// [`replay_interval`](Self::replay_interval) (default 16 MiB); a subscribe asking
    /// for a replay while the budget is spent is answered `rate_limited`.
    pub replay_bytes: usize,
    /// The interval over which [`replay_bytes`](Self::replay_bytes) refills (default
    /// 10 s).
    pub replay_interval: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            messages_per_second: 50,
            message_burst: 100,
            refused_before_close: 50,
            upgrades_per_minute_per_address: None,
            connections_per_subject: Some(64),
            replay_bytes: 16 << 20,
            replay_interval: Duration::from_secs(10),
        }
    }
}

impl RateLimits {
    /// Sets [`messages_per_second`](Self::messages_per_second) and
    /// [`message_burst`](Self::message_burst) (each at least 1).
    pub fn messages(mut self, per_second: u32, burst: u32) -> Self {
        self.messages_per_second = per_second.max(1);
        self.message_burst = burst.max(1);
        self
    }
    /// Sets [`refused_before_close`](Self::refused_before_close).
    pub fn refused_before_close(mut self, messages: u32) -> Self {
        self.refused_before_close = messages;
        self
    }
    /// Sets [`upgrades_per_minute_per_address`](Self::upgrades_per_minute_per_address).
    pub fn upgrades_per_minute_per_address(mut self, upgrades: Option<u32>) -> Self {
        self.upgrades_per_minute_per_address = upgrades;
        self
    }
    /// Sets [`connections_per_subject`](Self::connections_per_subject).
    pub fn connections_per_subject(mut self, connections: Option<usize>) -> Self {
        self.connections_per_subject = connections;
        self
    }
    /// Sets [`replay_bytes`](Self::replay_bytes) and
    /// [`replay_interval`](Self::replay_interval).
    pub fn replay_budget(mut self, bytes: usize, interval: Duration) -> Self {
        self.replay_bytes = bytes;
        self.replay_interval = interval.max(Duration::from_millis(1));
        self
    }
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The message bucket of one connection.
#[derive(Debug)]
pub(crate) struct MessageLimiter {
    bucket: DefaultDirectRateLimiter,
    refused_in_a_row: u32,
    close_after: u32,
}

/// What the message limiter says about one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MessageVerdict {
    Allowed,
    /// Refuse it (answer `rate_limited`).
    Refused,
    /// Refused too often in a row: close with 4503.
    Close,
}

impl MessageLimiter {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        let quota = Quota::per_second(non_zero(limits.messages_per_second))
            .allow_burst(non_zero(limits.message_burst));
        Self {
            bucket: DefaultDirectRateLimiter::direct(quota),
            refused_in_a_row: 0,
            close_after: limits.refused_before_close,
        }
    }

    pub(crate) fn check(&mut self) -> MessageVerdict {
        if self.bucket.check().is_ok() {
            self.refused_in_a_row = 0;
            return MessageVerdict::Allowed;
        }
        self.refused_in_a_row = self.refused_in_a_row.saturating_add(1);
        if self.refused_in_a_row > self.close_after {
            MessageVerdict::Close
        } else {
            MessageVerdict::Refused
        }
    }
}

/// Upgrade requests per client address.
#[derive(Debug)]
pub(crate) struct AddressLimiter {
    bucket: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    checks: AtomicUsize,
}

/// Checks between two sweeps of addresses whose bucket is full again.
const SWEEP_EVERY: usize = 4_096;

impl AddressLimiter {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            bucket: DefaultKeyedRateLimiter::keyed(Quota::per_minute(non_zero(per_minute))),
            clock: DefaultClock::default(),
            checks: AtomicUsize::new(0),
        }
    }

    /// `Err(retry_after)` when `address` is over its limit.
    pub(crate) fn check(&self, address: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // The memory of the limiter stays bounded by the addresses seen recently.
            self.bucket.retain_recent();
        }
        self.bucket
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The replay budget of one connection: bytes that refill at `bytes` per `interval` up
/// to `bytes`; spending may go below zero.
#[derive(Debug)]
pub(crate) struct ReplayBudget {
    available: f64,
    capacity: f64,
    per_second: f64,
    last: Instant,
}

impl ReplayBudget {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        let capacity = limits.replay_bytes as f64;
        Self {
            available: capacity,
            capacity,
            per_second: capacity / limits.replay_interval.as_secs_f64(),
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.available = (self.available + elapsed * self.per_second).min(self.capacity);
    }

    /// Whether a replay may start now.
    pub(crate) fn may_replay(&mut self) -> bool {
        self.refill();
        self.available > 0.0
    }

    /// Counts `bytes` sent by a replay.
    pub(crate) fn spend(&mut self, bytes: usize) {
        self.available -= bytes as f64;
    }
}

/// Connections per subject, at once.
#[derive(Debug, Default)]
pub(crate) struct SubjectCounts(Mutex<HashMap<String, usize>>);

impl SubjectCounts {
    /// Counts one more connection of `subject`, unless it has `limit` already.
    pub(crate) fn enter(&self, subject: &str, limit: Option<usize>) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.get(subject).copied().unwrap_or(0);
        if limit.is_some_and(|limit| count >= limit) {
            return false;
        }
        counts.insert(subject.to_owned(), count + 1);
        true
    }

    /// Counts one connection of `subject` less.
    pub(crate) fn leave(&self, subject: &str) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(subject) {
            *count -= 1;
            if *count == 0 {
                counts.remove(subject);
            }
        }
    }
}
