//! The ways a connection reaches the hub without hyper: a raw stream the hub upgrades
//! itself ([`Hub::accept`], what the standalone [`Server`](crate::server::Server) does), or
//! a WebSocket another library already upgraded ([`Hub::serve`]). Both go through the
//! one [admission](crate::server::admission).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::server::admission::{Verdict, add_headers, admit};
use crate::server::connection::{ConnectionEnd, serve_verdict};
use crate::server::handshake::HandshakeRequest;
use crate::server::hub::Hub;
use crate::server::stats::bump;

impl Hub {
    /// Upgrades a raw connection (a `TcpStream`, a TLS stream, ...) to a WebSocket and
    /// serves it until it ends: the request must be for
    /// [`ServerConfig::path`](crate::server::ServerConfig::path) (else HTTP 404) and
    /// pass the admission (origin, handshake hook, connection limit); the client has
    /// [`handshake_timeout`](crate::server::ServerConfig::handshake_timeout) to send it.
    ///
    /// ```no_run
    /// use backtest_stream::server::{Hub, ServerConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = Hub::new(ServerConfig::default())?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    /// loop {
    ///     let (stream, peer) = listener.accept().await?;
    ///     let hub = hub.clone();
    ///     tokio::spawn(async move { hub.accept(stream, Some(peer)).await });
    /// }
    /// # }
    /// ```
    pub async fn accept<S>(&self, stream: S, peer: Option<SocketAddr>) -> ConnectionEnd
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut verdict = None;
        let mut refused = None;
        // tungstenite dictates the callback's signature, large error type included.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, response: Response| {
            if request.uri().path() != self.config().path {
                bump(&self.shared.counters.refused_path);
                refused = Some(StatusCode::NOT_FOUND);
                return Err(http_refusal(StatusCode::NOT_FOUND, "not found"));
            }
            let request = HandshakeRequest::from_request(request, peer);
            match admit(&self.shared, &request) {
                Verdict::RefuseHttp {
                    status,
                    reason,
                    headers,
                    ..
                } => {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
                    refused = Some(status);
                    let mut response = http_refusal(status, &reason);
                    add_headers(response.headers_mut(), &headers);
                    Err(response)
                }
                other => {
                    verdict = Some(other);
                    Ok(response)
                }
            }
        };
        let config = self.config().websocket_config();
        let upgraded = tokio::time::timeout(
            self.config().handshake_timeout,
            tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)),
        )
        .await;
        match (upgraded, verdict, refused) {
            (Ok(Ok(ws)), Some(verdict), _) => serve_verdict(self, ws, verdict).await,
            (_, _, Some(status)) => ConnectionEnd::Refused(status.as_u16()),
            (Ok(Err(error)), _, _) => ConnectionEnd::HandshakeFailed(error.to_string()),
            (Ok(Ok(_)), None, _) => ConnectionEnd::HandshakeFailed("no verdict".to_owned()),
            (Err(_), _, _) => {
                ConnectionEnd::HandshakeFailed("no complete upgrade request in time".to_owned())
            }
        }
    }

    /// Serves a WebSocket that another library already upgraded, until it ends.
    ///
    /// The request it came with is unknown here, so the admission sees an empty one: no
    /// `Origin` (refused when [`allowed_origins`](crate::server::ServerConfig::allowed_origins)
    /// is set) and no headers for the handshake hook. Pass the request with
    /// [`serve_with_request`](Self::serve_with_request), or let the hub do the upgrade:
    /// [`Hub::upgrade`] (hyper, axum) or [`Hub::accept`] (a raw stream). For the limits
    /// of [`ServerConfig`](crate::server::ServerConfig) to apply to its buffers and message
    /// size, create the stream with
    /// [`ServerConfig::websocket_config`](crate::server::ServerConfig::websocket_config).
    pub async fn serve<S>(&self, ws: WebSocketStream<S>) -> ConnectionEnd
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.serve_with_request(ws, &HandshakeRequest::default())
            .await
    }

    /// Serves a WebSocket that another library upgraded from `request`, until it ends.
    /// The admission decides on `request`; a refusal meant as an HTTP status becomes a
    /// close (1008 for the hook, 4500 for an invalid token), since the upgrade is done.
    pub async fn serve_with_request<S>(
        &self,
        ws: WebSocketStream<S>,
        request: &HandshakeRequest,
    ) -> ConnectionEnd
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let verdict = admit(&self.shared, request);
        serve_verdict(self, ws, verdict).await
    }
}

/// An HTTP refusal of an upgrade request.
fn http_refusal(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}
