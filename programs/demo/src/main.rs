//! The demo application: a live dashboard, a REST API that starts backtests, and the
//! crate's WebSocket hub mounted on the application's own `/ws` route (axum).
//!
//! ```text
//! cargo run --release --bin demo                    # http://127.0.0.1:8000/
//! cargo run --release --bin demo -- --addr localhost:9000
//! cargo run --release --bin demo -- --data-dir ./data  # runs may read CSV files there
//! cargo run --release --bin demo -- --history 2000   # events replayed to late joiners
//! BACKTEST_STREAM_ADDR=127.0.0.1:0 cargo run --release --bin demo
//! cargo run --release --bin demo -- --redis redis://127.0.0.1:6379  # runs through Redis
//! ```
//!
//! The first line on stdout is `Dashboard: http://ADDR/` (with the bound port), or,
//! with `--auth-secret-file`, `Dashboard: http://ADDR/#token=JWT` carrying a
//! development token; a closed stdout (`demo | head -1`) does not stop the server.
//! Only loopback addresses are served unless tokens are required (`--auth-secret-file`,
//! `--auth-public-key`) or `--insecure` is given.
//! `RUST_LOG` sets the console log level (default `info`; trade lines are streamed to
//! the page but not printed).

#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

mod access;
mod api;
mod auth;
mod broker;
mod data;
mod error;
mod guard;
mod http;
mod options;
mod paced;
mod request;
mod runs;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::server::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, StreamMetrics};
use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::sink::SharedSink;
use backtest_stream::wire::Topic;
use log::LevelFilter;

use crate::auth::{AuthSetup, DemoAuthorizer};
use crate::data::DataDir;
use crate::guard::AllowedHosts;
use crate::options::{Command, Options};
use crate::runs::Runs;

const DASHBOARD: &str = include_str!("dashboard.html");
/// The page's files: (path, content type, body). Each is served with the headers of
/// [`asset`], behind the same guard (Host check, headers) as every route.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/dashboard.css", CSS, include_str!("dashboard.css")),
    ("/dashboard-auth.js", JS, include_str!("dashboard-auth.js")),
    ("/dashboard.js", JS, include_str!("dashboard.js")),
    ("/dashboard/util.js", JS, include_str!("dashboard/util.js")),
    (
        "/dashboard/connection.js",
        JS,
        include_str!("dashboard/connection.js"),
    ),
    ("/dashboard/rest.js", JS, include_str!("dashboard/rest.js")),
    ("/dashboard/runs.js", JS, include_str!("dashboard/runs.js")),
    (
        "/dashboard/cards.js",
        JS,
        include_str!("dashboard/cards.js"),
    ),
    (
        "/dashboard/chart.js",
        JS,
        include_str!("dashboard/chart.js"),
    ),
    (
        "/dashboard/logpane.js",
        JS,
        include_str!("dashboard/logpane.js"),
    ),
    (
        "/dashboard/trades.js",
        JS,
        include_str!("dashboard/trades.js"),
    ),
    ("/dashboard/form.js", JS, include_str!("dashboard/form.js")),
    (
        "/dashboard/runs-table.js",
        JS,
        include_str!("dashboard/runs-table.js"),
    ),
];
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
/// Runs remembered by the API (the oldest finished ones are forgotten first).
const MAX_KEPT_RUNS: usize = 1_000;

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    hub: Hub,
    /// `/metrics`: the hub's figures (and its gateway's, with `--redis`).
    metrics: StreamMetrics,
    runs: Runs,
    settings: Arc<Settings>,
    /// The token verifier (`--auth-*`); `None`: no authentication.
    auth: Option<DemoAuthorizer>,
}

/// The request limits the handlers apply.
#[derive(Debug)]
pub struct Settings {
    /// Where `data_path` files are read (`None`: `data_path` is refused).
    pub data_dir: Option<DataDir>,
    /// The longest paced run.
    pub max_run: Duration,
}

