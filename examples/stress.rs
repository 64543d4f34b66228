//! The no-silent-loss stress test: R trade-heavy runs of the reference engine at full
//! speed (their fills logged through the log bridge), streamed by the crate's server to C
//! subscribed clients, of which some read slowly and some never read. It checks, for
//! every client that reads:
//!
//! - every run's terminal event (`backtest_complete` or `backtest_error`) arrives;
//! - frames come in `seq` order, and every gap in the seqs was announced by a `lagged`
//!   notice before the next event (no silent loss);
//!
//! and it reports the server's counters, the announced losses and the peak memory of the
//! process (server and clients together), then exits 1 when a check failed.
//!
//! ```text
//! cargo run --release --example stress -- [--clients 1000] [--slow 50] [--deaf 20]
//!     [--runs 8] [--bars 1000000] [--queue 1024]
//! ```
//!
//! The defaults are the full size; `tests/server_stress.rs` runs a small one in CI.

use std::collections::HashSet;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backtest_stream::engine::BacktestRunner;
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::reference::{EngineConfig, ReferenceEngine, SmaCrossover, SyntheticBars};
use backtest_stream::server::{Server, ServerConfig, ServerStats};
use backtest_stream::sink::SharedSink;
use backtest_stream::wire::{BacktestId, Topic};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str =
    "usage: stress [--clients N] [--slow N] [--deaf N] [--runs N] [--bars N] [--queue N]";

#[derive(Debug, Clone, Copy)]
struct Options {
    clients: usize,
    slow: usize,
    deaf: usize,
    runs: usize,
    bars: usize,
    queue: usize,
    /// The server's write-stall timeout: a client that reads nothing for this long is
    /// dropped (a slow reader's kernel buffers, megabytes on loopback, take seconds to
    /// drain before its socket takes more).
    stall_secs: usize,
    /// The server's ping interval and timeout.
    ping_secs: usize,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Option<Options>, String> {
    use lexopt::prelude::*;

    let mut options = Options {
        clients: 1_000,
        slow: 50,
        deaf: 20,
        runs: 8,
        bars: 1_000_000,
        queue: 1_024,
        stall_secs: 60,
        ping_secs: 20,
    };
    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("stress")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n{USAGE}"))? {
        let (name, slot) = match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("clients") => ("--clients", &mut options.clients),
            Long("slow") => ("--slow", &mut options.slow),
            Long("deaf") => ("--deaf", &mut options.deaf),
            Long("runs") => ("--runs", &mut options.runs),
            Long("bars") => ("--bars", &mut options.bars),
            Long("queue") => ("--queue", &mut options.queue),
            Long("stall-secs") => ("--stall-secs", &mut options.stall_secs),
            Long("ping-secs") => ("--ping-secs", &mut options.ping_secs),
            other => return Err(format!("{}\n{USAGE}", other.unexpected())),
        };
        let value = parser
            .value()
            .map_err(|_| format!("{name} needs a value\n{USAGE}"))?;
        *slot = value
            .to_str()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name}: {value:?} is not a count"))?;
    }
    if options.slow + options.deaf > options.clients {
        return Err(format!("--slow + --deaf is more than --clients\n{USAGE}"));
    }
    Ok(Some(options))
}

/// What a reading client checks of each frame: its kind, its seq, what a `lagged`
/// notice says was missed, and the run of a terminal event.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    missed: Option<u64>,
    #[serde(default)]
    backtest_id: Option<String>,
}

/// What one reading client saw.
#[derive(Debug, Default, Clone)]
struct Report {
    frames: u64,
    announced: u64,
    /// Seqs skipped without a `lagged` notice before them.
    silent_gaps: u64,
    out_of_order: u64,
    terminal: usize,
    closed_early: Option<String>,
}

/// Reads until every run's terminal event arrived (or the connection ends).
async fn read_client(url: String, runs: usize, pause: Option<Duration>) -> Report {
    let mut report = Report::default();
    let (mut ws, _) = match tokio_tungstenite::connect_async(&url).await {
        Ok(connected) => connected,
        Err(error) => {
            report.closed_early = Some(error.to_string());
            return report;
        }
    };
    let subscribe = r#"{"action":"subscribe","topic":"backtest"}"#;
    if let Err(error) = ws.send(Message::text(subscribe)).await {
        report.closed_early = Some(error.to_string());
        return report;
    }
    let (mut last_seq, mut pending, mut terminal) = (None::<u64>, 0u64, HashSet::new());
    while terminal.len() < runs {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                report.closed_early = Some(format!("closed: {frame:?}"));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                report.closed_early = Some(error.to_string());
                break;
            }
            None => {
                report.closed_early = Some("ended".into());
                break;
            }
        };
        let Ok(frame) = serde_json::from_str::<Frame<'_>>(&text) else {
            report.out_of_order += 1;
            continue;
        };
        if frame.kind == "lagged" {
            let missed = frame.data.and_then(|d| d.missed).unwrap_or(0);
            pending += missed;
            report.announced += missed;
            continue;
        }
        let Some(seq) = frame.seq else { continue };
        report.frames += 1;
        if let Some(last) = last_seq {
            if seq <= last {
                report.out_of_order += 1;
            }
            let gap = seq.saturating_sub(last + 1);
            // Refused events (never numbered) are announced too: a gap must be covered.
            if gap > pending {
                report.silent_gaps += gap - pending;
            }
        }
        pending = 0;
        last_seq = Some(seq);
        if matches!(frame.kind, "backtest_complete" | "backtest_error") {
            if let Some(id) = frame.data.and_then(|d| d.backtest_id) {
                terminal.insert(id);
            }
        }
        if let Some(pause) = pause.filter(|_| report.frames % 8 == 0) {
            tokio::time::sleep(pause).await;
        }
    }
    report.terminal = terminal.len();
    let _ = ws.close(None).await;
    report
}

