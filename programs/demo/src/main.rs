//! The demo application: a live dashboard, a REST API that starts backtests, and the
//! crate's WebSocket hub mounted on the application's own `/ws` route (axum).
//!
//! ```text
//! cargo run --release --bin demo                    # http://127.0.0.1:8000/
//! cargo run --release --bin demo -- --addr 0.0.0.0:9000
//! cargo run --release --bin demo -- --history 2000   # events replayed to late joiners
//! BACKTEST_STREAM_ADDR=127.0.0.1:0 cargo run --release --bin demo
//! ```
//!
//! The first line on stdout is `Dashboard: http://ADDR/` (with the bound port).
//! `RUST_LOG` sets the console log level (default `info`; trade lines are streamed to
//! the page but not printed).

#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

mod api;
mod http;
mod runs;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::sink::SharedSink;
use backtest_stream::wire::Topic;
use log::LevelFilter;

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
    http: http::Limits,
}

fn usage() -> String {
    format!(
        "usage: demo [--addr HOST:PORT] [--max-runs N] [--history N] [--http-timeout SECS] [--max-connections N]\n\n  \
         --addr             where to listen (default {DEFAULT_ADDR}, or ${ADDR_ENV}); port 0 picks a free one\n  \
         --max-runs         backtests running at once (default {DEFAULT_MAX_RUNS}); more get HTTP 429\n  \
         --history          events kept per topic for pages that join mid-run (default {HISTORY_EVENTS})\n  \
         --http-timeout     seconds a client may take to send a request head or body, or stay idle (default {})\n  \
         --max-connections  HTTP and WebSocket connections open at once; more are closed at once (default {})\n",
        http::Limits::default().header_timeout.as_secs(),
        http::Limits::default().max_connections,
    )
}

/// What the command line asks for.
enum Command {
    Run(Options),
    Help,
}

fn parse_options(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut addr = std::env::var(ADDR_ENV)
        .ok()
        .filter(|a| !a.trim().is_empty());
    let mut max_runs = DEFAULT_MAX_RUNS;
    let mut history = HISTORY_EVENTS;
    let mut http = http::Limits::default();
    let mut parser = lexopt::Parser::from_iter(std::iter::once(OsString::from("demo")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n\n{}", usage()))? {
        match arg {
            Long("addr") => addr = Some(value(&mut parser, "--addr", "an address (HOST:PORT)")?),
            Long("max-runs") => {
                let v = value(&mut parser, "--max-runs", "a number")?;
                max_runs = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--max-runs: `{v}` is not a positive number"))?;
            }
            Long("history") => {
                let v = value(&mut parser, "--history", "a number")?;
                history = v
                    .parse()
                    .map_err(|_| format!("--history: `{v}` is not a number of events"))?;
            }
            Long("http-timeout") => {
                let v = value(&mut parser, "--http-timeout", "a number of seconds")?;
                let secs: u64 = v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("--http-timeout: `{v}` is not a positive number of seconds")
                })?;
                http.header_timeout = std::time::Duration::from_secs(secs);
                http.body_timeout = http.header_timeout;
            }
            Long("max-connections") => {
                let v = value(&mut parser, "--max-connections", "a number")?;
                http.max_connections =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--max-connections: `{v}` is not a positive number")
                    })?;
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            other => {
                let other = other.unexpected();
                return Err(format!("{other}\n\n{}", usage()));
            }
        }
    }
    let addr = addr.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let addr = addr.trim().parse().map_err(|e| {
        format!("bad address `{addr}` (expected HOST:PORT, e.g. {DEFAULT_ADDR}): {e}")
    })?;
    Ok(Command::Run(Options {
        addr,
        max_runs,
        history,
        http,
    }))
}

/// The value of option `name`, as text.
fn value(parser: &mut lexopt::Parser, name: &str, what: &str) -> Result<String, String> {
    let missing = || format!("{name} needs {what}\n\n{}", usage());
    let value = parser.value().map_err(|_| missing())?;
    value
        .into_string()
        .map_err(|v| format!("{name}: {v:?} is not valid text"))
}

#[tokio::main]
async fn main() {
    let options = match parse_options(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", usage());
            return;
        }
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
    // Same origin: a page of another site cannot read this server's stream
    // (cross-site WebSocket hijacking); browsers always send Origin.
    let hub = Hub::new(
        ServerConfig::default()
            .history_size(options.history)
            .handshake_timeout(options.http.header_timeout)
            .max_connections(options.http.max_connections)
            .same_origin(true),
    )?;

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
    http::serve(listener, router, options.http).await?;
    Ok(())
}

async fn dashboard() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        Html(DASHBOARD),
    )
}

/// `/ws`: the crate's hub answers the upgrade request (origin check, limits) and
/// serves the connection, exactly as any web application would embed it.
async fn websocket(State(app): State<App>, request: Request) -> impl IntoResponse {
    app.hub.upgrade(request)
}
