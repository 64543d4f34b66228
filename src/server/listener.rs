//! [`Server`]: the standalone WebSocket server, listening on its own address.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::config::{HandshakeDecision, HandshakeRequest};
use super::error::ServerError;
use super::hub::Hub;
use super::stats::bump;

/// How long a client may take to complete its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The standalone server: accepts TCP connections, upgrades requests for the configured
/// path (`/ws`) and serves them from its [`Hub`].
///
/// ```no_run
/// use backtest_stream::server::{Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::bind(ServerConfig::default().bind(([127, 0, 0, 1], 0))).await?;
/// println!("listening on ws://{}/ws", server.local_addr());
/// let sink = server.hub().sink(); // give this to the backtest
/// # drop(sink);
/// server.run_until(std::future::pending::<()>()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    hub: Hub,
    listener: TcpListener,
    local_addr: SocketAddr,
}

fn refuse(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

impl Server {
    /// Creates a hub with `config` and binds `config.bind` (port 0 picks a free port;
    /// see [`local_addr`](Self::local_addr)).
    pub async fn bind(config: super::ServerConfig) -> Result<Self, ServerError> {
        let hub = Hub::new(config)?;
        Self::bind_hub(hub).await
    }

    /// Binds the address of `hub`'s configuration and serves that hub.
    pub async fn bind_hub(hub: Hub) -> Result<Self, ServerError> {
        let addr = hub.config().bind;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            hub,
            listener,
            local_addr,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The hub: publish through it, or hand its [`sink`](Hub::sink) to a backtest.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Serves connections until `shutdown` resolves, then shuts down gracefully: stops
    /// accepting, delivers what was published, closes every client with 1001, and
    /// returns within [`shutdown_timeout`](super::ServerConfig::shutdown_timeout)
    /// (connections still open then are cut).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server { hub, listener, .. } = self;
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let hub = hub.clone();
                        tasks.spawn(async move { handle(hub, stream, peer).await });
                    }
                    // Running out of file descriptors and the like: wait, then go on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
            }
        }
        drop(listener);
        hub.shutdown().await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Upgrades one TCP connection (checking path, origin and the hook) and serves it.
async fn handle(hub: Hub, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let config = hub.config().clone();
    let close_reason: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let refusal = Arc::clone(&close_reason);
    let counters_hub = hub.clone();
    // tungstenite dictates the callback's signature, large error type included.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &Request, response: Response| {
        let counters = &counters_hub.shared.counters;
        if request.uri().path() != config.path {
            bump(&counters.refused_path);
            return Err(refuse(StatusCode::NOT_FOUND, "not found"));
        }
        let origin = request
            .headers()
            .get("origin")
            .and_then(|v| v.to_str().ok());
        if !config.origin_allowed(origin) {
            // PROTOCOL.md: refused by the origin check -> close 1008, which a browser
            // can see (it cannot see an HTTP status). Nothing is read or sent before.
            bump(&counters.refused_origin);
            if let Ok(mut slot) = refusal.lock() {
                *slot = Some("origin not allowed".to_owned());
            }
            return Ok(response);
        }
        if let Some(hook) = &config.handshake_hook {
            let view = HandshakeRequest {
                path: request.uri().path().to_owned(),
                query: request.uri().query().unwrap_or_default().to_owned(),
                headers: request.headers().clone(),
                peer: Some(peer),
            };
            match hook.decide(&view) {
                HandshakeDecision::Accept => {}
                HandshakeDecision::RefuseHttp { status, reason } => {
                    bump(&counters.refused_handshake_hook);
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
                    return Err(refuse(status, &reason));
                }
                HandshakeDecision::RefuseClose { reason } => {
                    bump(&counters.refused_handshake_hook);
                    if let Ok(mut slot) = refusal.lock() {
                        *slot = Some(reason);
                    }
                }
            }
        }
        Ok(response)
    };
    let ws_config = hub.config().websocket_config();
    let upgraded = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)),
    )
    .await;
    let Ok(Ok(mut ws)) = upgraded else {
        return;
    };
    let refused = close_reason.lock().ok().and_then(|mut slot| slot.take());
    if let Some(reason) = refused {
        let reason = truncate(&reason, 123);
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1008.into(),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
        return;
    }
    hub.serve(ws).await;
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
