//! The command line: `gateway --redis URL [--addr HOST:PORT] ...` (see [`usage`]). Every
//! setting may also come from an environment variable; a flag wins over its variable.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use backtest_stream::wire::Topic;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8001";
pub const DEFAULT_TOPICS: &str = "backtest,logs";
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_QUEUE: usize = 1_024;
/// Events kept per topic, as the demo's (`HISTORY_EVENTS`): a page that joins mid-run
/// gets the runs' whole history, and a client may resume on another gateway.
pub const DEFAULT_HISTORY: usize = 16_384;
pub const DEFAULT_PING_SECS: u64 = 20;
pub const DEFAULT_HTTP_TIMEOUT_SECS: u64 = 10;

/// The environment variables, one per setting.
pub const REDIS_ENV: &str = "BACKTEST_STREAM_REDIS";
/// Not the demo's `BACKTEST_STREAM_ADDR`: a demo and gateways often share a shell.
pub const ADDR_ENV: &str = "BACKTEST_STREAM_GATEWAY_ADDR";
pub const TOPICS_ENV: &str = "BACKTEST_STREAM_TOPICS";
pub const MAX_CONNECTIONS_ENV: &str = "BACKTEST_STREAM_MAX_CONNECTIONS";
pub const QUEUE_ENV: &str = "BACKTEST_STREAM_QUEUE";
pub const HISTORY_ENV: &str = "BACKTEST_STREAM_HISTORY";
pub const PING_SECS_ENV: &str = "BACKTEST_STREAM_PING_SECS";
pub const HTTP_TIMEOUT_ENV: &str = "BACKTEST_STREAM_HTTP_TIMEOUT";
pub const ALLOWED_ORIGINS_ENV: &str = "BACKTEST_STREAM_ALLOWED_ORIGINS";
pub const AUTH_SECRET_FILE_ENV: &str = "BACKTEST_STREAM_AUTH_SECRET_FILE";
pub const AUTH_PUBLIC_KEY_ENV: &str = "BACKTEST_STREAM_AUTH_PUBLIC_KEY";
pub const AUTH_AUDIENCE_ENV: &str = "BACKTEST_STREAM_AUTH_AUDIENCE";
pub const AUTH_ISSUER_ENV: &str = "BACKTEST_STREAM_AUTH_ISSUER";

/// The options that take a value (without their `--`).
const VALUE_FLAGS: &[&str] = &[
    "redis",
    "addr",
    "topics",
    "max-connections",
    "queue",
    "history",
    "ping-secs",
    "http-timeout",
    "allowed-origin",
    "allowed-host",
    "auth-secret-file",
    "auth-public-key",
    "auth-audience",
    "auth-issuer",
];

/// What the command line asks for.
pub enum Command {
    Run(Box<Options>),
    Help,
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Redis the workers write to (`redis://host:port/db`, `rediss://...`).
    pub redis: String,
    /// `HOST:PORT` as given; the host may be a name (`localhost:8001`).
    pub addr: String,
    pub topics: Vec<Topic>,
    /// WebSocket (and HTTP) connections open at once.
    pub max_connections: usize,
    /// Frames queued per client.
    pub queue: usize,
    /// Events kept per topic for replay, also read back from each stream at start.
    pub history: usize,
    pub ping: Duration,
    /// How long a client may take to send a request head (also the idle limit).
    pub http_timeout: Duration,
    /// `Origin`s accepted on `/ws` besides this server's own pages (same origin).
    pub allowed_origins: Vec<String>,
    /// Host names served besides the defaults (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// Listen on an address that is not loopback, without authentication.
    pub insecure: bool,
    pub auth: AuthOptions,
}

/// Where the token verifier's keys come from (none: no authentication).
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    pub secret_file: Option<PathBuf>,
    pub public_keys: Vec<PathBuf>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

impl AuthOptions {
    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.secret_file.is_some() || !self.public_keys.is_empty()
    }
}

