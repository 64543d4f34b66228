//! Load generator for the WebSocket hub: C clients, N events; reports delivered frames
//! per second, publish-to-receipt latency (p50/p99, from a nanosecond clock carried in
//! each event's `status`), the server's memory and its CPU time per delivered frame
//! (hub and connections), and checks that every client got every event in order.
//!
//! Run the server and the clients as two processes pinned to different cores:
//!
//! ```text
//! cargo build --release --example loadtest
//! taskset -c 0 target/release/examples/loadtest server --clients 100 --events 20000 &
//! taskset -c 1 target/release/examples/loadtest client --clients 100 --events 20000
//! ```
//!
//! Options: `--addr 127.0.0.1:9001`, `--clients C`, `--events N`, `--rate R` (events per
//! second, paced; default as fast as possible), `--idle` (server: measure memory of C
//! idle subscribed connections instead of publishing; client: stay connected until the
//! server closes), `--queue Q` (server: per-connection queue capacity; default: every
//! event fits), `--write-buffer B` (server: tungstenite write buffer per connection,
//! bytes), `--read-buffer B` (client: tungstenite read buffer per connection, bytes;
//! default 16 KiB), `--redis URL` (server, feature `redis`: publish through Redis Streams,
//! the hub fed by a gateway, to measure the broker hop). `both` runs server and clients
//! in one process (unpinned).

mod measure;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backtest_stream::server::{Server, ServerConfig};
use backtest_stream::sink::{ProgressSink, SinkError};
use backtest_stream::wire::{BacktestId, BacktestProgress, Envelope, Event, Timestamp, Topic};
use futures::{SinkExt, StreamExt};
use measure::{cpu_ns, field_after, leading_digits, now_ns, rss_kib, trailing_seq};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Debug, Clone)]
struct Options {
    addr: SocketAddr,
    clients: usize,
    events: u64,
    rate: Option<f64>,
    idle: bool,
    /// Per-connection queue capacity (server); default: every event fits.
    queue: Option<usize>,
    /// tungstenite write buffer per connection, in bytes (server); default: the
    /// `ServerConfig` default.
    write_buffer: Option<usize>,
    /// tungstenite read buffer per client connection, in bytes (client).
    read_buffer: usize,
    /// Publish through Redis Streams at this URL, the hub fed by a gateway (server;
    /// feature `redis`): the broker hop measured.
    redis: Option<String>,
}

const USAGE: &str = "usage: loadtest server|client|both [--clients C] [--events N] [--rate R] [--idle] [--queue Q] [--write-buffer B] [--read-buffer B] [--addr A] [--redis URL]";

/// Which side to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Server,
    Client,
    Both,
}

/// What the command line asks for.
enum Command {
    Run(Mode, Options),
    Help,
}

fn parse_options(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
        clients: 1,
        events: 10_000,
        rate: None,
        idle: false,
        queue: None,
        write_buffer: None,
        // tungstenite zero-fills the free part of its read buffer (up to this size)
        // before every read: its 128 KiB default costs the client microseconds per
        // frame when frames arrive one at a time.
        read_buffer: 16 * 1024,
        redis: None,
    };
    let mut mode = None;
    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("loadtest")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let name = match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("idle") => {
                options.idle = true;
                continue;
            }
            Value(value) if mode.is_none() => {
                mode = Some(match value.to_str() {
                    Some("server") => Mode::Server,
                    Some("client") => Mode::Client,
                    Some("both") => Mode::Both,
                    _ => {
                        return Err(format!(
                            "unknown mode {value:?}; use server, client or both"
                        ));
                    }
                });
                continue;
            }
            Long(name) => format!("--{name}"),
            other => return Err(other.unexpected().to_string()),
        };
        let value = parser
            .value()
            .map_err(|_| format!("{name} needs a value"))?
            .into_string()
            .map_err(|v| format!("{name}: {v:?} is not valid text"))?;
        set(&mut options, &name, &value)?;
    }
    let mode = mode.ok_or_else(|| USAGE.to_owned())?;
    Ok(Command::Run(mode, options))
}

/// Sets the option `name` (`--clients`, ...) from its value.
fn set(options: &mut Options, name: &str, value: &str) -> Result<(), String> {
    let parse =
        |value: &str| -> Result<u64, String> { value.parse().map_err(|e| format!("{name}: {e}")) };
    let size = |value: &str| parse(value).map(|n| n as usize);
    match name {
        "--addr" => options.addr = value.parse().map_err(|e| format!("{name}: {e}"))?,
        "--clients" => options.clients = size(value)?,
        "--events" => options.events = parse(value)?,
        "--rate" => options.rate = Some(value.parse().map_err(|e| format!("{name}: {e}"))?),
        "--queue" => options.queue = Some(size(value)?),
        "--write-buffer" => options.write_buffer = Some(size(value)?),
        "--read-buffer" => options.read_buffer = size(value)?,
        "--redis" => options.redis = Some(value.to_owned()),
        _ => return Err(format!("unknown option {name}")),
    }
    Ok(())
}

