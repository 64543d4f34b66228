//! A terminal watcher: follows the backtests a server streams, with a live progress bar
//! per run, the runs' log lines and a results table when a run ends.
//!
//! ```text
//! cargo run --example watch -- [URL] [--backtest-id ID] [--exit-after-complete SECS]
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

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use backtest_stream::wire::{
    BacktestComplete, BacktestError, BacktestProgress, BacktestStart, Event, LogEntry, LogLevel,
};
use futures::{SinkExt, StreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const USAGE: &str = "usage: watch [URL] [--backtest-id ID] [--exit-after-complete SECS]   (URL default: ws://127.0.0.1:8000/ws)";
const DEFAULT_URL: &str = "ws://127.0.0.1:8000/ws";
const TOPIC: &str = "backtest";
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First and longest wait between two reconnection attempts.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Options {
    url: String,
    backtest_id: Option<String>,
    exit_after_complete: Option<Duration>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        url: DEFAULT_URL.into(),
        backtest_id: None,
        exit_after_complete: None,
    };
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--backtest-id" => {
                let id = args
                    .next()
                    .ok_or(format!("--backtest-id needs a value\n{USAGE}"))?;
                if id.is_empty() {
                    return Err("--backtest-id: the id is empty".into());
                }
                options.backtest_id = Some(id);
            }
            "--exit-after-complete" => {
                let value = args
                    .next()
                    .ok_or(format!("--exit-after-complete needs SECS\n{USAGE}"))?;
                let secs: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or(format!(
                        "--exit-after-complete: {value:?} is not a number of seconds"
                    ))?;
                options.exit_after_complete = Some(Duration::from_secs_f64(secs));
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"));
            }
            _ if url.is_none() => url = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    if let Some(url) = url {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(format!("{url:?} is not a ws:// URL\n{USAGE}"));
        }
        options.url = url;
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
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
    let mut view = View::new(options.exit_after_complete);
    view.note(&format!("connected to {}", options.url));
    loop {
        match follow(&mut socket, &mut view, options.backtest_id.as_deref()).await {
            Ok(Outcome::Done) => {
                let _ = socket.close(None).await;
                view.finish();
                return ExitCode::SUCCESS;
            }
            Ok(Outcome::Refused(reason)) => {
                let _ = socket.close(None).await;
                view.finish();
                eprintln!("error: {} refused the subscription: {reason}", options.url);
                return ExitCode::FAILURE;
            }
            Err(reason) => view.notice(&format!(
                "connection lost: {reason}; reconnecting in {:.2} s",
                BACKOFF_START.as_secs_f64()
            )),
        }
        let mut backoff = BACKOFF_START;
        socket = loop {
            let wake = Instant::now() + backoff;
            while Instant::now() < wake {
                if view.done() {
                    view.finish();
                    return ExitCode::SUCCESS;
                }
                tokio::time::sleep_until(wake.min(Instant::now() + Duration::from_millis(100)))
                    .await;
            }
            match connect(&options.url).await {
                Ok(socket) => break socket,
                Err(reason) => {
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    view.notice(&format!(
                        "cannot reconnect: {reason}; next try in {:.2} s",
                        backoff.as_secs_f64()
                    ));
                }
            }
        };
        view.notice(&format!("reconnected to {}", options.url));
    }
}

/// Opens the WebSocket; the error is a short reason (`connection refused`).
async fn connect(url: &str) -> Result<Socket, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(error)) => Err(describe(&error)),
    }
}

fn describe(error: &tungstenite::Error) -> String {
    use std::io::ErrorKind;
    match error {
        tungstenite::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::TimedOut
            | ErrorKind::AddrNotAvailable
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::UnexpectedEof => io.kind().to_string(),
            _ => io.to_string(),
        },
        tungstenite::Error::Http(response) => {
            format!(
                "the server answered HTTP {} instead of a WebSocket",
                response.status()
            )
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => "connection reset".into(),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "the connection was closed".into()
        }
        other => other.to_string(),
    }
}

/// How a connection that did not drop ended.
enum Outcome {
    /// `--exit-after-complete` is satisfied.
    Done,
    /// The server answered the subscribe with an error: watching cannot go on.
    Refused(String),
}

/// What a frame calls for.
enum Reply {
    Nothing,
    Send(Value),
    Refused(String),
}