/// A connection kept open and never read.
type Deaf = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A client that subscribes and never reads, with a small receive buffer.
async fn deaf_client(addr: std::net::SocketAddr) -> Option<Deaf> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.set_recv_buffer_size(4096).ok()?;
    let stream = socket.connect(addr).await.ok()?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .ok()?;
    ws.send(Message::text(
        r#"{"action":"subscribe","topic":"backtest"}"#,
    ))
    .await
    .ok()?;
    Some(ws)
}

/// Runs one trade-heavy backtest (SMA 2/3 crossover: a trade every few bars) to the end.
fn run_backtest(sink: SharedSink, run: usize, bars: usize) {
    let data = SyntheticBars {
        count: bars,
        seed: 7 + run as u64,
        ..SyntheticBars::default()
    }
    .generate()
    .expect("synthetic bars");
    let Ok(strategy) = SmaCrossover::new(2, 3, 1.0) else {
        return;
    };
    let id = BacktestId::new(format!("stress-{run}")).unwrap_or_else(|_| BacktestId::random());
    let config = EngineConfig {
        max_result_trades: Some(500),
        ..EngineConfig::default()
    };
    let _ = BacktestRunner::streaming(Some(sink))
        .with_id(id)
        .run(&mut ReferenceEngine::new(&data, strategy, config));
}

/// Everything measured, for the summary.
struct Outcome {
    options: Options,
    reports: Vec<Report>,
    stats: ServerStats,
    seconds: f64,
    peak_rss_kib: u64,
}

async fn stress(options: Options) -> Result<Outcome, Box<dyn std::error::Error>> {
    let config = ServerConfig::default()
        .bind(([127, 0, 0, 1], 0))
        .queue_capacity(options.queue)
        .max_connections(options.clients + 16)
        .write_stall_timeout(Duration::from_secs(options.stall_secs as u64))
        .ping_interval(Duration::from_secs(options.ping_secs as u64))
        .ping_timeout(Duration::from_secs(options.ping_secs as u64));
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let hub = server.hub().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let sink: SharedSink = Arc::new(hub.sink());
    LogBridge::builder()
        .level(log::LevelFilter::Info)
        .default_shared_sink(Arc::clone(&sink), Topic::LOGS)
        .build()
        .try_init()?;

    let url = format!("ws://{addr}/ws");
    let readers = options.clients - options.deaf;
    let mut tasks = Vec::with_capacity(readers);
    for i in 0..readers {
        // A slow reader sleeps 1 ms every 8 frames: about 8,000 frames a second at most.
        let pause = (i < options.slow).then_some(Duration::from_millis(1));
        tasks.push(tokio::spawn(read_client(url.clone(), options.runs, pause)));
    }
    let mut deaf = Vec::new();
    for _ in 0..options.deaf {
        deaf.extend(deaf_client(addr).await);
    }
    while hub
        .stats()
        .subscriptions
        .get("backtest")
        .copied()
        .unwrap_or(0)
        < options.clients
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let runs: Vec<_> = (0..options.runs)
        .map(|run| {
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || run_backtest(sink, run, options.bars))
        })
        .collect();
    let runs = tokio::task::spawn_blocking(move || {
        runs.into_iter()
            .map(std::thread::JoinHandle::join)
            .filter(Result::is_err)
            .count()
            == 0
    });
    if !runs.await? {
        return Err("a run's thread panicked".into());
    }
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        reports.push(task.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(deaf);
    let stats = hub.stats();
    let _ = stop.send(());
    serving.await??;
    Ok(Outcome {
        options,
        reports,
        stats,
        seconds,
        peak_rss_kib: peak_rss_kib(),
    })
}

/// The peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Prints the summary as one JSON line; whether every check passed.
fn summarize(outcome: &Outcome) -> bool {
    let o = &outcome.options;
    let reports = &outcome.reports;
    let incomplete = reports.iter().filter(|r| r.terminal < o.runs).count();
    let silent: u64 = reports.iter().map(|r| r.silent_gaps).sum();
    let disorder: u64 = reports.iter().map(|r| r.out_of_order).sum();
    let closed: Vec<&str> = reports
        .iter()
        .filter_map(|r| r.closed_early.as_deref())
        .take(3)
        .collect();
    let summary = serde_json::json!({
        "clients": o.clients, "slow": o.slow, "deaf": o.deaf, "runs": o.runs, "bars": o.bars,
        "queue": o.queue, "seconds": outcome.seconds,
        "events_published": outcome.stats.events_published,
        "frames_delivered": reports.iter().map(|r| r.frames).sum::<u64>(),
        "missed_announced": reports.iter().map(|r| r.announced).sum::<u64>(),
        "publish_queue_full": outcome.stats.dropped.publish_queue_full,
        "terminal_refused": outcome.stats.dropped.terminal_refused,
        "lagged": outcome.stats.dropped.lagged,
        "dropped_write_stall": outcome.stats.connection_events.dropped_write_stall,
        "dropped_slow": outcome.stats.connection_events.dropped_slow,
        "dropped_dead_peer": outcome.stats.connection_events.dropped_dead_peer,
        "closed_message_too_big": outcome.stats.connection_events.closed_message_too_big,
        "readers_missing_a_terminal_event": incomplete,
        "silent_gaps": silent,
        "out_of_order": disorder,
        "closed_early": closed,
        "peak_rss_kib": outcome.peak_rss_kib,
    });
    println!("{summary}");
    incomplete == 0 && silent == 0 && disorder == 0 && outcome.stats.dropped.terminal_refused == 0
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(stress(options)) {
        Ok(outcome) if summarize(&outcome) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
