//! [`ServerConfig`]: limits, timers and the handshake policy of the WebSocket server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::Authorizer;
use crate::server::handshake::HandshakeHook;
use crate::server::limits::RateLimits;

/// What the hub does with a client whose queue overflows (it reads more slowly than
/// events are published).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LagPolicy {
    /// Drop what does not fit, count it, and tell the client with a `lagged` notice before
    /// the next event it gets. The terminal event of a run still reaches it.
    #[default]
    Notify,
    /// Close the client with code 4001 (`client too slow`) as soon as its queue
    /// overflows.
    Disconnect,
}

/// The configuration of the hub and its server. Every field has a documented default;
/// change what you need with the builder methods.
///
/// ```
/// use std::time::Duration;
/// use backtest_stream::server::ServerConfig;
///
/// let config = ServerConfig::default()
///     .max_connections(2_000)
///     .ping_interval(Duration::from_secs(10))
///     .allowed_origins(["https://dashboard.example"]);
/// assert_eq!(config.max_connections, 2_000);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The address the standalone server binds (default `127.0.0.1:8000`, as the original).
    pub bind: SocketAddr,
    /// The WebSocket path served by the standalone server (default `/ws`); other paths get
    /// HTTP 404.
    pub path: String,
    /// Connections served at once (default 10,000); one more is accepted and closed at
    /// once with code 1013 (try again later).
    pub max_connections: usize,
    /// The largest message a client may send, in bytes (default 64 KiB); a larger one
    /// closes the connection with code 1009.
    pub max_message_size: usize,
    /// Topics one connection may subscribe to, and runs it may filter on per topic
    /// (default 64); one more gets a `bad_request` error.
    pub max_subscriptions: usize,
    /// Frames queued per client (default 1,024). What overflows is counted and reported
    /// to the client with `lagged` (or closes it, see [`LagPolicy`]). A run's terminal
    /// event and replies may go past it up to twice the capacity; a queue holds 32-byte
    /// handles to frames shared by all clients, so a fully lagging client costs at most
    /// about 64 KiB plus the frames only it still holds.
    pub queue_capacity: usize,
    /// What to do with a client whose queue overflows (default [`LagPolicy::Notify`]).
    pub lag_policy: LagPolicy,
    /// Events kept per topic for replay with `since` (default 1,024).
    pub history_size: usize,
    /// Bytes of frames kept per topic for replay (default 64 MiB), so that large events
    /// (a `backtest_complete` listing many trades) cannot make the history huge: past
    /// it the oldest events are dropped, as past [`history_size`](Self::history_size),
    /// and a replay reports them missed. Frames are shared with the clients' queues and
    /// the snapshot, not copied.
    pub history_bytes: usize,
    /// Runs remembered per topic for `snapshot` (default 256); the oldest finished run
    /// is forgotten first.
    pub snapshot_runs: usize,
    /// Bytes of frames remembered per topic for `snapshot` (default 64 MiB); past it
    /// runs are forgotten as past [`snapshot_runs`](Self::snapshot_runs), except the
    /// run that was just updated.
    pub snapshot_bytes: usize,
    /// Events the publishers may have in flight to the hub (default 65,536); a publish
    /// beyond that fails with `SinkError::Full` and is counted.
    pub publish_queue_capacity: usize,
    /// Room of the publish queue kept for the runs' terminal events (default 4,096),
    /// beyond [`publish_queue_capacity`](Self::publish_queue_capacity): a burst of
    /// progress and log lines never leaves a `backtest_complete` or `backtest_error`
    /// without room.
    pub terminal_reserve: usize,
    /// How long a terminal event waits for room when even the reserve is full (default
    /// 5 s); the publishing thread sleeps meanwhile, so publish terminal events from a
    /// backtest's thread, not from async code.
    pub terminal_wait: Duration,
    /// How often each client is pinged (default 20 s).
    pub ping_interval: Duration,
    /// How long a pinged client may take to show a sign of life before it is dropped
    /// as dead (default 20 s).
    pub ping_timeout: Duration,
    /// `Origin` header values accepted at the handshake; empty (the default) accepts
    /// every origin, unless [`same_origin`](Self::same_origin) is set. A refused origin
    /// is closed at once with 1008 (policy), before any
    /// message is read or sent.
    pub allowed_origins: Vec<String>,
    /// Also accept an `Origin` whose host is the request's `Host` (a page the same
    /// application served), and refuse every other `Origin` that is not listed in
    /// [`allowed_origins`](Self::allowed_origins) (default `false`). A request without
    /// `Origin` (not a browser) is still accepted when the list is empty.
    ///
    /// This stops another site's page, not a DNS-rebinding one: a page whose own host
    /// name was made to resolve to this server sends an `Origin` and a `Host` that agree.
    /// A server reachable by browsers on a trusted address (localhost, a private network)
    /// should name its origins in [`allowed_origins`](Self::allowed_origins) instead.
    pub same_origin: bool,
    /// Decides at each handshake whether to accept the client (default: accept all).
    pub handshake_hook: Option<HandshakeHook>,
    /// How long a client may take to send its upgrade request to the standalone server
    /// (default 10 s).
    pub handshake_timeout: Duration,
    /// How long a graceful shutdown may take before remaining connections are cut
    /// (default 5 s).
    pub shutdown_timeout: Duration,
    /// How long a connection may have frames waiting while the socket accepts none of
    /// them before it is dropped (default 30 s). This catches a client that keeps
    /// sending (and so answers pings) but never reads; a client that reads slowly
    /// but steadily is not affected (it lags instead, see [`LagPolicy`]).
    pub write_stall_timeout: Duration,
    /// Socket read buffer per connection, in bytes (default 1 KiB: client messages are
    /// small, and a large buffer costs memory on every idle connection).
    pub read_buffer_size: usize,
    /// Bytes buffered before a write reaches the socket while a batch is written
    /// (default 16 KiB); each batch is flushed at its end, so this adds no latency.
    /// tungstenite never shrinks this buffer, so every connection that once received a
    /// burst keeps about this much: 16 KiB costs no measurable throughput against
    /// 32 KiB (same server CPU per frame) and a third less memory at 1,000 clients.
    pub write_buffer_size: usize,
    /// The most a connection's write buffer may ever hold (default 64 MiB): its write
    /// buffer, the frame being written, and the pongs it owes a client that pings. The
    /// largest frame a client can be sent is this less
    /// [`write_buffer_size`](Self::write_buffer_size); a larger one ends the connection.
    pub max_write_buffer_size: usize,
    /// Verifies the clients' tokens (default: none, every client is served everything).
    /// With one, a client must present a token (in the upgrade request or in a first
    /// `auth` message) and is served only what its grants allow; see [`crate::auth`].
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// The rate limits (see [`RateLimits`] for the defaults).
    pub rate_limits: RateLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            path: "/ws".to_string(),
            max_connections: 10_000,
            max_message_size: 64 * 1024,
            max_subscriptions: 64,
            queue_capacity: 1024,
            lag_policy: LagPolicy::Notify,
            history_size: 1024,
            history_bytes: 64 << 20,
            snapshot_runs: 256,
            snapshot_bytes: 64 << 20,
            publish_queue_capacity: 65_536,
            terminal_reserve: 4_096,
            terminal_wait: Duration::from_secs(5),
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(20),
            allowed_origins: Vec::new(),
            same_origin: false,
            handshake_hook: None,
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            write_stall_timeout: Duration::from_secs(30),
            read_buffer_size: 1024,
            write_buffer_size: 16 * 1024,
            max_write_buffer_size: 64 << 20,
            authorizer: None,
            rate_limits: RateLimits::default(),
        }
    }
}