fn progress_event(id: &BacktestId, bar: u64, total: u64) -> Event {
    let mut event = Event::BacktestProgress(BacktestProgress {
        backtest_id: id.clone(),
        progress: 0.0,
        status: String::with_capacity(20),
        bars_processed: 0,
        total_bars: total,
        current_date: "2023-06-15".into(),
        trades_count: 0,
        current_pnl: 0.0,
        timestamp: Timestamp::now(),
    });
    refresh_progress(&mut event, bar, total);
    event
}

/// Makes `event` (a progress event) the one of `bar`.
fn refresh_progress(event: &mut Event, bar: u64, total: u64) {
    // One clock read per event: the publish time in nanoseconds goes into `status`
    // (the event timestamp has milliseconds only) and makes the timestamp.
    let now = now_ns();
    if let Event::BacktestProgress(p) = event {
        p.progress = bar as f64 * 100.0 / total as f64;
        p.status.clear();
        let _ = write!(p.status, "{now}");
        p.bars_processed = bar;
        p.trades_count = bar / 10;
        p.current_pnl = bar as f64 * 0.5;
        p.timestamp =
            Timestamp::from_unix_millis((now / 1_000_000) as i64).unwrap_or_else(Timestamp::now);
    }
}

/// Progress events for the publisher, each published once with its own content. An
/// event the hub has finished with (nothing else holds it any more) is rewritten in
/// place for a later bar instead of allocating a new one, so that the load generator,
/// which runs on the server's core, costs that core as little as possible.
struct EventPool {
    slots: Vec<Arc<Event>>,
}

impl EventPool {
    /// More than the hub's publish queue holds (65,536 by default), so that a
    /// publisher running ahead of the hub still finds finished events to reuse.
    const SIZE: usize = 65_536 + 4_096;

    fn new() -> Self {
        Self {
            slots: Vec::with_capacity(Self::SIZE),
        }
    }

    /// The event of `bar` (1, 2, ...).
    fn next(&mut self, id: &BacktestId, bar: u64, total: u64) -> Arc<Event> {
        let index = (bar - 1) as usize % Self::SIZE;
        if index >= self.slots.len() {
            self.slots.push(Arc::new(progress_event(id, bar, total)));
        } else if let Some(event) = Arc::get_mut(&mut self.slots[index]) {
            refresh_progress(event, bar, total);
        } else {
            self.slots[index] = Arc::new(progress_event(id, bar, total));
        }
        Arc::clone(&self.slots[index])
    }
}

async fn run_server(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let (rss_start, _) = rss_kib();
    let mut config = ServerConfig::default()
        .bind(options.addr)
        .max_connections(options.clients + 100)
        // By default room for every event per client: this measures throughput, not
        // lag handling.
        .queue_capacity(options.queue.unwrap_or(options.events as usize + 16))
        .history_size(16);
    if let Some(bytes) = options.write_buffer {
        config = config.write_buffer_size(bytes);
    }
    let server = Server::bind(config).await?;
    let hub = server.hub().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    eprintln!("server: waiting for {} subscribed clients", options.clients);
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
    if options.idle {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss, _) = rss_kib();
        let per = (rss.saturating_sub(rss_start)) as f64 / options.clients as f64;
        println!(
            "server: {} idle subscribed connections: RSS {rss} KiB (start {rss_start} KiB), {per:.2} KiB per connection",
            options.clients
        );
        // Closing the server closes the idle clients (1001).
        let _ = stop.send(());
        serving.await??;
        return Ok(());
    }
    // The gateway (with --redis) feeds the hub until the clients have left.
    let (sink, _gateway) = publisher_sink(&hub, options.redis.as_deref())?;
    let cpu_start = cpu_ns();
    let (events, rate) = (options.events, options.rate);
    let publisher = std::thread::spawn(move || publish_all(&*sink, events, rate));
    tokio::task::spawn_blocking(move || publisher.join())
        .await?
        .map_err(|_| "publisher panicked")?;
    // Wait for the clients to leave.
    while hub.stats().connections > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_ns().saturating_sub(cpu_start);
    let (rss, peak) = rss_kib();
    let stats = hub.stats();
    println!(
        "server: RSS now {rss} KiB, peak {peak} KiB; events {}, lagged {}, publish queue full {}",
        stats.events_published, stats.dropped.lagged, stats.dropped.publish_queue_full
    );
    // The threads still running: the hub and the connections (their closing included);
    // the publisher's thread has ended and is not counted.
    let frames = stats.events_published * options.clients as u64;
    println!(
        "server: CPU {:.1} ms for {frames} frames: {:.3} us per frame",
        cpu as f64 / 1e6,
        cpu as f64 / 1e3 / frames.max(1) as f64
    );
    let _ = stop.send(());
    serving.await??;
    Ok(())
}

