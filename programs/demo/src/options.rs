//! The command line: `demo [--addr HOST:PORT] [--data-dir DIR] ...` (see [`usage`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::http;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";
pub const ADDR_ENV: &str = "BACKTEST_STREAM_ADDR";
pub const DATA_DIR_ENV: &str = "BACKTEST_STREAM_DATA_DIR";
pub const AUTH_SECRET_FILE_ENV: &str = "BACKTEST_STREAM_AUTH_SECRET_FILE";
pub const REDIS_ENV: &str = "BACKTEST_STREAM_REDIS";
/// Runs at once; more are refused with 429.
pub const DEFAULT_MAX_RUNS: usize = 8;
/// Events the hub retains per topic, replayed to a page that connects mid-run (it
/// subscribes with `since: 0`). A default run (5,000 bars) publishes 388 events
/// (measured: 200 progress, 185 log lines, start, complete; ~330 bytes a frame); one
/// with a fast strategy (`fast 5, slow 20`) about 530. 16,384 events hold the whole
/// history of `DEFAULT_MAX_RUNS` (8) such runs side by side about four to five times over,
/// so runs that just finished are still complete too, for about 5-6 MB of frames
/// shared by all clients. Longer runs keep their latest events, and the snapshot still
/// gives every run's start and latest state.
pub const HISTORY_EVENTS: usize = 16_384;
/// The largest CSV file a run may read (64 MiB).
pub const DEFAULT_MAX_DATA_BYTES: u64 = 64 * 1024 * 1024;
/// The longest paced run (`bars × bar_delay_us`): one hour.
pub const DEFAULT_MAX_RUN_SECONDS: u64 = 3_600;

/// What the command line asks for.
pub enum Command {
    Run(Box<Options>),
    Help,
}

/// The demo's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT` as given; the host may be a name (`localhost:8000`).
    pub addr: String,
    pub max_runs: usize,
    pub history: usize,
    pub http: http::Limits,
    /// The only directory below which a request's `data_path` is read (none: no CSV).
    pub data_dir: Option<PathBuf>,
    pub max_data_bytes: u64,
    pub max_run: Duration,
    /// Host names served besides the defaults (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// Listen on an address that is not loopback, without authentication.
    pub insecure: bool,
    /// Bearer tokens (`--auth-*`).
    pub auth: AuthOptions,
    /// Runs go through the Redis at this URL (`--redis`).
    pub redis: Option<String>,
}

/// Where the token verifier's keys come from (none: no authentication).
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    /// The HS256 secret's file (`--auth-secret-file`).
    pub secret_file: Option<PathBuf>,
    /// Public keys in PEM (`--auth-public-key`, repeatable).
    pub public_keys: Vec<PathBuf>,
    /// The `aud` tokens must have (`--auth-audience`).
    pub audience: Option<String>,
    /// The `iss` tokens must have (`--auth-issuer`).
    pub issuer: Option<String>,
}

impl AuthOptions {
    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.secret_file.is_some() || !self.public_keys.is_empty()
    }
}