/// Subscribes on a fresh connection and handles its frames. `Err` with a reason when the
/// connection ended.
async fn follow(
    socket: &mut Socket,
    view: &mut View,
    run: Option<&str>,
) -> Result<Outcome, String> {
    view.subscribed = false;
    let subscribe = view.cursor.subscribe_message(run);
    send(socket, subscribe).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            message = socket.next() => {
                let text = match message {
                    None => return Err("the server closed the connection".into()),
                    Some(Err(error)) => return Err(describe(&error)),
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        return Err(match frame {
                            Some(frame) if !frame.reason.is_empty() => format!(
                                "the server closed the connection ({} {})",
                                u16::from(frame.code),
                                frame.reason
                            ),
                            Some(frame) => format!(
                                "the server closed the connection ({})",
                                u16::from(frame.code)
                            ),
                            None => "the server closed the connection".into(),
                        });
                    }
                    Some(Ok(_)) => continue, // pings are answered by tungstenite
                };
                match view.frame(&text) {
                    Reply::Nothing => {}
                    Reply::Send(message) => send(socket, message).await?,
                    Reply::Refused(reason) => return Ok(Outcome::Refused(reason)),
                }
            }
            _ = tick.tick() => {
                if view.done() {
                    return Ok(Outcome::Done);
                }
            }
        }
    }
}

async fn send(socket: &mut Socket, message: Value) -> Result<(), String> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .map_err(|error| describe(&error))
}

/// The top-level keys the watcher reads itself; the rest of an event frame is parsed
/// with the crate's [`Event`].
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    topic: Option<String>,
}

#[derive(Deserialize)]
struct Confirmation {
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    recovered: Option<bool>,
}

#[derive(Deserialize)]
struct Notice<T> {
    data: T,
}

#[derive(Deserialize)]
struct Lagged {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    missed: u64,
}

#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    code: String,
    #[serde(default)]
    error: String,
}

/// Where the watcher is in the topic's numbering, for deduplication and resuming.
#[derive(Default)]
struct Cursor {
    /// The server's epoch, from the last confirmation.
    epoch: Option<String>,
    /// The highest seq handled (or covered by a snapshot).
    last_seq: u64,
    /// After a snapshot confirmation: frames up to this seq are the snapshot's.
    snapshot_head: Option<u64>,
    /// Whether the last subscribe asked for a snapshot.
    asked_snapshot: bool,
}

impl Cursor {
    /// The subscribe message for a new connection: resume where we were when we know
    /// the epoch, else start with a snapshot.
    fn subscribe_message(&mut self, run: Option<&str>) -> Value {
        let mut message = json!({ "action": "subscribe", "topic": TOPIC });
        if let Some(run) = run {
            message["backtest_id"] = json!(run);
        }
        match &self.epoch {
            Some(epoch) => {
                message["since"] = json!(self.last_seq);
                message["epoch"] = json!(epoch);
                self.asked_snapshot = false;
            }
            None => {
                message["snapshot"] = json!(true);
                self.asked_snapshot = true;
            }
        }
        message
    }

    /// Whether a frame with this seq is new (and records it).
    fn accept(&mut self, seq: u64) -> bool {
        if let Some(head) = self.snapshot_head {
            if seq <= head {
                // Snapshot frames come run by run, not in seq order: the run state makes
                // them idempotent.
                return true;
            }
            self.snapshot_head = None;
        }
        if seq <= self.last_seq {
            return false;
        }
        self.last_seq = seq;
        true
    }
}

/// One run on screen.
struct Run {
    bar: ProgressBar,
    label: String,
    ended: bool,
    /// Ended by a server restart that forgot it, not by its own terminal event.
    lost: bool,
}

/// What the watcher shows, and the state behind it.
struct View {
    multi: MultiProgress,
    /// Bars are drawn (stdout is a terminal); else lines are printed plainly.
    live: bool,
    colour: bool,
    runs: HashMap<String, Run>,
    cursor: Cursor,
    /// Whether the server confirmed a subscription on this connection.
    subscribed: bool,
    exit_after: Option<Duration>,
    /// When the last run ended (or a new run began).
    last_change: Instant,
}

impl View {
    fn new(exit_after: Option<Duration>) -> Self {
        let terminal = std::io::stdout().is_terminal();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let live = terminal && !multi.is_hidden();
        Self {
            multi,
            live,
            colour: terminal,
            runs: HashMap::new(),
            cursor: Cursor::default(),
            subscribed: false,
            exit_after,
            last_change: Instant::now(),
        }
    }

