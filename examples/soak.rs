//! A soak of the crate's server: for a while, runs start and end on several publisher
//! threads (the reference engine, paced or at full speed, its fills logged through the log
//! bridge), and clients join, read (some slowly), vanish, and come back resuming with
//! `since` + `epoch`. It prints the process's memory every ten seconds and, at the end,
//! one JSON line with what was delivered and announced lost, and exits 1 when a promise
//! was broken:
//!
//! - every frame a client reads comes in seq order, and every gap was announced by
//!   `lagged` first;
//! - when the publishers stop, every client still connected has every terminal event of
//!   the runs that ended since its last (re)subscription;
//! - once every client has left, the server holds no connection and no subscription.
//!
//! ```text
//! cargo run --release --example soak -- [--seconds 600] [--clients 200] [--publishers 3]
//! ```
//!
//! `tests/soak.rs` runs one minute of it in CI.

use std::collections::HashSet;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backtest_stream::engine::BacktestRunner;
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::reference::{ReferenceEngine, SmaCrossover, SyntheticBars};
use backtest_stream::server::{Server, ServerConfig};
use backtest_stream::sink::{ProgressSink, SharedSink};
use backtest_stream::wire::{BacktestId, ClientMessage, ServerMessage, Subscribe, Topic};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str = "usage: soak [--seconds N] [--clients N] [--publishers N]";

#[derive(Debug, Clone, Copy)]
struct Options {
    seconds: u64,
    clients: u64,
    publishers: u64,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Option<Options>, String> {
    use lexopt::prelude::*;

    let mut options = Options {
        seconds: 600,
        clients: 200,
        publishers: 3,
    };
    let mut parser = lexopt::Parser::from_iter(std::iter::once(OsString::from("soak")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n{USAGE}"))? {
        let (name, slot) = match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("seconds") => ("--seconds", &mut options.seconds),
            Long("clients") => ("--clients", &mut options.clients),
            Long("publishers") => ("--publishers", &mut options.publishers),
            other => return Err(format!("{}\n{USAGE}", other.unexpected())),
        };
        let value = parser
            .value()
            .map_err(|_| format!("{name} needs a value\n{USAGE}"))?;
        *slot = value
            .to_str()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}: {value:?} is not a positive count"))?;
    }
    Ok(Some(options))
}

/// What everybody shares: the runs that ended and the seq of their terminal event (as
/// an observer that reads fast saw them), the totals, and the switch.
#[derive(Default)]
struct Board {
    ended: Mutex<Vec<(String, u64)>>,
    runs_ended: AtomicU64,
    publishing: AtomicBool,
    /// Every publisher has ended its last run (its terminal event is published).
    published: AtomicBool,
    frames: AtomicU64,
    announced: AtomicU64,
    violations: Mutex<Vec<String>>,
    vanished: AtomicU64,
    resumed: AtomicU64,
}

impl Board {
    fn violation(&self, text: String) {
        let mut violations = self.violations.lock().unwrap_or_else(|p| p.into_inner());
        if violations.len() < 20 {
            violations.push(text);
        }
    }
}