pub fn usage() -> String {
    format!(
        "usage: gateway --redis URL [--addr HOST:PORT] [--topics A,B] [--insecure]\n               \
         [--allowed-host NAME]... [--allowed-origin URL]... [--max-connections N]\n               \
         [--queue N] [--history N] [--ping-secs N] [--http-timeout SECS]\n               \
         [--auth-secret-file PATH] [--auth-public-key PATH]... [--auth-audience AUD]\n               \
         [--auth-issuer ISS]\n\n\
         Serves the events backtest workers write to Redis Streams (RedisSink) on a WebSocket\n\
         at ws://ADDR/ws, with the broker's seq and epoch: several gateways on one Redis give\n\
         identical streams. Also GET /healthz (503 while Redis is unreachable) and GET /metrics\n\
         (Prometheus text). Each option may come from the environment variable shown.\n\n  \
         --redis URL          the Redis to follow (${REDIS_ENV}; required), e.g. redis://127.0.0.1:6379\n  \
         --addr HOST:PORT     where to listen (default {DEFAULT_ADDR}; ${ADDR_ENV}); HOST may be a\n                       \
         name (localhost:8001); port 0 picks a free one\n  \
         --topics A,B         the topics served (default {DEFAULT_TOPICS}; ${TOPICS_ENV})\n  \
         --insecure           allow an address that is not loopback without authentication\n  \
         --allowed-host NAME  a Host name served besides the bound address and, on loopback,\n                       \
         localhost (repeatable; NAME or NAME:PORT); other Host headers get 421\n  \
         --allowed-origin URL a page origin allowed on /ws besides this server's own\n                       \
         (repeatable, e.g. http://localhost:8000; ${ALLOWED_ORIGINS_ENV}, comma-separated)\n  \
         --max-connections N  connections open at once (default {DEFAULT_MAX_CONNECTIONS}; ${MAX_CONNECTIONS_ENV})\n  \
         --queue N            frames queued per client before it is told `lagged` (default\n                       \
         {DEFAULT_QUEUE}; ${QUEUE_ENV})\n  \
         --history N          events kept per topic for replay, and read back from each stream at\n                       \
         start (default {DEFAULT_HISTORY}; ${HISTORY_ENV})\n  \
         --ping-secs N        seconds between pings to each client (default {DEFAULT_PING_SECS}; ${PING_SECS_ENV})\n  \
         --http-timeout SECS  seconds a client may take to send a request head, or stay idle\n                       \
         (default {DEFAULT_HTTP_TIMEOUT_SECS}; ${HTTP_TIMEOUT_ENV})\n  \
         --auth-secret-file PATH  a file holding an HS256 secret (${AUTH_SECRET_FILE_ENV}): every\n                       \
         WebSocket then needs a JWT (`?token=` or an `auth` message)\n  \
         --auth-public-key PATH   a PEM public key (RS256, ES256/ES384 or EdDSA) tokens may be\n                       \
         signed with (repeatable; ${AUTH_PUBLIC_KEY_ENV})\n  \
         --auth-audience AUD  the `aud` every token must have (${AUTH_AUDIENCE_ENV})\n  \
         --auth-issuer ISS    the `iss` every token must have (${AUTH_ISSUER_ENV})\n  \
         -h, --help           this help\n\n\
         /healthz and /metrics need no token. RUST_LOG sets the console log level (default info).\n"
    )
}

/// Reads the command line (and the environment variables).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = from_env()?;
    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("gateway")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n\n{}", usage()))? {
        let flag = match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("insecure") => {
                options.insecure = true;
                continue;
            }
            Long(flag) if VALUE_FLAGS.contains(&flag) => format!("--{flag}"),
            Long(flag) => return Err(format!("unknown option --{flag}\n\n{}", usage())),
            other => return Err(format!("{}\n\n{}", other.unexpected(), usage())),
        };
        let value = parser
            .value()
            .map_err(|_| format!("{flag} needs a value\n\n{}", usage()))?
            .into_string()
            .map_err(|v| format!("{flag}: {v:?} is not valid text"))?;
        set(&mut options, &flag, &value)?;
    }
    check(options).map(|o| Command::Run(Box::new(o)))
}

/// The defaults, and the environment variables over them.
fn from_env() -> Result<Options, String> {
    let mut options = Options {
        redis: String::new(),
        addr: DEFAULT_ADDR.to_owned(),
        topics: Vec::new(),
        max_connections: DEFAULT_MAX_CONNECTIONS,
        queue: DEFAULT_QUEUE,
        history: DEFAULT_HISTORY,
        ping: Duration::from_secs(DEFAULT_PING_SECS),
        http_timeout: Duration::from_secs(DEFAULT_HTTP_TIMEOUT_SECS),
        allowed_origins: Vec::new(),
        allowed_hosts: Vec::new(),
        insecure: false,
        auth: AuthOptions::default(),
    };
    set(&mut options, "--topics", DEFAULT_TOPICS)?;
    for (name, flag) in [
        (REDIS_ENV, "--redis"),
        (ADDR_ENV, "--addr"),
        (TOPICS_ENV, "--topics"),
        (MAX_CONNECTIONS_ENV, "--max-connections"),
        (QUEUE_ENV, "--queue"),
        (HISTORY_ENV, "--history"),
        (PING_SECS_ENV, "--ping-secs"),
        (HTTP_TIMEOUT_ENV, "--http-timeout"),
        (ALLOWED_ORIGINS_ENV, "--allowed-origin"),
        (AUTH_SECRET_FILE_ENV, "--auth-secret-file"),
        (AUTH_PUBLIC_KEY_ENV, "--auth-public-key"),
        (AUTH_AUDIENCE_ENV, "--auth-audience"),
        (AUTH_ISSUER_ENV, "--auth-issuer"),
    ] {
        let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|v| format!("${name}: {v:?} is not valid text"))?;
        if flag == "--allowed-origin" {
            for origin in value.split(',').filter(|o| !o.trim().is_empty()) {
                set(&mut options, flag, origin).map_err(|e| format!("${name} (as {flag}): {e}"))?;
            }
        } else {
            set(&mut options, flag, &value).map_err(|e| format!("${name} (as {flag}): {e}"))?;
        }
    }
    Ok(options)
}