impl ServerConfig {
    /// Sets [`bind`](Self::bind).
    pub fn bind(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.bind = addr.into();
        self
    }
    /// Sets [`path`](Self::path).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
    /// Sets [`max_subscriptions`](Self::max_subscriptions).
    pub fn max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }
    /// Sets [`queue_capacity`](Self::queue_capacity) (at least 1).
    pub fn queue_capacity(mut self, frames: usize) -> Self {
        self.queue_capacity = frames.max(1);
        self
    }
    /// Sets [`lag_policy`](Self::lag_policy).
    pub fn lag_policy(mut self, policy: LagPolicy) -> Self {
        self.lag_policy = policy;
        self
    }
    /// Sets [`history_size`](Self::history_size).
    pub fn history_size(mut self, events: usize) -> Self {
        self.history_size = events;
        self
    }
    /// Sets [`history_bytes`](Self::history_bytes).
    pub fn history_bytes(mut self, bytes: usize) -> Self {
        self.history_bytes = bytes;
        self
    }
    /// Sets [`snapshot_runs`](Self::snapshot_runs).
    pub fn snapshot_runs(mut self, runs: usize) -> Self {
        self.snapshot_runs = runs;
        self
    }
    /// Sets [`snapshot_bytes`](Self::snapshot_bytes).
    pub fn snapshot_bytes(mut self, bytes: usize) -> Self {
        self.snapshot_bytes = bytes;
        self
    }

    /// What one topic retains.
    pub(crate) fn history_limits(&self) -> crate::server::history::Limits {
        crate::server::history::Limits {
            events: self.history_size,
            bytes: self.history_bytes,
            runs: self.snapshot_runs,
            run_bytes: self.snapshot_bytes,
        }
    }
    /// Sets [`publish_queue_capacity`](Self::publish_queue_capacity) (at least 1).
    pub fn publish_queue_capacity(mut self, events: usize) -> Self {
        self.publish_queue_capacity = events.max(1);
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
    /// Sets [`ping_interval`](Self::ping_interval).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }
    /// Sets [`ping_timeout`](Self::ping_timeout).
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }
    /// Sets [`allowed_origins`](Self::allowed_origins).
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }
    /// Sets [`same_origin`](Self::same_origin).
    pub fn same_origin(mut self, same_origin: bool) -> Self {
        self.same_origin = same_origin;
        self
    }
    /// Sets [`handshake_hook`](Self::handshake_hook).
    pub fn handshake_hook(mut self, hook: HandshakeHook) -> Self {
        self.handshake_hook = Some(hook);
        self
    }
    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
    /// Sets [`shutdown_timeout`](Self::shutdown_timeout).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
    /// Sets [`write_stall_timeout`](Self::write_stall_timeout).
    pub fn write_stall_timeout(mut self, timeout: Duration) -> Self {
        self.write_stall_timeout = timeout;
        self
    }
    /// Sets [`read_buffer_size`](Self::read_buffer_size).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }
    /// Sets [`write_buffer_size`](Self::write_buffer_size).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets [`max_write_buffer_size`](Self::max_write_buffer_size).
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.max_write_buffer_size = bytes;
        self
    }

    /// Sets [`authorizer`](Self::authorizer).
    ///
    /// ```
    /// # #[cfg(feature = "auth")] {
    /// use backtest_stream::auth::JwtVerifier;
    /// use backtest_stream::server::ServerConfig;
    ///
    /// let verifier = JwtVerifier::new().secret("a secret of at least 32 bytes, please")?;
    /// let config = ServerConfig::default().authorizer(verifier);
    /// assert!(config.authorizer.is_some());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// Sets [`rate_limits`](Self::rate_limits).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// The tungstenite configuration for each connection: small read buffer, bounded
    /// write buffer, the message size limit.
    pub fn websocket_config(&self) -> WebSocketConfig {
        let write = self.write_buffer_size;
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size.max(64))
            .write_buffer_size(write)
            .max_write_buffer_size(self.max_write_buffer_size.max(write.saturating_add(1)))
            // The write buffer grows past `write` only while the socket is blocked; the
            // connection waits for readiness before each frame, which keeps it to one
            // frame beyond.
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}