    /// Prints a line above the bars.
    fn line(&self, text: &str) {
        if self.live {
            let _ = self.multi.println(text);
        } else {
            println!("{text}");
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn note(&self, text: &str) {
        self.line(&self.paint("2", &format!("· {text}")));
    }

    fn notice(&self, text: &str) {
        self.line(&self.paint("33", &format!("! {text}")));
    }

    /// Whether `--exit-after-complete` is satisfied.
    fn done(&self) -> bool {
        self.exit_after.is_some_and(|after| {
            !self.runs.is_empty()
                && self.runs.values().all(|run| run.ended)
                && self.last_change.elapsed() >= after
        })
    }

    /// Leaves the finished bars on screen, with the cursor below them.
    fn finish(&self) {
        for run in self.runs.values() {
            if !run.bar.is_finished() {
                run.bar.abandon();
            }
        }
    }

    /// Handles one text frame; returns a message to send when the frame calls for one.
    fn frame(&mut self, text: &str) -> Reply {
        let header: Header = match serde_json::from_str(text) {
            Ok(header) => header,
            Err(error) => {
                self.notice(&format!("unreadable frame ({error}): {text}"));
                return Reply::Nothing;
            }
        };
        match header.kind.as_str() {
            "subscription_confirmed" => {
                self.subscribed = true;
                return self.confirmed(text).map_or(Reply::Nothing, Reply::Send);
            }
            "lagged" => match serde_json::from_str::<Notice<Lagged>>(text) {
                Ok(Notice { data }) => self.notice(&format!(
                    "missed {} event(s) on topic {:?}: the display may skip ahead",
                    data.missed, data.topic
                )),
                Err(error) => self.notice(&format!("unreadable lagged notice ({error})")),
            },
            "error" => {
                let reason = match serde_json::from_str::<Notice<ErrorReply>>(text) {
                    Ok(Notice { data }) => format!("{} ({})", data.error, data.code),
                    Err(_) => text.to_string(),
                };
                // Before any confirmation the error answers our subscribe: nothing will
                // come on this connection.
                if !self.subscribed {
                    return Reply::Refused(reason);
                }
                self.line(&self.paint("31", &format!("server error: {reason}")));
            }
            "pong" | "unsubscribed" => {}
            _ => {
                if header.topic.as_deref().is_some_and(|t| t != TOPIC) {
                    return Reply::Nothing;
                }
                if let Some(seq) = header.seq {
                    if !self.cursor.accept(seq) {
                        return Reply::Nothing;
                    }
                }
                match Event::from_json(text) {
                    Ok(event) => self.event(event),
                    Err(error) => {
                        self.notice(&format!("unreadable {} frame: {error}", header.kind))
                    }
                }
            }
        }
        Reply::Nothing
    }

    fn confirmed(&mut self, text: &str) -> Option<Value> {
        let confirmation: Confirmation = match serde_json::from_str(text) {
            Ok(c) => c,
            Err(error) => {
                self.notice(&format!("unreadable confirmation ({error})"));
                return None;
            }
        };
        let head = confirmation.seq.unwrap_or(0);
        let new_epoch = confirmation.epoch != self.cursor.epoch;
        self.cursor.epoch = confirmation.epoch;
        if self.cursor.asked_snapshot {
            // The snapshot covers everything up to the head.
            self.cursor.snapshot_head = Some(head);
            self.cursor.last_seq = if new_epoch {
                head
            } else {
                self.cursor.last_seq.max(head)
            };
            self.cursor.asked_snapshot = false;
            return None;
        }
        if confirmation.recovered == Some(false) {
            self.notice(if new_epoch {
                "the server restarted: loading its current state"
            } else {
                "the server no longer holds every missed event: loading its current state"
            });
            // Live frames after this head are new; the snapshot asked for next fills in
            // the state of the runs.
            if new_epoch {
                self.cursor.last_seq = head;
                self.forget_unfinished_runs();
            }
            self.cursor.snapshot_head = None;
            self.cursor.asked_snapshot = true;
            let mut message = json!({ "action": "subscribe", "topic": TOPIC, "snapshot": true });
            if let Some(run) = text_backtest_id(text) {
                message["backtest_id"] = json!(run);
            }
            return Some(message);
        }
        None
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::BacktestStart(start) => self.start(start),
            Event::BacktestProgress(progress) => self.progress(progress),
            Event::LogEntry(entry) => self.log(entry),
            Event::BacktestComplete(complete) => self.complete(complete),
            Event::BacktestError(error) => self.error(error),
        }
    }

    /// The run's entry, made on first sight (a run may be first seen by its progress).
    fn run(&mut self, id: &str, total: u64) -> &mut Run {
        if !self.runs.contains_key(id) {
            let bar = self.multi.add(ProgressBar::new(total.max(1)));
            if !self.live {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {percent:>3}% {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(short(id).to_string());
            self.last_change = Instant::now();
            self.runs.insert(
                id.to_string(),
                Run {
                    bar,
                    label: String::new(),
                    ended: false,
                    lost: false,
                },
            );
        }
        self.runs.get_mut(id).expect("inserted above")
    }

    /// After a server restart, the runs that had not ended will never end: their bars
    /// are closed as lost.
    fn forget_unfinished_runs(&mut self) {
        let mut lost = Vec::new();
        for (id, run) in &mut self.runs {
            if !run.ended {
                run.ended = true;
                run.lost = true;
                run.bar.abandon_with_message("lost: the server restarted");
                lost.push(id.clone());
            }
        }
        if !lost.is_empty() {
            lost.sort();
            self.last_change = Instant::now();
            self.notice(&format!(
                "lost track of {} unfinished run(s): {}",
                lost.len(),
                lost.join(", ")
            ));
        }
    }

    fn start(&mut self, start: BacktestStart) {
        let id = start.backtest_id.to_string();
        // A run id reused after a restart is a new run.
        if self.runs.get(&id).is_some_and(|run| run.lost) {
            self.runs.remove(&id);
        }
        let known = self.runs.contains_key(&id);
        let label = format!(
            "{} {} {} {} → {}",
            start.variant, start.symbol, start.timeframe, start.start_date, start.end_date
        );
        let run = self.run(&id, 1);
        if known && !run.label.is_empty() {
            return;
        }
        run.label = label.clone();
        self.line(&format!(
            "{} {id}  {label}",
            self.paint("1;36", "▶ started")
        ));
    }

    fn progress(&mut self, p: BacktestProgress) {
        let id = p.backtest_id.to_string();
        let run = self.run(&id, p.total_bars);
        if run.ended {
            return;
        }
        run.bar.set_length(p.total_bars.max(1));
        run.bar.set_position(p.bars_processed);
        run.bar.set_message(format!(
            "{} · {} trades · P&L {}",
            p.current_date,
            p.trades_count,
            signed(p.current_pnl)
        ));
    }

    fn log(&mut self, entry: LogEntry) {
        let (code, name) = match entry.level {
            LogLevel::Error => ("31", "ERROR"),
            LogLevel::Warning => ("33", "WARN "),
            LogLevel::Info => ("32", "INFO "),
            LogLevel::Debug => ("34", "DEBUG"),
            LogLevel::Trace => ("2", "TRACE"),
        };
        let stamp = entry.timestamp.to_string();
        let time = stamp.get(11..23).unwrap_or(&stamp);
        let run = entry
            .backtest_id
            .as_ref()
            .map(|id| format!(" [{}]", short(id.as_str())))
            .unwrap_or_default();
        self.line(&format!(
            "{} {}{run} {}",
            self.paint("2", time),
            self.paint(code, name),
            entry.message
        ));
    }

    fn complete(&mut self, c: BacktestComplete) {
        let id = c.backtest_id.to_string();
        let run = self.run(&id, 1);
        if run.ended {
            return;
        }
        run.ended = true;
        let length = run.bar.length().unwrap_or(1);
        run.bar.set_position(length);
        run.bar.finish_with_message(format!(
            "done · final balance {}",
            number(c.final_balance, 2)
        ));
        let label = run.label.clone();
        self.last_change = Instant::now();
        let rows = [
            ("final balance", number(c.final_balance, 2)),
            ("return", percent(c.return_pct)),
            ("trades", c.total_trades.to_string()),
            ("win rate", percent(c.win_rate)),
            ("Sharpe", number(c.sharpe_ratio, 2)),
            ("drawdown", percent(c.drawdown)),
            ("duration", seconds(c.duration_seconds)),
        ];
        let mut table = format!("{} {id}  {label}", self.paint("1;32", "✔ complete"));
        for (name, value) in rows {
            table.push_str(&format!("\n    {name:<14} {value:>14}"));
        }
        self.line(&table);
    }

    fn error(&mut self, e: BacktestError) {
        let id = e.backtest_id.to_string();
        let run = self.run(&id, 1);
        if run.ended {
            return;
        }
        run.ended = true;
        run.bar.abandon_with_message(format!("FAILED: {}", e.error));
        self.last_change = Instant::now();
        let mut text = format!(
            "{} {id}: {}",
            self.paint("1;31", "✘ backtest_error"),
            e.error
        );
        if !e.error_details.is_empty() {
            text.push_str(&format!(
                "\n    {}",
                e.error_details.replace('\n', "\n    ")
            ));
        }
        self.line(&text);
    }
}

/// The `backtest_id` a confirmation names, if any.
fn text_backtest_id(text: &str) -> Option<String> {
    serde_json::from_str::<Value>(text)
        .ok()?
        .get("backtest_id")?
        .as_str()
        .map(str::to_string)
}

/// A short form of a run id for the bar's prefix (UUIDs are long).
fn short(id: &str) -> &str {
    match id.char_indices().nth(8) {
        Some((end, _)) if id.len() > 12 => &id[..end],
        _ => id,
    }
}

const MISSING: &str = "—";

fn number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        MISSING.into()
    }
}

fn signed(value: f64) -> String {
    if value.is_finite() {
        format!("{value:+.2}")
    } else {
        MISSING.into()
    }
}

fn percent(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2} %")
    } else {
        MISSING.into()
    }
}

fn seconds(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3} s")
    } else {
        MISSING.into()
    }
}