/// Where the publisher publishes: the hub, or (`--redis`) Redis Streams with a gateway
/// feeding the hub from them (kept alive by the second value).
#[cfg(feature = "redis")]
fn publisher_sink(
    hub: &backtest_stream::server::Hub,
    redis: Option<&str>,
) -> Result<
    (
        backtest_stream::sink::SharedSink,
        Option<backtest_stream::broker::Gateway>,
    ),
    String,
> {
    use backtest_stream::broker::{Gateway, GatewayConfig, RedisSink, RedisSinkConfig};
    let Some(url) = redis else {
        return Ok((Arc::new(hub.sink()), None));
    };
    let config = GatewayConfig::default().topics([Topic::BACKTEST]).tail(16);
    let gateway = Gateway::start(hub, url, config).map_err(|e| format!("--redis: {e}"))?;
    let sink_config = RedisSinkConfig::default().queue_capacity(1 << 20);
    let sink =
        RedisSink::connect_with_config(url, sink_config).map_err(|e| format!("--redis: {e}"))?;
    Ok((Arc::new(sink), Some(gateway)))
}

#[cfg(not(feature = "redis"))]
fn publisher_sink(
    hub: &backtest_stream::server::Hub,
    redis: Option<&str>,
) -> Result<(backtest_stream::sink::SharedSink, Option<()>), String> {
    match redis {
        Some(_) => Err("--redis needs the redis feature (cargo run --features redis ...)".into()),
        None => Ok((Arc::new(hub.sink()), None)),
    }
}

/// Publish-call timings, every 64th call (two clock reads per event would cost the
/// server's core more than the call itself).
#[derive(Default)]
struct PublishTimes {
    total_ns: u128,
    max_ns: u128,
    timed: u64,
    full_retries: u64,
}

/// Publishes `events` progress events (paced at `rate` a second, when given), then the
/// run's end, and prints the publish-call timings.
fn publish_all(sink: &dyn ProgressSink, events: u64, rate: Option<f64>) {
    let id = BacktestId::new("loadtest").unwrap_or_else(|_| BacktestId::random());
    let mut times = PublishTimes::default();
    let mut pool = EventPool::new();
    let started = Instant::now();
    for bar in 1..=events {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64((bar - 1) as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let envelope = Envelope {
            topic: Topic::BACKTEST,
            event: pool.next(&id, bar, events),
        };
        if let Err(e) = publish_timed(sink, &envelope, bar % 64 == 0, &mut times) {
            eprintln!("publish failed: {e}");
            return;
        }
    }
    let elapsed = started.elapsed();
    let end = Event::BacktestError(backtest_stream::wire::BacktestError {
        backtest_id: id,
        error: "end of load test".into(),
        error_details: String::new(),
        timestamp: Timestamp::now(),
    });
    while let Err(SinkError::Full { .. }) =
        sink.publish(&Envelope::new(Topic::BACKTEST, end.clone()))
    {
        std::thread::yield_now();
    }
    println!(
        "server: published {events} events in {:.3} s ({:.0}/s); publish call (1 in 64 timed) mean {:.0} ns, max {} ns; queue-full retries {}",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        times.total_ns as f64 / times.timed.max(1) as f64,
        times.max_ns,
        times.full_retries
    );
}

/// Publishes one event, retrying while the hub's queue is full; times the call when
/// `timed`.
fn publish_timed(
    sink: &dyn ProgressSink,
    envelope: &Envelope,
    timed: bool,
    times: &mut PublishTimes,
) -> Result<(), SinkError> {
    loop {
        let t = timed.then(Instant::now);
        let result = sink.publish(envelope);
        let took = t.map(|t| t.elapsed().as_nanos());
        match result {
            Ok(()) => {
                if let Some(took) = took {
                    times.total_ns += took;
                    times.max_ns = times.max_ns.max(took);
                    times.timed += 1;
                }
                return Ok(());
            }
            Err(SinkError::Full { .. }) => {
                times.full_retries += 1;
                std::thread::yield_now();
            }
            Err(e) => return Err(e),
        }
    }
}

/// What one client saw.
struct ClientReport {
    frames: u64,
    in_order: bool,
    first_publish_ns: u64,
    last_receipt_ns: u64,
    latencies_ns: Vec<u64>,
}

async fn run_client(
    url: String,
    events: u64,
    idle: bool,
    read_buffer: usize,
) -> Result<ClientReport, Box<dyn std::error::Error + Send + Sync>> {
    let config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false).await?;
    ws.send(Message::Text(
        r#"{"action":"subscribe","topic":"backtest"}"#.into(),
    ))
    .await?;
    let mut report = ClientReport {
        frames: 0,
        in_order: true,
        first_publish_ns: u64::MAX,
        last_receipt_ns: 0,
        latencies_ns: Vec::with_capacity(if idle { 0 } else { events as usize }),
    };
    let mut expected = 1;
    while let Some(message) = ws.next().await {
        let message = match message {
            Ok(message) => message,
            Err(_) if idle => break,
            Err(e) => return Err(e.into()),
        };
        let Message::Text(text) = message else {
            continue;
        };
        if text.starts_with(r#"{"type":"subscription_confirmed""#) {
            continue;
        }
        // Event frames end with `,"seq":N}`: read N backwards, without searching.
        let Some(seq) = trailing_seq(&text) else {
            continue;
        };
        report.frames += 1;
        if seq != expected {
            report.in_order = false;
        }
        expected = seq + 1;
        // Latency is sampled (every 8th event, and the last) to keep the reader cheap.
        if seq % 8 == 0 || seq >= events {
            let received = now_ns();
            report.last_receipt_ns = received;
            if let Some(sent) = field_after(&text, "\"status\":\"").and_then(leading_digits) {
                report.first_publish_ns = report.first_publish_ns.min(sent);
                report.latencies_ns.push(received.saturating_sub(sent));
            }
        }
        if seq == 1 {
            if let Some(sent) = field_after(&text, "\"status\":\"").and_then(leading_digits) {
                report.first_publish_ns = report.first_publish_ns.min(sent);
            }
        }
        if seq > events {
            break;
        }
    }
    let _ = ws.close(None).await;
    Ok(report)
}

