//! The gateway: the demo's WebSocket `/ws`, fed by the Redis Streams that backtest
//! workers write to (`RedisSink`), with the broker's `seq` and `epoch`, so several
//! gateways on one Redis give identical streams and a client may resume on any of them.
//!
//! ```text
//! cargo run --release --bin gateway -- --redis redis://127.0.0.1:6379   # ws://127.0.0.1:8001/ws
//! cargo run --release --bin gateway -- --redis redis://127.0.0.1:6379 --addr 127.0.0.1:8002
//! BACKTEST_STREAM_REDIS=redis://127.0.0.1:6379 cargo run --release --bin gateway
//! ```
//!
//! The first line on stdout is `ws://ADDR/ws` (with the bound port); a closed stdout
//! (`gateway | head -1`) does not stop it. `GET /healthz` answers 200 while Redis is
//! reachable and 503 (with the last error) while it is not; `GET /metrics` is the
//! Prometheus text format. Only loopback addresses are served unless tokens are
//! required (`--auth-secret-file`, `--auth-public-key`) or `--insecure` is given.

#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

mod auth;
// The demo's HTTP server limits, `Host` checks and error answer, shared by path (the
// demo is a binary crate): the gateway's `/ws` is guarded exactly as the demo's.
#[allow(dead_code)] // the gateway answers with only part of the demo's API errors
#[path = "../../demo/src/error.rs"]
mod error;
#[path = "../../demo/src/guard.rs"]
mod guard;
#[path = "../../demo/src/http.rs"]
mod http;
mod metrics;
mod options;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backtest_stream::broker::{Gateway, GatewayConfig, GatewayError};
use backtest_stream::server::{Hub, ServerConfig};

use crate::error::ApiError;
use crate::guard::AllowedHosts;
use crate::options::{Command, Options};

/// What the handlers share.
#[derive(Clone)]
struct App {
    hub: Hub,
    gateway: Arc<Gateway>,
}

/// Why the gateway stops: a bad setting (exit 2) or a failure (exit 1).
enum Stop {
    Usage(String),
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for Stop {
    fn from(error: E) -> Self {
        Stop::Failed(error.to_string())
    }
}

#[tokio::main]
async fn main() {
    let options = match options::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            // `gateway --help | head -1`: a closed stdout is not an error.
            let _ = std::io::stdout().write_all(options::usage().as_bytes());
            return;
        }
        Err(message) => {
            eprintln!("gateway: {message}");
            std::process::exit(2);
        }
    };
    match run(*options).await {
        Ok(()) => {}
        Err(Stop::Usage(message)) => {
            eprintln!("gateway: {message}");
            std::process::exit(2);
        }
        Err(Stop::Failed(message)) => {
            eprintln!("gateway: {message}");
            std::process::exit(1);
        }
    }
}

async fn run(options: Options) -> Result<(), Stop> {
    let verifier = auth::verifier(&options.auth)?;
    let (listener, name) = bind(&options).await?;
    let addr = listener.local_addr()?;
    let hosts = Arc::new(AllowedHosts::new(addr, name, &options.allowed_hosts));

    // Same origin (pages this server's Host served) and the listed origins only: a page
    // of another site cannot read the stream (cross-site WebSocket hijacking).
    let mut config = ServerConfig::default()
        .history_size(options.history)
        .handshake_timeout(options.http_timeout)
        .max_connections(options.max_connections)
        .queue_capacity(options.queue)
        .ping_interval(options.ping)
        .same_origin(true);
    if !options.allowed_origins.is_empty() {
        config = config.allowed_origins(options.allowed_origins.iter().cloned());
    }
    if let Some(verifier) = verifier {
        config = config.authorizer(verifier);
    }
    let hub = Hub::new(config)?;
    install_logging();
    let gateway_config = GatewayConfig::default()
        .topics(options.topics.iter().cloned())
        .tail(options.history);
    let gateway = Gateway::start(&hub, &options.redis, gateway_config).map_err(|e| match e {
        GatewayError::InvalidUrl { .. } => Stop::Usage(format!("--redis: {e}")),
        other => Stop::Failed(other.to_string()),
    })?;
    let gateway = Arc::new(gateway);
    tokio::spawn(watch_redis(Arc::clone(&gateway)));

    let limits = http::Limits {
        header_timeout: options.http_timeout,
        body_timeout: options.http_timeout,
        max_connections: options.max_connections,
        ..http::Limits::default()
    };
    let app = App { hub, gateway };
    let router = http::with_limits(routes(app, Arc::clone(&hosts)), limits);
    announce(addr);
    let topics: Vec<&str> = options.topics.iter().map(|t| t.as_str()).collect();
    log::info!(
        "listening on {addr}: topics {} from {}",
        topics.join(","),
        redacted(&options.redis)
    );
    if !guard::is_loopback(addr.ip()) {
        let names = hosts.names().join(", ");
        let auth = if options.auth.enabled() {
            "with authentication: every WebSocket needs a token"
        } else {
            "without authentication (--insecure): anyone who can reach it may read every run"
        };
        log::warn!(
            "listening on {addr}, which is not loopback, {auth}; /ws answers only the Host \
             names {names} (add others with --allowed-host NAME)"
        );
    }
    http::serve(listener, router, limits).await?;
    Ok(())
}