/// Starts runs one after another until the soak's end: short and long, paced and at
/// full speed, trade-heavy or not.
fn publish_runs(sink: SharedSink, board: Arc<Board>, publisher: u64) {
    let mut n = 0u64;
    while board.publishing.load(Ordering::Acquire) {
        n += 1;
        let seed = publisher * 1_000 + n;
        let bars = SyntheticBars {
            count: 2_000 + (seed as usize % 5) * 4_000,
            seed,
            ..SyntheticBars::default()
        };
        let Ok(data) = bars.generate() else { return };
        let (fast, slow) = if seed % 3 == 0 { (2, 3) } else { (10, 30) };
        let Ok(strategy) = SmaCrossover::new(fast, slow, 1.0) else {
            return;
        };
        let id = format!("soak-{publisher}-{n}");
        let runner = BacktestRunner::streaming(Some(Arc::clone(&sink)))
            .with_id(BacktestId::new(&id).unwrap_or_else(|_| BacktestId::random()));
        let mut engine = ReferenceEngine::new(&data, strategy, Default::default());
        let _ = runner.run(&mut engine);
        board.runs_ended.fetch_add(1, Ordering::Relaxed);
        // Wait for the hub to take the run: runs start as fast as it keeps up.
        let _ = sink.flush();
        if seed % 2 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One client's life: connect, subscribe (resuming after the first time), read for a
/// while (slowly, for some), vanish, again; until the publishers stop, then read to the
/// end and check its terminal events.
async fn client_life(url: String, board: Arc<Board>, client: u64) -> Reader {
    let slow = client % 10 == 0;
    let mut cursor: Option<(String, u64)> = None;
    let mut round = 0u64;
    loop {
        round += 1;
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut subscribe = Subscribe::to(Topic::BACKTEST);
        if let Some((epoch, seq)) = &cursor {
            subscribe = subscribe.since(*seq, epoch.clone());
            board.resumed.fetch_add(1, Ordering::Relaxed);
        }
        let text = ClientMessage::from(subscribe).to_json();
        if ws.send(Message::text(text)).await.is_err() {
            continue;
        }
        let lifetime = Duration::from_millis(500 + (client * 7919 + round * 104_729) % 8_000);
        let mut reader = Reader::new(slow);
        let outcome = reader.read(&mut ws, &board, lifetime).await;
        cursor = reader.cursor();
        if outcome == Outcome::End {
            let _ = ws.close(None).await;
            return reader;
        }
        board.vanished.fetch_add(1, Ordering::Relaxed);
        drop(ws); // vanish without a close frame
    }
}

#[derive(PartialEq, Eq)]
enum Outcome {
    /// The life span is over: vanish.
    Vanish,
    /// The publishers stopped and nothing more came: the soak is over.
    End,
}

/// One connection's reading, with the checks of each frame.
struct Reader {
    slow: bool,
    epoch: Option<String>,
    last: Option<u64>,
    announced: u64,
    /// The topic's head when this connection's subscription was confirmed.
    head: Option<u64>,
    terminals: HashSet<String>,
    frames: u64,
}

impl Reader {
    fn new(slow: bool) -> Self {
        Self {
            slow,
            epoch: None,
            last: None,
            announced: 0,
            head: None,
            terminals: HashSet::new(),
            frames: 0,
        }
    }

    fn cursor(&self) -> Option<(String, u64)> {
        Some((self.epoch.clone()?, self.last?))
    }

    async fn read<S>(&mut self, ws: &mut S, board: &Board, lifetime: Duration) -> Outcome
    where
        S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        let until = Instant::now() + lifetime;
        loop {
            let publishing = board.publishing.load(Ordering::Acquire);
            if publishing && Instant::now() >= until {
                return Outcome::Vanish;
            }
            let wait = if publishing {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(3)
            };
            let text = match tokio::time::timeout(wait, ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return Outcome::Vanish,
                // Until every publisher has ended its last run, silence is no end (on a
                // loaded machine a last run may take longer than the wait).
                Err(_) if publishing || !board.published.load(Ordering::Acquire) => continue,
                Err(_) => return Outcome::End,
            };
            self.on_text(&text, board);
            self.frames += 1;
            if self.slow && self.frames % 4 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    fn on_text(&mut self, text: &str, board: &Board) {
        match ServerMessage::from_json(text) {
            Ok(ServerMessage::SubscriptionConfirmed(c)) => {
                self.epoch = c.epoch;
                self.head = c.seq;
                if c.recovered == Some(false) {
                    self.last = None; // another epoch, or history gone: start over
                }
            }
            Ok(ServerMessage::Lagged { data }) => {
                self.announced += data.missed;
                board.announced.fetch_add(data.missed, Ordering::Relaxed);
            }
            Ok(ServerMessage::Event(frame)) => {
                board.frames.fetch_add(1, Ordering::Relaxed);
                let seq = frame.seq;
                if let Some(last) = self.last {
                    if seq <= last {
                        board.violation(format!("seq {seq} after {last}"));
                    } else if seq - last - 1 > self.announced {
                        board.violation(format!(
                            "{} silent after {last}",
                            seq - last - 1 - self.announced
                        ));
                    }
                }
                self.last = Some(seq);
                self.announced = 0;
                if frame.envelope.event.is_terminal() {
                    if let Some(id) = frame.envelope.event.backtest_id() {
                        self.terminals.insert(id.to_string());
                    }
                }
            }
            Ok(_) => {}
            Err(error) => board.violation(format!("unreadable frame: {error}")),
        }
    }

    /// Every run whose terminal event was numbered after this connection subscribed
    /// reached it.
    fn check_terminals(&self, board: &Board, client: u64) {
        let Some(head) = self.head else { return };
        let ended = board.ended.lock().unwrap_or_else(|p| p.into_inner());
        for (id, seq) in ended.iter().filter(|(_, seq)| *seq > head) {
            if !self.terminals.contains(id) {
                board.violation(format!(
                    "client {client}: no terminal event of {id} (seq {seq}, subscribed at {head}, last read {:?}, frames {})", self.last, self.frames
                ));
            }
        }
    }
}

/// Follows the topic, reading fast, and writes down the seq of every terminal event.
async fn observe(url: String, board: Arc<Board>) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        board.violation("the observer could not connect".into());
        return;
    };
    let subscribe = ClientMessage::from(Subscribe::to(Topic::BACKTEST)).to_json();
    if ws.send(Message::text(subscribe)).await.is_err() {
        return;
    }
    loop {
        let wait = if board.publishing.load(Ordering::Acquire) {
            200
        } else {
            3_000
        };
        let text = match tokio::time::timeout(Duration::from_millis(wait), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            Ok(_) => {
                board.violation("the observer lost its connection".into());
                return;
            }
            Err(_) if board.publishing.load(Ordering::Acquire) => continue,
            Err(_) if !board.published.load(Ordering::Acquire) => continue,
            Err(_) => return,
        };
        if let Ok(ServerMessage::Event(frame)) = ServerMessage::from_json(&text) {
            if frame.envelope.event.is_terminal() {
                if let Some(id) = frame.envelope.event.backtest_id() {
                    let mut ended = board.ended.lock().unwrap_or_else(|p| p.into_inner());
                    ended.push((id.to_string(), frame.seq));
                }
            }
        }
    }
}

/// The process's resident memory now, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The crate's server on a free port, with the log bridge streaming into it; its URL,
/// hub, sink, and the switch that stops it.
struct Serving {
    url: String,
    hub: backtest_stream::server::Hub,
    sink: SharedSink,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), backtest_stream::server::ServerError>>,
}

