//! The upgrade request as the admission sees it ([`HandshakeRequest`]), and the
//! application's say on it ([`HandshakeHook`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::http::{HeaderMap, Request};

/// The request a [`HandshakeHook`] decides on: what the client sent in its upgrade request.
///
/// [`Hub::serve`](crate::server::Hub::serve) admits a connection whose request it never
/// saw with an empty one (`HandshakeRequest::default()`): no `Origin`, no headers.
#[derive(Debug, Clone, Default)]
pub struct HandshakeRequest {
    /// The request path (`/ws`).
    pub path: String,
    /// The query string without the `?` (`token=abc`), empty when there is none.
    pub query: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The peer's address, when known (the server's own listener knows it; an
    /// application that upgrades the connection itself passes it on).
    pub peer: Option<SocketAddr>,
}

impl HandshakeRequest {
    /// The parts of an HTTP upgrade request that the admission looks at.
    pub fn from_request<B>(request: &Request<B>, peer: Option<SocketAddr>) -> Self {
        Self {
            path: request.uri().path().to_owned(),
            query: request.uri().query().unwrap_or_default().to_owned(),
            headers: request.headers().clone(),
            peer,
        }
    }

    /// The value of one query parameter, without percent-decoding.
    ///
    /// ```
    /// use backtest_stream::server::HandshakeRequest;
    ///
    /// let request = HandshakeRequest {
    ///     path: "/ws".into(),
    ///     query: "token=abc&x=1".into(),
    ///     headers: Default::default(),
    ///     peer: None,
    /// };
    /// assert_eq!(request.query_param("token"), Some("abc"));
    /// assert_eq!(request.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// The value of one header as text, when present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a [`HandshakeHook`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeDecision {
    /// Accept the connection.
    Accept,
    /// Refuse at the HTTP level, before the upgrade, with this status (401 or 403) and a
    /// short body.
    RefuseHttp {
        /// The HTTP status code, such as 401 or 403.
        status: u16,
        /// The response body: why.
        reason: String,
    },
    /// Complete the upgrade, then close at once with code 1008 (policy violation) and
    /// this reason (browsers can read a close code, not an HTTP status).
    RefuseClose {
        /// The close reason (at most 123 bytes are sent).
        reason: String,
    },
}

/// A function called at each handshake that accepts or refuses the client from its
/// headers and query string: the place where authentication plugs in.
///
/// ```
/// use backtest_stream::server::{HandshakeDecision, HandshakeHook, ServerConfig};
///
/// let config = ServerConfig::default().handshake_hook(HandshakeHook::new(|request| {
///     match request.query_param("token") {
///         Some("secret") => HandshakeDecision::Accept,
///         _ => HandshakeDecision::RefuseHttp { status: 401, reason: "bad token".into() },
///     }
/// }));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct HandshakeHook(Arc<dyn Fn(&HandshakeRequest) -> HandshakeDecision + Send + Sync>);

impl HandshakeHook {
    /// Wraps a function as a hook.
    pub fn new(
        hook: impl Fn(&HandshakeRequest) -> HandshakeDecision + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(hook))
    }

    /// Asks the hook.
    pub fn decide(&self, request: &HandshakeRequest) -> HandshakeDecision {
        (self.0)(request)
    }
}

impl fmt::Debug for HandshakeHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandshakeHook")
    }
}