/// The first line on stdout is the contract with tests and scripts: keep it first and
/// one line (`ws://ADDR/ws`). A closed stdout (`gateway | head -1`) is no reason to stop
/// serving: write errors are ignored.
fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ws://{addr}/ws");
    let _ = writeln!(out, "Health:    http://{addr}/healthz");
    let _ = writeln!(out, "Metrics:   http://{addr}/metrics");
    let _ = out.flush();
}

/// The routes: `/ws` behind the demo's `Host` check, `/healthz` and `/metrics` (open to
/// probes and scrapers by any address); every other path or method gets a JSON 404 or
/// 405.
fn routes(app: App, hosts: Arc<AllowedHosts>) -> Router {
    let ws = Router::new()
        .route("/ws", get(websocket))
        .route_layer(axum::middleware::from_fn(move |request, next| {
            guard::check(Arc::clone(&hosts), request, next)
        }));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(ws)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// `/ws`: the crate's hub answers the upgrade (origin check, token, limits) and serves
/// the connection; the `Host` was checked before (guard).
async fn websocket(State(app): State<App>, request: Request) -> impl IntoResponse {
    app.hub.upgrade(request)
}

async fn healthz(State(app): State<App>) -> Response {
    let (ok, body) = metrics::health(&app.gateway.stats());
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let no_cache = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (status, no_cache, axum::Json(body)).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    use backtest_stream::server::metrics::{CONTENT_TYPE, StreamMetrics};
    let text = StreamMetrics::new(&app.hub)
        .with_gateway(&app.gateway)
        .text();
    let content_type = HeaderValue::from_static(CONTENT_TYPE);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such path: the gateway serves /ws, /healthz and /metrics",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "only GET is served")
}

/// Logs when the gateway loses Redis and when it is back.
async fn watch_redis(gateway: Arc<Gateway>) {
    let mut was_connected = None;
    loop {
        let stats = gateway.stats();
        if was_connected != Some(stats.connected) && (stats.connected || stats.failures > 0) {
            if stats.connected {
                log::info!("connected to Redis");
            } else {
                let error = stats.last_error.unwrap_or_default();
                log::warn!("Redis is unreachable ({error}); /healthz answers 503 until it is back");
            }
            was_connected = Some(stats.connected);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Resolves `--addr` (a name such as `localhost` too), refuses an address that is not
/// loopback without authentication or `--insecure`, and listens on the first address
/// that works. Returns the listener and the host name of `--addr` when it was a name.
async fn bind(options: &Options) -> Result<(tokio::net::TcpListener, Option<&str>), Stop> {
    let (host, _) = options::split_host_port(&options.addr)
        .ok_or_else(|| Stop::Usage(format!("bad address `{}`", options.addr)))?;
    let is_name = host.parse::<std::net::IpAddr>().is_err();
    let candidates: Vec<SocketAddr> = tokio::net::lookup_host(options.addr.as_str())
        .await
        .map_err(|e| Stop::Usage(format!("--addr: cannot resolve `{}`: {e}", options.addr)))?
        .collect();
    if candidates.is_empty() {
        return Err(Stop::Usage(format!(
            "--addr: `{}` resolves to no address",
            options.addr
        )));
    }
    for candidate in &candidates {
        exposure_allowed(*candidate, options.insecure, options.auth.enabled())
            .map_err(Stop::Usage)?;
    }
    let mut failures = Vec::new();
    for candidate in candidates {
        match tokio::net::TcpListener::bind(candidate).await {
            Ok(listener) => return Ok((listener, is_name.then_some(host))),
            Err(e) => failures.push(format!("{candidate}: {e}")),
        }
    }
    Err(Stop::Failed(format!(
        "cannot listen on {}: {}",
        options.addr,
        failures.join("; ")
    )))
}

/// Whether the gateway may listen on `addr`: loopback always; any other address only
/// with authentication configured, or with `--insecure`.
fn exposure_allowed(addr: SocketAddr, insecure: bool, auth: bool) -> Result<(), String> {
    if guard::is_loopback(addr.ip()) || insecure || auth {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr}: it is not a loopback address and no authentication is \
         configured, so anyone who can reach it could read every run's events. Give \
         --auth-secret-file FILE (or --auth-public-key PEM) to require tokens, listen on \
         127.0.0.1 (the default) behind an authenticating proxy, or pass --insecure to expose \
         it anyway (on a trusted network)"
    ))
}

/// The Redis URL without its password, for the log.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Console logging (stderr), `RUST_LOG` (default `info`).
fn install_logging() {
    let _ = env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("info,tungstenite=warn,tokio_tungstenite=warn"),
    )
    .try_init();
}