pub fn usage() -> String {
    let limits = http::Limits::default();
    format!(
        "usage: demo [--addr HOST:PORT] [--insecure] [--allowed-host NAME]... [--data-dir DIR]\n            \
         [--max-data-bytes N] [--max-run-seconds N] [--max-runs N] [--history N]\n            \
         [--http-timeout SECS] [--max-connections N]\n            \
         [--auth-secret-file PATH] [--auth-public-key PATH]... [--auth-audience AUD]\n            \
         [--auth-issuer ISS] [--redis URL]\n\n  \
         --addr             where to listen (default {DEFAULT_ADDR}, or ${ADDR_ENV}); HOST may be a name\n                     \
         (localhost:8000); port 0 picks a free one\n  \
         --insecure         allow an address that is not loopback (0.0.0.0, a LAN address) without\n                     \
         authentication: anyone who can reach it may start and cancel runs (not needed\n                     \
         with --auth-*)\n  \
         --allowed-host     a Host name the server answers to (repeatable; NAME or NAME:PORT); always\n                     \
         allowed: the bound address, and localhost, 127.0.0.1 and [::1] with its port\n                     \
         when it is loopback or unspecified; other Host headers get 421 (DNS rebinding)\n  \
         --data-dir         the directory whose CSV files runs may read with `data_path` (relative to it;\n                     \
         or ${DATA_DIR_ENV}); without it `data_path` is refused\n  \
         --max-data-bytes   the largest CSV file a run may read (default {DEFAULT_MAX_DATA_BYTES} bytes)\n  \
         --max-run-seconds  the longest paced run, bars x bar_delay_us (default {DEFAULT_MAX_RUN_SECONDS})\n  \
         --max-runs         backtests running at once (default {DEFAULT_MAX_RUNS}); more get HTTP 429\n  \
         --history          events kept per topic for pages that join mid-run (default {HISTORY_EVENTS})\n  \
         --http-timeout     seconds a client may take to send a request head or body, or stay idle (default {})\n  \
         --max-connections  HTTP and WebSocket connections open at once; more are closed at once (default {})\n  \
         --auth-secret-file a file holding an HS256 secret (a trailing newline is ignored; or\n                     \
         ${AUTH_SECRET_FILE_ENV}): every REST call and WebSocket then needs a JWT bearer\n                     \
         token; the first line printed is the dashboard URL with a 12-hour development\n                     \
         token in its fragment (http://ADDR/#token=...)\n  \
         --auth-public-key  a PEM public key (RS256, ES256/ES384 or EdDSA) tokens may be signed with\n                     \
         (repeatable); the demo cannot sign with it: tokens come from the key's owner\n  \
         --auth-audience    the `aud` every token must have\n  \
         --auth-issuer      the `iss` every token must have\n  \
         --redis URL        runs go through Redis Streams (or ${REDIS_ENV}; redis://HOST:PORT): they\n                     \
         are written there, and /ws is fed from there as gateways are (`gateway --redis\n                     \
         URL`), so the dashboard and the REST API work unchanged on top of gateways\n  \
         With --auth-*, an address that is not loopback needs no --insecure. Tokens carry `sub`,\n  \
         `exp`, `topics` (\"*\" or a list) or `runs` (ids), and `scope` (\"start cancel\").\n",
        limits.header_timeout.as_secs(),
        limits.max_connections,
    )
}

/// Reads the command line (and the environment variables).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = defaults();
    let mut parser = lexopt::Parser::from_iter(std::iter::once(OsString::from("demo")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n\n{}", usage()))? {
        match arg {
            Long("addr") => options.addr = value(&mut parser, "--addr", "an address (HOST:PORT)")?,
            Long("insecure") => options.insecure = true,
            Long("allowed-host") => {
                let v = value(&mut parser, "--allowed-host", "a host name")?;
                options.allowed_hosts.push(allowed_host(&v)?);
            }
            Long("data-dir") => {
                let v = parser
                    .value()
                    .map_err(|_| missing("--data-dir", "a directory"))?;
                options.data_dir = Some(PathBuf::from(v));
            }
            Long("max-data-bytes") => {
                options.max_data_bytes = positive(&mut parser, "--max-data-bytes")?;
            }
            Long("max-run-seconds") => {
                let secs = positive(&mut parser, "--max-run-seconds")?;
                options.max_run = Duration::from_secs(secs);
            }
            Long("max-runs") => {
                options.max_runs = usize::try_from(positive(&mut parser, "--max-runs")?)
                    .map_err(|_| "--max-runs: too large".to_owned())?;
            }
            Long("history") => {
                let v = value(&mut parser, "--history", "a number")?;
                options.history = v
                    .parse()
                    .map_err(|_| format!("--history: `{v}` is not a number of events"))?;
            }
            Long("http-timeout") => {
                let secs = positive(&mut parser, "--http-timeout")?;
                options.http.header_timeout = Duration::from_secs(secs);
                options.http.body_timeout = options.http.header_timeout;
            }
            Long("max-connections") => {
                options.http.max_connections =
                    usize::try_from(positive(&mut parser, "--max-connections")?)
                        .map_err(|_| "--max-connections: too large".to_owned())?;
            }
            Long("redis") => {
                let v = value(&mut parser, "--redis", "a Redis URL (redis://HOST:PORT)")?;
                options.redis = Some(redis_url(&v)?);
            }
            Long(name) if name.starts_with("auth-") => {
                let name = format!("--{name}");
                auth_option(&mut parser, &name, &mut options.auth)?;
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            other => {
                let other = other.unexpected();
                return Err(format!("{other}\n\n{}", usage()));
            }
        }
    }
    options.addr = options.addr.trim().to_owned();
    split_host_port(&options.addr).ok_or_else(|| {
        format!(
            "bad address `{}` (expected HOST:PORT, e.g. {DEFAULT_ADDR} or localhost:8000)",
            options.addr
        )
    })?;
    let auth = &options.auth;
    if (auth.audience.is_some() || auth.issuer.is_some()) && !auth.enabled() {
        return Err(
            "--auth-audience and --auth-issuer need a key: give --auth-secret-file or \
             --auth-public-key too"
                .to_owned(),
        );
    }
    Ok(Command::Run(Box::new(options)))
}

/// The settings without options: the defaults and the environment variables.
fn defaults() -> Options {
    let env = |name: &str| std::env::var(name).ok().filter(|a| !a.trim().is_empty());
    Options {
        addr: env(ADDR_ENV).unwrap_or_else(|| DEFAULT_ADDR.to_owned()),
        max_runs: DEFAULT_MAX_RUNS,
        history: HISTORY_EVENTS,
        http: http::Limits::default(),
        data_dir: std::env::var_os(DATA_DIR_ENV)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        max_data_bytes: DEFAULT_MAX_DATA_BYTES,
        max_run: Duration::from_secs(DEFAULT_MAX_RUN_SECONDS),
        allowed_hosts: Vec::new(),
        insecure: false,
        auth: AuthOptions {
            secret_file: std::env::var_os(AUTH_SECRET_FILE_ENV)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
            ..AuthOptions::default()
        },
        redis: env(REDIS_ENV),
    }
}

/// `--redis`: a Redis URL (its host and port are checked when connecting).
fn redis_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    let known = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme));
    if known {
        Ok(url.to_owned())
    } else {
        Err(format!(
            "--redis: `{text}` is not a Redis URL (redis://HOST:PORT[/DB], rediss://... for TLS)"
        ))
    }
}

