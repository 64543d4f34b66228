//! A terminal watcher: follows the backtests a server streams, with a live progress bar
//! per run, the runs' log lines and a results table when a run ends.
//!
//! ```text
//! cargo run --release --bin watch -- [URL...] [--backtest-id ID] [--exit-after-complete SECS]
//!     [--token JWT] [--level LEVEL] [--quiet]
//! ```
//!
//! `URL` defaults to `ws://127.0.0.1:8000/ws`. Several URLs name gateways of one Redis
//! (they number events alike): the watcher connects to the first that answers, and when
//! a connection is lost it resumes on the next one in turn. The watcher subscribes to topic
//! `backtest` (one run only with `--backtest-id`) asking for a snapshot, so a run that is
//! already going shows at once. When the connection drops it reconnects with backoff and
//! resumes where it was (`since` + `epoch`); when the server cannot resume (it restarted,
//! or its history no longer reaches back), it loads the state again with a snapshot.
//! Frames are deduplicated by `seq`. `--exit-after-complete SECS` exits with status 0 once
//! every run seen has ended and SECS seconds passed without a new one.
//!
//! A `lagged` notice is shown with the number of events missed. After a server restart
//! (a new epoch) the runs the new server does not know are closed as lost. A finished
//! run leaves the live block of bars and is printed as its one-line result (and its
//! results table, unless `--quiet`), so the running runs stay on screen. `--level`
//! hides log lines below a level (`trace`, `debug`, `info` (default), `warning`,
//! `error`); `--quiet` hides them all.
//!
//! `--token JWT` (or `BACKTEST_STREAM_TOKEN`) authenticates with a first `auth` message
//! (the token stays out of the URL). The server's close code decides what follows (see
//! the protocol's "Closing"): 4001-4003 and 1001 reconnect and resume, 1013 and 4503
//! reconnect after a longer pause, 4004 (token expired), 4500 (invalid token), 4504
//! (too many connections) and 1008 (refused by policy) end the watcher.
//!
//! Exit status: 0 when `--exit-after-complete` is satisfied; 1 with one line on stderr
//! when the server cannot be reached at start (`error: cannot connect to ws://...:
//! connection refused`), refuses the token or the subscription, closes with a code that
//! says not to retry, or (with `--exit-after-complete SECS`) does not know the run of
//! `--backtest-id` (its snapshot shows no such run, and none appears within SECS); 2 for
//! bad arguments. Output goes to stdout: live bars and coloured
//! levels on a terminal, plain lines otherwise.

#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

mod session;
mod view;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use backtest_stream::wire::{BacktestId, CloseAdvice, LogLevel};
use tokio::time::Instant;

use crate::session::{Ended, Outcome, Session, Socket, connect};
use crate::view::{Filter, View};

const USAGE: &str = "usage: watch [URL...] [--backtest-id ID] [--exit-after-complete SECS] [--token JWT] [--level trace|debug|info|warning|error] [--quiet]   (URL default: ws://127.0.0.1:8000/ws; several URLs: gateways to fail over between; the token also from BACKTEST_STREAM_TOKEN)";
const DEFAULT_URL: &str = "ws://127.0.0.1:8000/ws";
/// First and longest wait between two reconnection attempts.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Options {
    /// The servers, tried in turn (at least one).
    urls: Vec<String>,
    backtest_id: Option<BacktestId>,
    exit_after_complete: Option<Duration>,
    token: Option<String>,
    filter: Filter,
}

/// What the command line asks for.
enum Command {
    Watch(Options),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = Options {
        urls: Vec::new(),
        backtest_id: None,
        exit_after_complete: None,
        token: std::env::var("BACKTEST_STREAM_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        filter: Filter {
            level: LogLevel::Info,
            quiet: false,
        },
    };
    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("watch")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n{USAGE}"))? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("backtest-id") => {
                let id = text(&mut parser, "--backtest-id needs a value")?;
                if id.is_empty() {
                    return Err("--backtest-id: the id is empty".into());
                }
                let id = BacktestId::new(id).map_err(|e| format!("--backtest-id: {e}"))?;
                options.backtest_id = Some(id);
            }
            Long("exit-after-complete") => {
                let value = text(&mut parser, "--exit-after-complete needs SECS")?;
                let secs: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or(format!(
                        "--exit-after-complete: {value:?} is not a number of seconds"
                    ))?;
                options.exit_after_complete = Some(Duration::from_secs_f64(secs));
            }
            Long("token") => {
                let token = text(&mut parser, "--token needs a value")?;
                if token.trim().is_empty() {
                    return Err("--token: the token is empty".into());
                }
                options.token = Some(token.trim().to_owned());
            }
            Long("level") => {
                let value = text(&mut parser, "--level needs a level")?;
                options.filter.level = level(&value)?;
            }
            Short('q') | Long("quiet") => options.filter.quiet = true,
            Value(value) => {
                let url = value.string().map_err(|e| e.to_string())?;
                if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                    return Err(format!("{url:?} is not a ws:// URL\n{USAGE}"));
                }
                options.urls.push(url);
            }
            Short(flag) => return Err(format!("unknown option -{flag}\n{USAGE}")),
            Long(flag) => return Err(format!("unknown option --{flag}\n{USAGE}")),
        }
    }
    if options.urls.is_empty() {
        options.urls.push(DEFAULT_URL.into());
    }
    Ok(Command::Watch(options))
}