#[tokio::main]
async fn main() {
    let options = match options::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            // `demo --help | head -1`: a closed stdout is not an error.
            let _ = std::io::stdout().write_all(options::usage().as_bytes());
            return;
        }
        Err(message) => {
            eprintln!("demo: {message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(*options).await {
        eprintln!("demo: {error}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = options
        .data_dir
        .as_deref()
        .map(|dir| DataDir::new(dir, options.max_data_bytes))
        .transpose()?;
    let auth = AuthSetup::from_options(&options.auth)?;
    let dev_token = auth.as_ref().and_then(AuthSetup::dev_token).transpose()?;
    let (listener, name) = bind(&options).await?;
    let addr = listener.local_addr()?;
    let hosts = Arc::new(AllowedHosts::new(addr, name, &options.allowed_hosts));

    // Same origin: a page of another site cannot read this server's stream
    // (cross-site WebSocket hijacking); browsers always send Origin.
    let mut config = ServerConfig::default()
        .history_size(options.history)
        .handshake_timeout(options.http.header_timeout)
        .max_connections(options.http.max_connections)
        .same_origin(true);
    let authorizer = auth.map(|setup| setup.authorizer);
    if let Some(authorizer) = &authorizer {
        config = config.authorizer(authorizer.clone());
    }
    let hub = Hub::new(config)?;
    // With --redis, everything the demo publishes goes to Redis, and the hub is fed
    // from there (never both: the hub's numbering is the broker's).
    let broker = options
        .redis
        .as_deref()
        .map(|url| broker::Broker::start(url, &hub, options.history))
        .transpose()?;
    let sink: SharedSink = match &broker {
        Some(broker) => broker.sink(),
        None => Arc::new(hub.sink()),
    };
    install_logging(Arc::clone(&sink))?;
    if let Some(url) = &options.redis {
        log::info!("runs go through Redis Streams at {url}; /ws is fed from there");
    }

    let app = App {
        runs: Runs::new(sink, options.max_runs, MAX_KEPT_RUNS),
        metrics: stream_metrics(&hub, broker.as_ref()),
        hub,
        settings: Arc::new(Settings {
            data_dir,
            max_run: options.max_run,
        }),
        auth: authorizer,
    };
    if let Some(authorizer) = &app.auth {
        authorizer.set_runs(app.runs.clone());
    }
    let guard_hosts = Arc::clone(&hosts);
    let router =
        http::with_limits(routes(app.clone()), options.http).layer(axum::middleware::from_fn(
            move |request, next| guard::check(Arc::clone(&guard_hosts), request, next),
        ));
    announce(addr, dev_token.as_deref(), app.auth.is_some());
    log::info!("listening on {addr}");
    if !guard::is_loopback(addr.ip()) {
        let names = hosts.names().join(", ");
        if app.auth.is_some() {
            log::info!(
                "listening on {addr}, which is not loopback, with authentication: every call \
                 needs a token; only the Host names {names} are answered (add others with \
                 --allowed-host NAME)"
            );
        } else {
            log::warn!(
                "listening on {addr}, which is not loopback, without authentication \
                 (--insecure): anyone who can reach it may start and cancel runs; only the \
                 Host names {names} are answered (add others with --allowed-host NAME)"
            );
        }
    }
    if let Some(dir) = &options.data_dir {
        log::info!("runs may read CSV files below {}", dir.display());
    }
    http::serve(listener, router, options.http).await?;
    drop(broker);
    Ok(())
}

/// The lines on stdout. The first is the contract with tests and scripts: keep it
/// first and one line (`Dashboard: URL`, the URL carrying the development token in its
/// fragment when there is one). A closed stdout (`demo | head -1`) is no reason to stop
/// serving: write errors are ignored.
fn announce(addr: SocketAddr, dev_token: Option<&str>, auth: bool) {
    let mut out = std::io::stdout().lock();
    match dev_token {
        Some(token) => drop(writeln!(out, "Dashboard: http://{addr}/#token={token}")),
        None => drop(writeln!(out, "Dashboard: http://{addr}/")),
    }
    let _ = writeln!(out, "WebSocket: ws://{addr}/ws");
    let _ = writeln!(out, "REST API:  POST http://{addr}/api/v1/backtest/run");
    if dev_token.is_some() {
        let _ = writeln!(
            out,
            "Auth:      tokens required; the dashboard URL above carries a development token \
             (sub \"{}\", every run, scope \"start cancel\", {} hours): keep it private",
            auth::DEV_SUBJECT,
            auth::DEV_TOKEN_LIFETIME.as_secs() / 3600
        );
    } else if auth {
        let _ = writeln!(
            out,
            "Auth:      tokens required; the demo holds only public keys and cannot sign one: \
             tokens must come from the key's owner (open the dashboard as http://{addr}/#token=JWT)"
        );
    }
    let _ = out.flush();
}

/// The metrics of the hub, with its gateway's and its Redis sink's under `--redis`.
fn stream_metrics(hub: &Hub, broker: Option<&broker::Broker>) -> StreamMetrics {
    let metrics = StreamMetrics::new(hub);
    match broker {
        Some(broker) => metrics
            .with_gateway(broker.gateway())
            .with_redis_sink(broker.redis_sink()),
        None => metrics,
    }
}

/// `/metrics`: the Prometheus text of the hub's (and gateway's) figures; behind the
/// Host check like every route, no token needed (it holds counts, no run's data).
async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let content_type = [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)];
    (content_type, app.metrics.text()).into_response()
}

