//! A terminal watcher: follows the backtests a server streams, with a live progress bar
//! per run, the runs' log lines and a results table when a run ends.
//!
//! ```text
//! cargo run --release --bin watch -- [URL] [--backtest-id ID] [--exit-after-complete SECS]
//! ```
//!
//! `URL` defaults to `ws://127.0.0.1:8000/ws`. The watcher subscribes to topic
//! `backtest` (one run only with `--backtest-id`) asking for a snapshot, so a run that is
//! already going shows at once. When the connection drops it reconnects with backoff and
//! resumes where it was (`since` + `epoch`); when the server cannot resume (it restarted,
//! or its history no longer reaches back), it loads the state again with a snapshot.
//! Frames are deduplicated by `seq`. `--exit-after-complete SECS` exits with status 0 once
//! every run seen has ended and SECS seconds passed without a new one.
//!
//! A `lagged` notice is shown with the number of events missed. After a server restart
//! (a new epoch) the runs the new server does not know are closed as lost.
//!
//! Exit status: 0 when `--exit-after-complete` is satisfied; 1 with one line on stderr
//! when the server cannot be reached at start (`error: cannot connect to ws://...:
//! connection refused`) or refuses the subscription; 2 for bad arguments. Output goes
//! to stdout: live bars and coloured levels on a terminal, plain lines otherwise.

#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

mod session;
mod view;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use backtest_stream::wire::BacktestId;
use tokio::time::Instant;

use crate::session::{Outcome, Session, Socket, connect};
use crate::view::View;

const USAGE: &str = "usage: watch [URL] [--backtest-id ID] [--exit-after-complete SECS]   (URL default: ws://127.0.0.1:8000/ws)";
const DEFAULT_URL: &str = "ws://127.0.0.1:8000/ws";
/// First and longest wait between two reconnection attempts.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Options {
    url: String,
    backtest_id: Option<BacktestId>,
    exit_after_complete: Option<Duration>,
}

/// What the command line asks for.
enum Command {
    Watch(Options),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = Options {
        url: DEFAULT_URL.into(),
        backtest_id: None,
        exit_after_complete: None,
    };
    let mut url = None;
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
            Value(value) if url.is_none() => url = Some(value.string().map_err(|e| e.to_string())?),
            Value(value) => return Err(format!("unexpected argument {value:?}\n{USAGE}")),
            Short(flag) => return Err(format!("unknown option -{flag}\n{USAGE}")),
            Long(flag) => return Err(format!("unknown option --{flag}\n{USAGE}")),
        }
    }
    if let Some(url) = url {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(format!("{url:?} is not a ws:// URL\n{USAGE}"));
        }
        options.url = url;
    }
    Ok(Command::Watch(options))
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
    let mut socket = match connect(&options.url).await {
        Ok(socket) => socket,
        Err(reason) => {
            eprintln!("error: cannot connect to {}: {reason}", options.url);
            return ExitCode::FAILURE;
        }
    };
    let mut session = Session::new(View::new(options.exit_after_complete), options.backtest_id);
    session.view.note(&format!("connected to {}", options.url));
    loop {
        match session.follow(&mut socket).await {
            Ok(Outcome::Done) => {
                let _ = socket.close(None).await;
                session.view.finish();
                return ExitCode::SUCCESS;
            }
            Ok(Outcome::Refused(reason)) => {
                let _ = socket.close(None).await;
                session.view.finish();
                eprintln!("error: {} refused the subscription: {reason}", options.url);
                return ExitCode::FAILURE;
            }
            Err(reason) => session.view.notice(&format!(
                "connection lost: {reason}; reconnecting in {:.2} s",
                BACKOFF_START.as_secs_f64()
            )),
        }
        match reconnect(&options.url, &session.view).await {
            Some(again) => socket = again,
            None => {
                session.view.finish();
                return ExitCode::SUCCESS;
            }
        }
        session
            .view
            .notice(&format!("reconnected to {}", options.url));
    }
}

/// Reconnects with backoff; `None` when `--exit-after-complete` was satisfied first.
async fn reconnect(url: &str, view: &View) -> Option<Socket> {
    let mut backoff = BACKOFF_START;
    loop {
        let wake = Instant::now() + backoff;
        while Instant::now() < wake {
            if view.done() {
                return None;
            }
            tokio::time::sleep_until(wake.min(Instant::now() + Duration::from_millis(100))).await;
        }
        match connect(url).await {
            Ok(socket) => return Some(socket),
            Err(reason) => {
                backoff = (backoff * 2).min(BACKOFF_MAX);
                view.notice(&format!(
                    "cannot reconnect: {reason}; next try in {:.2} s",
                    backoff.as_secs_f64()
                ));
            }
        }
    }
}
