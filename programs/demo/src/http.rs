//! The demo's HTTP server: hyper's HTTP/1.1 with the limits a server reachable by
//! strangers needs, which `axum::serve` does not set: a time limit on each request head
//! (also the idle limit of a kept-alive connection), a time limit on each request body,
//! and a cap on open connections.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The limits of the demo's HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send a request head, or keep a connection idle.
    pub header_timeout: Duration,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// The largest request body accepted.
    pub max_body: usize,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            max_connections: 512,
        }
    }
}

/// `router` with the body limits: each request's body is read (within the time and size
/// limits) before the handler runs.
pub fn with_limits(router: Router, limits: Limits) -> Router {
    router.layer(axum::middleware::from_fn(move |request, next| {
        read_body_in_time(request, next, limits)
    }))
}

/// Serves `router` (see [`with_limits`]) on `listener` until the process ends.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: wait, then go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Over the cap: closed at once, so that the others stay served.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            // Errors are a client's business (a reset, a timeout): the connection ends.
            let _ = connection.await;
            drop(slot);
        });
    }
}

/// Reads the request body within the time and size limits before the handler runs.
async fn read_body_in_time(request: Request, next: Next, limits: Limits) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, limits.max_body);
    let bytes: Bytes = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let error = format!(
                "the request body could not be read (at most {} bytes): {error}",
                limits.max_body
            );
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({ "error": error })),
            )
                .into_response();
        }
        Err(_) => {
            let error = format!(
                "the request body was not sent within {} s",
                limits.body_timeout.as_secs()
            );
            return (StatusCode::REQUEST_TIMEOUT, Json(json!({ "error": error }))).into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