/// The routes: the page and its files, `/ws`, `/metrics`, the REST API; every other path
/// or method gets a JSON 404 or 405.
fn routes(app: App) -> Router {
    let mut router = Router::new().route("/", get(dashboard));
    for &(path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    router
        .route("/ws", get(websocket))
        .route("/metrics", get(metrics))
        .route("/api/v1/backtest/run", axum::routing::post(api::start_run))
        .route(
            "/api/v1/backtest/{id}",
            get(api::get_run).delete(api::cancel_run),
        )
        .route("/api/v1/backtests", get(api::list_runs))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(app)
}

/// Resolves `--addr` (a name such as `localhost` too), refuses an address that is not
/// loopback without `--insecure`, and listens on the first address that works. Returns
/// the listener and the host name of `--addr` when it was a name.
async fn bind(options: &Options) -> Result<(tokio::net::TcpListener, Option<&str>), String> {
    let (host, _) = options::split_host_port(&options.addr)
        .ok_or_else(|| format!("bad address `{}` (expected HOST:PORT)", options.addr))?;
    let is_name = host.parse::<std::net::IpAddr>().is_err();
    let candidates: Vec<SocketAddr> = tokio::net::lookup_host(options.addr.as_str())
        .await
        .map_err(|e| format!("cannot resolve `{}`: {e}", options.addr))?
        .collect();
    if candidates.is_empty() {
        return Err(format!("`{}` resolves to no address", options.addr));
    }
    for candidate in &candidates {
        access::exposure_allowed(*candidate, options.insecure, options.auth.enabled())?;
    }
    let mut failures = Vec::new();
    for candidate in candidates {
        match tokio::net::TcpListener::bind(candidate).await {
            Ok(listener) => return Ok((listener, is_name.then_some(host))),
            Err(e) => failures.push(format!("{candidate}: {e}")),
        }
    }
    Err(format!(
        "cannot listen on {}: {}",
        options.addr,
        failures.join("; ")
    ))
}

/// Console logging (stderr) wrapped by the log bridge: a run's records (its thread is in
/// the run's LogScope while BacktestRunner runs it) become that run's log_entry events;
/// the others go to the page's server log (backtest_id null).
fn install_logging(sink: SharedSink) -> Result<(), Box<dyn std::error::Error>> {
    let console = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,backtest_stream::reference=warn"),
    )
    .build();
    let console_level = console.filter();
    LogBridge::builder()
        .level(LevelFilter::Info)
        .target_level("tungstenite", LevelFilter::Warn)
        .target_level("tokio_tungstenite", LevelFilter::Warn)
        .default_shared_sink(sink, Topic::BACKTEST)
        .wrap(console, console_level)
        .build()
        .try_init()?;
    Ok(())
}

/// The page, with a Content-Security-Policy that allows only this server's own script,
/// style sheet and WebSocket (the page has no inline script or style), and no framing.
async fn dashboard(headers: HeaderMap) -> Response {
    // The Host passed the allow-list (guard), so it is a plain host[:port].
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    let csp = HeaderValue::from_str(&csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        Html(DASHBOARD),
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
}

/// `/ws`: the crate's hub answers the upgrade request (origin check, limits) and
/// serves the connection, exactly as any web application would embed it. The `Host`
/// was checked before (guard), so a rebound name never reaches the upgrade.
async fn websocket(State(app): State<App>, request: Request) -> impl IntoResponse {
    app.hub.upgrade(request)
}
