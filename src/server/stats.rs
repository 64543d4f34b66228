//! [`ServerStats`]: what the hub has done, read at any time with `Hub::stats`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::Topic;

/// Counters shared by the hub, its connections and its sinks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub events_published: AtomicU64,
    pub publish_queue_full: AtomicU64,
    pub terminal_refused: AtomicU64,
    pub lagged: AtomicU64,
    pub slow_client: AtomicU64,
    pub closed_connection: AtomicU64,
    pub refused_max_connections: AtomicU64,
    pub refused_origin: AtomicU64,
    pub refused_handshake_hook: AtomicU64,
    pub refused_path: AtomicU64,
    pub dropped_dead_peer: AtomicU64,
    pub dropped_write_stall: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub closed_message_too_big: AtomicU64,
    pub unauthorized: AtomicU64,
    pub auth_timeout: AtomicU64,
    pub token_expired: AtomicU64,
    pub tokens_refreshed: AtomicU64,
    pub forbidden: AtomicU64,
    pub messages_rate_limited: AtomicU64,
    pub closed_rate_limited: AtomicU64,
    pub upgrades_rate_limited: AtomicU64,
    pub subject_limit: AtomicU64,
    pub replay_budget_spent: AtomicU64,
    pub replays_from_history: AtomicU64,
    pub replays_from_archive: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Frames or events that did not reach their destination, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedFrames {
    /// Events refused by a publish because the hub's publish queue was full
    /// (`SinkError::Full`); the subscribers of each one's topic (and run) are told with
    /// a `lagged` notice. A run's terminal event is refused only when even the queue's
    /// reserve stayed full for `ServerConfig::terminal_wait` (counted here and in
    /// `terminal_refused`).
    pub publish_queue_full: u64,
    /// Terminal events (`backtest_complete`, `backtest_error`) refused after waiting
    /// `ServerConfig::terminal_wait` for room: 0 unless the hub is stuck.
    pub terminal_refused: u64,
    /// Event frames not queued for a client whose queue was full; the client is told
    /// with `lagged`.
    pub lagged: u64,
    /// Frames discarded when a too-slow client was disconnected, or that could not be
    /// queued past the hard limit.
    pub slow_client: u64,
    /// Frames that were queued for a connection that closed before writing them.
    pub closed_connection: u64,
}

/// Connections refused or dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionEvents {
    /// Connections served since the start (admitted, and their upgrade completed).
    pub accepted: u64,
    /// Refused with 1013 because `max_connections` were open.
    pub refused_max_connections: u64,
    /// Closed with 1008 because of their `Origin`.
    pub refused_origin: u64,
    /// Refused by the handshake hook.
    pub refused_handshake_hook: u64,
    /// Refused with HTTP 404 because they asked for another path.
    pub refused_path: u64,
    /// Dropped because they did not answer a ping within the timeout.
    pub dropped_dead_peer: u64,
    /// Dropped because the socket accepted none of their waiting frames within
    /// `ServerConfig::write_stall_timeout` (a client that sends but never reads).
    pub dropped_write_stall: u64,
    /// Closed because they read too slowly (see `LagPolicy`).
    pub dropped_slow: u64,
    /// Closed with 1009 because they sent a message over the size limit.
    pub closed_message_too_big: u64,
}

/// Authentication and rate-limit refusals, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessEvents {
    /// Tokens refused: upgrades answered 401, and connections closed with 4500 after an
    /// invalid `auth` message (a refused refresh is counted too; it keeps the old token).
    pub unauthorized: u64,
    /// Connections closed with 4500 because no token came within the handshake timeout.
    pub auth_timeout: u64,
    /// Connections closed with 4004 at their token's expiry.
    pub token_expired: u64,
    /// Tokens replaced by an `auth` message on an open connection.
    pub tokens_refreshed: u64,
    /// Subscribes answered `forbidden` (beyond the grants).
    pub forbidden: u64,
    /// Client messages answered `rate_limited`.
    pub messages_rate_limited: u64,
    /// Connections closed with 4503 for sending on past the limit.
    pub closed_rate_limited: u64,
    /// Upgrades answered 429 (too many from one address).
    pub upgrades_rate_limited: u64,
    /// Connections closed with 4504 (too many for their subject).
    pub subject_limit: u64,
    /// Subscribes with a replay or snapshot answered `rate_limited` because the
    /// connection's replay budget was spent.
    pub replay_budget_spent: u64,
}

/// Subscribes with a `since`, by where their replay came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayEvents {
    /// Answered from the hub's own history (its ring) alone.
    pub from_history: u64,
    /// Older than the history: the missing part was fetched from the archive (a
    /// gateway's Redis streams) before the history's part.
    pub from_archive: u64,
}

/// A view of the hub's state and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections open now, counting those admitted and completing their upgrade (a
    /// slot is taken when the upgrade request is admitted).
    pub connections: u64,
    /// Connections subscribed to each topic now (topics nobody subscribes to are absent).
    pub subscriptions: BTreeMap<Topic, usize>,
    /// Events the hub has numbered and delivered to its subscribers.
    pub events_published: u64,
    /// What was dropped, by reason.
    pub dropped: DroppedFrames,
    /// Connections refused or dropped, by reason.
    pub connection_events: ConnectionEvents,
    /// Authentication and rate-limit refusals.
    pub access: AccessEvents,
    /// Replays served, by source.
    pub replays: ReplayEvents,
}

impl Counters {
    pub(crate) fn snapshot(&self, subscriptions: BTreeMap<Topic, usize>) -> ServerStats {
        ServerStats {
            connections: get(&self.connections),
            subscriptions,
            events_published: get(&self.events_published),
            dropped: DroppedFrames {
                publish_queue_full: get(&self.publish_queue_full),
                terminal_refused: get(&self.terminal_refused),
                lagged: get(&self.lagged),
                slow_client: get(&self.slow_client),
                closed_connection: get(&self.closed_connection),
            },
            connection_events: ConnectionEvents {
                accepted: get(&self.connections_accepted),
                refused_max_connections: get(&self.refused_max_connections),
                refused_origin: get(&self.refused_origin),
                refused_handshake_hook: get(&self.refused_handshake_hook),
                refused_path: get(&self.refused_path),
                dropped_dead_peer: get(&self.dropped_dead_peer),
                dropped_write_stall: get(&self.dropped_write_stall),
                dropped_slow: get(&self.dropped_slow),
                closed_message_too_big: get(&self.closed_message_too_big),
            },
            access: AccessEvents {
                unauthorized: get(&self.unauthorized),
                auth_timeout: get(&self.auth_timeout),
                token_expired: get(&self.token_expired),
                tokens_refreshed: get(&self.tokens_refreshed),
                forbidden: get(&self.forbidden),
                messages_rate_limited: get(&self.messages_rate_limited),
                closed_rate_limited: get(&self.closed_rate_limited),
                upgrades_rate_limited: get(&self.upgrades_rate_limited),
                subject_limit: get(&self.subject_limit),
                replay_budget_spent: get(&self.replay_budget_spent),
            },
            replays: ReplayEvents {
                from_history: get(&self.replays_from_history),
                from_archive: get(&self.replays_from_archive),
            },
        }
    }
}