async fn run_clients(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let url = format!("ws://{}/ws", options.addr);
    let mut tasks = Vec::with_capacity(options.clients);
    for i in 0..options.clients {
        tasks.push(tokio::spawn(run_client(
            url.clone(),
            options.events,
            options.idle,
            options.read_buffer,
        )));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await? {
            Ok(report) => reports.push(report),
            Err(e) => return Err(format!("client failed: {e}").into()),
        }
    }
    if options.idle {
        println!("client: {} connections closed by the server", reports.len());
        return Ok(());
    }
    let expected_frames = options.events + 1;
    let complete = reports
        .iter()
        .filter(|r| r.in_order && r.frames == expected_frames)
        .count();
    let first = reports
        .iter()
        .map(|r| r.first_publish_ns)
        .min()
        .unwrap_or(0);
    let last = reports.iter().map(|r| r.last_receipt_ns).max().unwrap_or(0);
    let frames: u64 = reports.iter().map(|r| r.frames).sum();
    let seconds = (last.saturating_sub(first)) as f64 / 1e9;
    let mut latencies: Vec<u64> = reports.into_iter().flat_map(|r| r.latencies_ns).collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "client: {} clients x {} events: {} frames in {:.3} s = {:.0} frames/s; latency p50 {:.1} us, p99 {:.1} us, max {:.1} us; {}/{} clients got every event in order",
        options.clients,
        options.events,
        frames,
        seconds,
        frames as f64 / seconds.max(1e-9),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        complete,
        options.clients
    );
    if complete != options.clients {
        return Err("some clients missed events or got them out of order".into());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mode, options) = match parse_options(std::env::args_os().skip(1))? {
        Command::Run(mode, options) => (mode, options),
        Command::Help => {
            println!("{USAGE}");
            return Ok(());
        }
    };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
    };
    match mode {
        Mode::Server => runtime()?.block_on(run_server(options)),
        Mode::Client => runtime()?.block_on(run_clients(options)),
        Mode::Both => {
            let server_options = options.clone();
            let server = std::thread::spawn(move || -> Result<(), String> {
                let rt = runtime().map_err(|e| e.to_string())?;
                rt.block_on(run_server(server_options))
                    .map_err(|e| e.to_string())
            });
            std::thread::sleep(Duration::from_millis(300));
            let result = runtime()?.block_on(run_clients(options));
            server.join().map_err(|_| "server thread panicked")??;
            result
        }
    }
}