/// Sets the option `flag` (`--redis`, ...) from its value.
fn set(options: &mut Options, flag: &str, value: &str) -> Result<(), String> {
    let text = || {
        let v = value.trim();
        if v.is_empty() {
            Err(format!("{flag}: the value is empty"))
        } else {
            Ok(v.to_owned())
        }
    };
    match flag {
        "--redis" => options.redis = text()?,
        "--addr" => options.addr = text()?,
        "--topics" => options.topics = topics(value)?,
        "--max-connections" => options.max_connections = positive(flag, value)?,
        "--queue" => options.queue = positive(flag, value)?,
        "--history" => options.history = positive(flag, value)?,
        "--ping-secs" => options.ping = Duration::from_secs(positive(flag, value)?),
        "--http-timeout" => options.http_timeout = Duration::from_secs(positive(flag, value)?),
        "--allowed-origin" => options.allowed_origins.push(origin(value)?),
        "--allowed-host" => options.allowed_hosts.push(allowed_host(value)?),
        "--auth-secret-file" => options.auth.secret_file = Some(PathBuf::from(text()?)),
        "--auth-public-key" => options.auth.public_keys.push(PathBuf::from(text()?)),
        "--auth-audience" => options.auth.audience = Some(text()?),
        "--auth-issuer" => options.auth.issuer = Some(text()?),
        _ => return Err(format!("unknown option {flag}\n\n{}", usage())),
    }
    Ok(())
}

/// The checks that need every option.
fn check(options: Options) -> Result<Options, String> {
    if options.redis.is_empty() {
        return Err(format!(
            "--redis URL is required (or ${REDIS_ENV}), e.g. --redis redis://127.0.0.1:6379\n\n{}",
            usage()
        ));
    }
    let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|s| options.redis.starts_with(s));
    if !scheme_ok {
        return Err(format!(
            "--redis: `{}` is not a Redis URL (redis://HOST:PORT[/DB], rediss://... for TLS)",
            options.redis
        ));
    }
    split_host_port(&options.addr).ok_or_else(|| {
        format!(
            "--addr: bad address `{}` (expected HOST:PORT, e.g. {DEFAULT_ADDR} or localhost:8001)",
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
    Ok(options)
}

fn positive<T: std::str::FromStr + Default + PartialOrd>(
    flag: &str,
    value: &str,
) -> Result<T, String> {
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|n| *n > T::default())
        .ok_or_else(|| format!("{flag}: `{value}` is not a positive number"))
}

/// `a,b` → the topics (at least one, each a valid name, no duplicates).
fn topics(value: &str) -> Result<Vec<Topic>, String> {
    let mut topics: Vec<Topic> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let topic = Topic::new(name).map_err(|e| format!("--topics: `{name}`: {e}"))?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    if topics.is_empty() {
        return Err("--topics: give at least one topic (e.g. backtest,logs)".to_owned());
    }
    Ok(topics)
}

/// `--allowed-origin`: `http(s)://host[:port]`, no path.
fn origin(value: &str) -> Result<String, String> {
    let v = value.trim().trim_end_matches('/');
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(v.to_owned()),
        _ => Err(format!(
            "--allowed-origin: `{value}` is not an origin (http://HOST[:PORT] or https://...)"
        )),
    }
}

/// `--allowed-host`: a host name or address, with or without a port, lower-cased (as
/// the demo's).
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

/// `HOST:PORT` → (`HOST`, port); `[::1]:8001` → (`::1`, 8001) (as the demo's).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_parsed_and_deduplicated() {
        let parsed = topics(" backtest, logs,backtest ").unwrap();
        assert_eq!(parsed, [Topic::BACKTEST, Topic::LOGS]);
        assert!(topics(" , ").is_err());
    }

    #[test]
    fn origins_and_addresses_are_checked() {
        assert_eq!(origin("http://a:1/").unwrap(), "http://a:1");
        assert!(origin("ftp://a").is_err());
        assert!(origin("http://a/x").is_err());
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_host_port("localhost:0"), Some(("localhost", 0)));
        assert_eq!(split_host_port("::1:80"), None);
    }
}