/// A log level named on the command line.
fn level(name: &str) -> Result<LogLevel, String> {
    match name.to_ascii_lowercase().as_str() {
        "trace" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warning" | "warn" => Ok(LogLevel::Warning),
        "error" => Ok(LogLevel::Error),
        _ => Err(format!(
            "--level: {name:?} is not a level; expected trace, debug, info, warning or error"
        )),
    }
}

/// The next value on the command line, as text; `missing` when there is none.
fn text(parser: &mut lexopt::Parser, missing: &str) -> Result<String, String> {
    let value = parser.value().map_err(|_| format!("{missing}\n{USAGE}"))?;
    value
        .into_string()
        .map_err(|v| format!("{v:?} is not valid text"))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Watch(options)) => options,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(watch(options))
}

/// Connects, follows the stream and reconnects until told to stop.
async fn watch(options: Options) -> ExitCode {
    let (mut socket, mut current) = match connect_first(&options.urls).await {
        Ok(connected) => connected,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let view = View::new(options.exit_after_complete, options.filter);
    let grace = options.exit_after_complete;
    let run = options.backtest_id.clone();
    let mut session = Session::new(view, run, options.token.clone(), grace);
    session
        .view
        .note(&format!("connected to {}", options.urls[current]));
    loop {
        let outcome = session.follow(&mut socket).await;
        let backoff = match after(&options.urls[current], &session, outcome) {
            Next::Exit(code) => {
                let _ = socket.close(None).await;
                session.view.finish();
                return code;
            }
            Next::Reconnect(backoff) => backoff,
        };
        match reconnect(&options.urls, current, &session.view, backoff).await {
            Ok(Some((again, index))) => (socket, current) = (again, index),
            Ok(None) => {
                session.view.finish();
                return ExitCode::SUCCESS;
            }
            Err(reason) => {
                session.view.finish();
                eprintln!("error: {reason}");
                return ExitCode::FAILURE;
            }
        }
        session
            .view
            .notice(&format!("reconnected to {}", options.urls[current]));
    }
}

/// The first of `urls` that accepts a connection, with its index; the last error when
/// none does.
async fn connect_first(urls: &[String]) -> Result<(Socket, usize), String> {
    let mut last = String::new();
    for (index, url) in urls.iter().enumerate() {
        match connect(url).await {
            Ok(socket) => return Ok((socket, index)),
            Err(error) => last = format!("cannot connect to {url}: {}", error.reason),
        }
    }
    Err(last)
}

/// What to do once a connection ended.
enum Next {
    Exit(ExitCode),
    /// Reconnect, first waiting this long.
    Reconnect(Duration),
}

fn after(url: &str, session: &Session, outcome: Result<Outcome, Ended>) -> Next {
    let fail = |message: String| {
        eprintln!("error: {message}");
        Next::Exit(ExitCode::FAILURE)
    };
    match outcome {
        Ok(Outcome::Done) => Next::Exit(ExitCode::SUCCESS),
        Ok(Outcome::Refused(reason)) => fail(format!("{url} refused the subscription: {reason}")),
        Ok(Outcome::UnknownRun(run)) => fail(format!("run {run} is not known to {url}")),
        Err(Ended::Lost(reason)) => {
            let wait = BACKOFF_START.as_secs_f64();
            session.view.notice(&format!(
                "connection lost: {reason}; reconnecting in {wait:.2} s"
            ));
            Next::Reconnect(BACKOFF_START)
        }
        Err(Ended::Closed(code, text)) => match code.map(|c| c.advice()) {
            Some(CloseAdvice::RefreshToken) => fail(format!(
                "{text}: the token expired; start the watcher again with a fresh --token"
            )),
            Some(CloseAdvice::DoNotRetry) => fail(format!("{text}; not retrying")),
            Some(CloseAdvice::BackOff) => {
                let wait = BACKOFF_MAX.as_secs_f64();
                session
                    .view
                    .notice(&format!("{text}; reconnecting in {wait:.2} s"));
                Next::Reconnect(BACKOFF_MAX)
            }
            _ => {
                let wait = BACKOFF_START.as_secs_f64();
                session.view.notice(&format!(
                    "connection lost: {text}; reconnecting in {wait:.2} s"
                ));
                Next::Reconnect(BACKOFF_START)
            }
        },
    }
}

/// Reconnects with backoff, starting with `backoff`, to the servers in turn from the
/// one after `current`; `Ok(None)` when `--exit-after-complete` was satisfied first,
/// `Err` when a server refuses the request itself (trying again would not help).
async fn reconnect(
    urls: &[String],
    current: usize,
    view: &View,
    mut backoff: Duration,
) -> Result<Option<(Socket, usize)>, String> {
    let mut index = current;
    loop {
        let wake = Instant::now() + backoff;
        while Instant::now() < wake {
            if view.done() {
                return Ok(None);
            }
            tokio::time::sleep_until(wake.min(Instant::now() + Duration::from_millis(100))).await;
        }
        for _ in 0..urls.len() {
            index = (index + 1) % urls.len();
            let url = &urls[index];
            match connect(url).await {
                Ok(socket) => return Ok(Some((socket, index))),
                Err(error) if error.fatal => {
                    return Err(format!("{url} refused the connection: {}", error.reason));
                }
                Err(error) => view.notice(&format!("cannot reconnect to {url}: {}", error.reason)),
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        view.notice(&format!("next try in {:.2} s", backoff.as_secs_f64()));
    }
}