fn missing(name: &str, what: &str) -> String {
    format!("{name} needs {what}\n\n{}", usage())
}

/// The value of option `name`, as text.
fn value(parser: &mut lexopt::Parser, name: &str, what: &str) -> Result<String, String> {
    let value = parser.value().map_err(|_| missing(name, what))?;
    value
        .into_string()
        .map_err(|v| format!("{name}: {v:?} is not valid text"))
}

/// The value of option `name`, a positive whole number.
fn positive(parser: &mut lexopt::Parser, name: &str) -> Result<u64, String> {
    let v = value(parser, name, "a positive number")?;
    v.trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{name}: `{v}` is not a positive number"))
}

/// One `--auth-*` option.
fn auth_option(
    parser: &mut lexopt::Parser,
    name: &str,
    auth: &mut AuthOptions,
) -> Result<(), String> {
    let text = |parser: &mut lexopt::Parser, what: &str| {
        let v = value(parser, name, what)?;
        if v.trim().is_empty() {
            return Err(format!("{name}: the value is empty"));
        }
        Ok(v)
    };
    let file = |parser: &mut lexopt::Parser, what: &str| {
        let v = parser.value().map_err(|_| missing(name, what))?;
        if v.is_empty() {
            return Err(format!("{name}: the path is empty"));
        }
        Ok(PathBuf::from(v))
    };
    match name {
        "--auth-secret-file" => auth.secret_file = Some(file(parser, "a file")?),
        "--auth-public-key" => auth.public_keys.push(file(parser, "a PEM file")?),
        "--auth-audience" => auth.audience = Some(text(parser, "an audience")?),
        "--auth-issuer" => auth.issuer = Some(text(parser, "an issuer")?),
        _ => return Err(format!("unknown option {name}\n\n{}", usage())),
    }
    Ok(())
}

/// `--allowed-host`: a host name or address, with or without a port, lower-cased.
fn allowed_host(text: &str) -> Result<String, String> {
    let name = text.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "--allowed-host: `{text}` is not a host name (letters, digits, - . _, an IP address, \
             optionally :PORT)"
        ))
    }
}

/// `HOST:PORT` → (`HOST`, port); `[::1]:8000` → (`::1`, 8000).
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}