async fn serve() -> Result<Serving, Box<dyn std::error::Error>> {
    let config = ServerConfig::default()
        .bind(([127, 0, 0, 1], 0))
        .queue_capacity(512)
        .history_size(4_096);
    let server = Server::bind(config).await?;
    let url = format!("ws://{}/ws", server.local_addr());
    let hub = server.hub().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let sink: SharedSink = Arc::new(hub.sink());
    LogBridge::builder()
        .level(log::LevelFilter::Info)
        .default_shared_sink(Arc::clone(&sink), Topic::LOGS)
        .build()
        .try_init()?;
    Ok(Serving {
        url,
        hub,
        sink,
        stop,
        task,
    })
}

async fn soak(options: Options) -> Result<bool, Box<dyn std::error::Error>> {
    let Serving {
        url,
        hub,
        sink,
        stop,
        task,
    } = serve().await?;
    let board = Arc::new(Board::default());
    board.publishing.store(true, Ordering::Release);
    let observer = tokio::spawn(observe(url.clone(), Arc::clone(&board)));
    while hub.stats().connections == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let clients: Vec<_> = (0..options.clients)
        .map(|client| tokio::spawn(client_life(url.clone(), Arc::clone(&board), client)))
        .collect();
    let publishers: Vec<_> = (0..options.publishers)
        .map(|p| {
            let (sink, board) = (Arc::clone(&sink), Arc::clone(&board));
            std::thread::spawn(move || publish_runs(sink, board, p))
        })
        .collect();
    let rss = sample_memory(&hub, options.seconds).await;
    board.publishing.store(false, Ordering::Release);
    let publishers = tokio::task::spawn_blocking(move || {
        publishers
            .into_iter()
            .map(std::thread::JoinHandle::join)
            .filter(Result::is_err)
            .count()
    });
    let panicked = publishers.await?;
    board.published.store(true, Ordering::Release);
    if panicked > 0 {
        return Err("a publisher panicked".into());
    }
    let mut readers = Vec::with_capacity(clients.len());
    for client in clients {
        readers.push(client.await?);
    }
    // The observer has seen every terminal event before the clients' are checked.
    observer.await?;
    for (client, reader) in readers.iter().enumerate() {
        reader.check_terminals(&board, client as u64);
    }
    let closing = Instant::now();
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        while hub.stats().connections > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if left.is_err() {
        eprintln!(
            "soak: {} connections still open {:?} after the clients left",
            hub.stats().connections,
            closing.elapsed()
        );
    }
    let kept = report(options, &board, &hub, rss) && left.is_ok();
    let _ = stop.send(());
    task.await??;
    Ok(kept)
}

/// Runs for `seconds`, printing the process's memory every ten; the samples.
async fn sample_memory(hub: &backtest_stream::server::Hub, seconds: u64) -> Vec<u64> {
    let started = Instant::now();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(seconds.min(10))).await;
        rss.push(rss_kib());
        eprintln!(
            "soak: {:>4} s, RSS {} KiB, {} connections",
            started.elapsed().as_secs(),
            rss_kib(),
            hub.stats().connections
        );
    }
    rss
}

/// Prints the summary; whether every promise was kept.
fn report(
    options: Options,
    board: &Board,
    hub: &backtest_stream::server::Hub,
    rss: Vec<u64>,
) -> bool {
    let stats = hub.stats();
    let violations = board
        .violations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    println!(
        "{}",
        serde_json::json!({
            "seconds": options.seconds, "clients": options.clients, "publishers": options.publishers,
            "runs_ended": board.runs_ended.load(Ordering::Relaxed),
            "terminal_events_observed": board.ended.lock().map(|e| e.len()).unwrap_or(0),
            "events_published": stats.events_published,
            "frames_read": board.frames.load(Ordering::Relaxed),
            "missed_announced": board.announced.load(Ordering::Relaxed),
            "publish_queue_full": stats.dropped.publish_queue_full,
            "vanished": board.vanished.load(Ordering::Relaxed),
            "resumed": board.resumed.load(Ordering::Relaxed),
            "rss_kib_every_10_s": rss,
            "connections_left": stats.connections,
            "subscriptions_left": stats.subscriptions,
            "violations": violations,
        })
    );
    violations.is_empty() && stats.connections == 0 && stats.subscriptions.is_empty()
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
    match runtime.block_on(soak(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
