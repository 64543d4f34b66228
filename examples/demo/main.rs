//! The demo application: a live dashboard, a REST API that starts backtests, and the
//! crate's WebSocket hub mounted on the application's own `/ws` route (axum).
//!
//! ```text
//! cargo run --release --example demo                    # http://127.0.0.1:8000/
//! cargo run --release --example demo -- --addr 0.0.0.0:9000
//! cargo run --release --example demo -- --history 2000   # events replayed to late joiners
//! BACKTEST_STREAM_ADDR=127.0.0.1:0 cargo run --release --example demo
//! ```
//!
//! The first line on stdout is `Dashboard: http://ADDR/` (with the bound port).
//! `RUST_LOG` sets the console log level (default `info`; trade lines are streamed to
//! the page but not printed).

mod api;
mod runs;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::sink::SharedSink;
use backtest_stream::wire::Topic;
use hyper_util::rt::TokioIo;
use log::LevelFilter;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::runs::Runs;

const DASHBOARD: &str = include_str!("dashboard.html");
const DEFAULT_ADDR: &str = "127.0.0.1:8000";
const ADDR_ENV: &str = "BACKTEST_STREAM_ADDR";
/// Runs at once; more are refused with 429.
const DEFAULT_MAX_RUNS: usize = 8;
/// Runs remembered by the API (the oldest finished ones are forgotten first).
const MAX_KEPT_RUNS: usize = 1_000;
/// Events the hub retains per topic, replayed to a page that connects mid-run (it
/// subscribes with `since: 0`). A default run (5,000 bars) publishes 388 events
/// (measured: 200 progress, 185 log lines, start, complete; ~330 bytes a frame); one
/// with a fast strategy (`fast 5, slow 20`) about 530. 16,384 events hold the whole
/// history of `DEFAULT_MAX_RUNS` (8) such runs side by side about four to five times over,
/// so runs that just finished are still complete too, for about 5-6 MB of frames
/// shared by all clients. Longer runs keep their latest events, and the snapshot still
/// gives every run's start and latest state.
const HISTORY_EVENTS: usize = 16_384;

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    hub: Hub,
    runs: Runs,
}

struct Options {
    addr: SocketAddr,
    max_runs: usize,
    history: usize,
}

fn usage() -> String {
    format!(
        "usage: demo [--addr HOST:PORT] [--max-runs N] [--history N]\n\n  \
         --addr       where to listen (default {DEFAULT_ADDR}, or ${ADDR_ENV}); port 0 picks a free one\n  \
         --max-runs   backtests running at once (default {DEFAULT_MAX_RUNS}); more get HTTP 429\n  \
         --history    events kept per topic for pages that join mid-run (default {HISTORY_EVENTS})\n"
    )
}

fn parse_options() -> Result<Options, String> {
    let mut addr = std::env::var(ADDR_ENV)
        .ok()
        .filter(|a| !a.trim().is_empty());
    let mut max_runs = DEFAULT_MAX_RUNS;
    let mut history = HISTORY_EVENTS;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs {what}\n\n{}", usage()))
        };
        match name.as_str() {
            "--addr" => addr = Some(value("an address (HOST:PORT)")?),
            "--max-runs" => {
                let v = value("a number")?;
                max_runs = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--max-runs: `{v}` is not a positive number"))?;
            }
            "--history" => {
                let v = value("a number")?;
                history = v
                    .parse()
                    .map_err(|_| format!("--history: `{v}` is not a number of events"))?;
            }
            "-h" | "--help" => {
                print!("{}", usage());
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{}", usage())),
        }
    }
    let addr = addr.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let addr = addr.trim().parse().map_err(|e| {
        format!("bad address `{addr}` (expected HOST:PORT, e.g. {DEFAULT_ADDR}): {e}")
    })?;
    Ok(Options {
        addr,
        max_runs,
        history,
    })
}

#[tokio::main]
async fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("demo: {message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(options).await {
        eprintln!("demo: {error}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let hub = Hub::new(ServerConfig::default().history_size(options.history))?;

    // Console logging (stderr) wrapped by the log bridge: a run's records (its thread
    // is in the run's LogScope while BacktestRunner runs it) become that run's
    // log_entry events; the others go to the page's server log (backtest_id null).
    let console = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,backtest_stream::reference=warn"),
    )
    .build();
    let console_level = console.filter();
    let hub_sink: SharedSink = Arc::new(hub.sink());
    LogBridge::builder()
        .level(LevelFilter::Info)
        .target_level("tungstenite", LevelFilter::Warn)
        .target_level("tokio_tungstenite", LevelFilter::Warn)
        .default_shared_sink(hub_sink, Topic::BACKTEST)
        .wrap(console, console_level)
        .build()
        .try_init()?;

    let app = App {
        runs: Runs::new(hub.sink(), options.max_runs, MAX_KEPT_RUNS),
        hub,
    };
    let router = Router::new()
        .route("/", get(dashboard))
        .route("/ws", get(websocket))
        .route("/api/v1/backtest/run", post(api::start_run))
        .route("/api/v1/backtest/{id}", get(api::get_run))
        .route("/api/v1/backtests", get(api::list_runs))
        .route("/api/{*rest}", axum::routing::any(api::not_found))
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr()?;
    // The first line is the contract with tests and scripts: keep it first.
    println!("Dashboard: http://{addr}/");
    println!("WebSocket: ws://{addr}/ws");
    println!("REST API:  POST http://{addr}/api/v1/backtest/run");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    log::info!("listening on {addr}");
    axum::serve(listener, router).await?;
    Ok(())
}

async fn dashboard() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        Html(DASHBOARD),
    )
}

/// `/ws`: the WebSocket handshake, done here with hyper's upgrade, then the connection
/// is handed to the crate's hub (`Hub::serve`), exactly as any web application would.
async fn websocket(State(app): State<App>, mut request: Request) -> Response {
    let headers = request.headers();
    if let Err(reason) = check_handshake(headers) {
        return (StatusCode::BAD_REQUEST, reason).into_response();
    }
    if !same_origin(headers) {
        // Another site's page must not read this server's stream (cross-site WebSocket
        // hijacking); browsers always send Origin.
        return (StatusCode::FORBIDDEN, "cross-origin WebSocket refused").into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut request);
    let hub = app.hub.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let config = hub.config().websocket_config();
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                let end = hub.serve(ws).await;
                log::debug!("WebSocket connection ended: {end:?}");
            }
            Err(error) => log::warn!("WebSocket upgrade failed: {error}"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    match HeaderValue::from_str(&accept) {
        Ok(v) => {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    response
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn check_handshake(headers: &HeaderMap) -> Result<(), &'static str> {
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err("expected a WebSocket handshake: `Connection: Upgrade` is missing");
    }
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err("expected a WebSocket handshake: `Upgrade: websocket` is missing");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("unsupported WebSocket version (13 expected)");
    }
    Ok(())
}

/// No Origin (not a browser), or an Origin whose host is the Host this was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}
