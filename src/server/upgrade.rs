//! The hub on an application's own route (feature `hyper`): [`Hub::upgrade`] takes the
//! WebSocket upgrade request from hyper or axum and gives the response to send back.

use std::net::SocketAddr;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::{
    HeaderMap, Method, Request, Response, StatusCode, header,
};
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::server::admission::{Verdict, add_headers, admit};
use crate::server::connection::serve_verdict;
use crate::server::handshake::HandshakeRequest;
use crate::server::hub::Hub;

impl Hub {
    /// Answers a WebSocket upgrade request that a hyper or axum route received, with the
    /// same admission as the standalone server (origin check, handshake hook, connection
    /// limit) and its buffer and message limits: the response is `101 Switching
    /// Protocols`, after which the hub serves the connection on its runtime, or the
    /// refusal (`400` for a request that is no WebSocket handshake, `426` for another
    /// WebSocket version, the hook's status).
    ///
    /// The request must come from a hyper server with upgrades enabled (axum's `serve`
    /// does this); the route's path is the application's business.
    ///
    /// ```no_run
    /// use axum::{Router, extract::{Request, State}, response::IntoResponse, routing::get};
    /// use backtest_stream::server::{Hub, ServerConfig};
    ///
    /// async fn ws(State(hub): State<Hub>, request: Request) -> impl IntoResponse {
    ///     hub.upgrade(request)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = Hub::new(ServerConfig::default().same_origin(true))?;
    /// let app = Router::new().route("/live", get(ws)).with_state(hub.clone());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn upgrade<B>(&self, request: Request<B>) -> Response<String> {
        self.upgrade_with_peer(request, None)
    }

    /// [`upgrade`](Self::upgrade), telling the admission the client's address (for the
    /// handshake hook's [`HandshakeRequest::peer`]).
    pub fn upgrade_with_peer<B>(
        &self,
        mut request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<String> {
        let accept = match check_handshake(request.method(), request.headers()) {
            Ok(accept) => accept,
            Err(refusal) => return refusal.response(),
        };
        let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this connection cannot be upgraded: serve it with hyper, upgrades enabled",
            );
        };
        let verdict = admit(
            &self.shared,
            &HandshakeRequest::from_request(&request, peer),
        );
        if let Verdict::RefuseHttp {
            status,
            reason,
            headers,
            ..
        } = verdict
        {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            let mut response = respond(status, &reason);
            add_headers(response.headers_mut(), &headers);
            return response;
        }
        let hub = self.clone();
        self.runtime.spawn(async move {
            // The client gets the 101 first; a connection dropped before that, or not
            // upgraded within the handshake timeout, ends here.
            let timeout = hub.config().handshake_timeout;
            if let Ok(Ok(upgraded)) = tokio::time::timeout(timeout, on_upgrade).await {
                let config = hub.config().websocket_config();
                let io = TokioIo::new(upgraded);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                serve_verdict(&hub, ws, verdict).await;
            }
        });
        switching_protocols(&accept)
    }
}

/// Why a request is no WebSocket handshake this hub can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotHandshake {
    /// Not a WebSocket upgrade request: 400 with this reason.
    Invalid(&'static str),
    /// Another WebSocket version than 13: 426.
    Version,
}

impl NotHandshake {
    fn response(self) -> Response<String> {
        match self {
            NotHandshake::Invalid(reason) => respond(StatusCode::BAD_REQUEST, reason),
            NotHandshake::Version => {
                let mut response = respond(
                    StatusCode::UPGRADE_REQUIRED,
                    "unsupported WebSocket version: 13 expected",
                );
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    header::HeaderValue::from_static("13"),
                );
                response
            }
        }
    }
}

/// Checks that a request is a WebSocket handshake (RFC 6455, 4.2.1); the value of its
/// `Sec-WebSocket-Accept` answer.
fn check_handshake(method: &Method, headers: &HeaderMap) -> Result<String, NotHandshake> {
    if method != Method::GET {
        return Err(NotHandshake::Invalid(
            "expected a WebSocket handshake: the method must be GET",
        ));
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(NotHandshake::Invalid(
            "expected a WebSocket handshake: `Connection: Upgrade` is missing",
        ));
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(NotHandshake::Invalid(
            "expected a WebSocket handshake: `Upgrade: websocket` is missing",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(NotHandshake::Version);
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if !key.is_empty() => Ok(derive_accept_key(key.as_bytes())),
        _ => Err(NotHandshake::Invalid(
            "expected a WebSocket handshake: `Sec-WebSocket-Key` is missing",
        )),
    }
}

/// Whether a comma-separated header has `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    })
}

fn respond(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

fn switching_protocols(accept: &str) -> Response<String> {
    let mut response = respond(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(value) = header::HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}
