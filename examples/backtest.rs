//! Runs the SMA-crossover strategy on a CSV file or the embedded synthetic data and
//! streams the run as JSON Lines to standard output.
//!
//! ```text
//! cargo run --release --example backtest -- [--data FILE.csv] [--fast 10 --slow 20
//!     --size 1 --cash 10000] [--bars 10000 --seed 42] [--mode vanilla] [--id my-run]
//!     [--symbol EURUSD --timeframe H1] [--every 100] [--slippage 0]
//!     [--periods-per-year 252|365] [--max-result-trades N] [--no-stream]
//!     [--ws ADDR [--linger SECS]] [--redis URL] [--bar-delay-us N]
//! ```
//!
//! Every line on stdout is one event (`backtest_start`, `backtest_progress`, the run's
//! `log_entry` lines for its fills, then `backtest_complete` or `backtest_error`); a
//! summary goes to stderr.
//!
//! With `--ws 127.0.0.1:8000` (feature `server`) the run is also streamed by the crate's
//! WebSocket server on that address: its URL (`ws://127.0.0.1:8000/ws`) goes to stderr,
//! stdout stays pure JSON Lines. `--linger SECS` keeps serving that long after the run
//! so that a client (`cargo run --release --bin watch`) can still catch up with a snapshot or a
//! replay. `--bar-delay-us N` sleeps N microseconds per bar, so a person can watch.
//!
//! With `--redis redis://127.0.0.1:6379` (feature `redis`) the example is a worker: the
//! run is also written to Redis Streams with the crate's `RedisSink`, for gateways
//! (`cargo run --release --bin gateway -- --redis URL`) to serve; the example waits
//! until every event is written before it exits, and reports the sink's counters on
//! stderr. `--id ID` names the run.
//!
//! Ctrl-C or SIGTERM cancels the run: it ends with `backtest_error` ("cancelled"), which
//! is written everywhere (Redis included) before the example exits with status 1, so a
//! stopped worker's run does not stay "running" on the gateways.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backtest_stream::engine::BacktestRunner;
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::reference::{
    Bar, EngineConfig, ReferenceEngine, SmaCrossover, Strategy, StrategyContext, StrategyError,
    SyntheticBars, load_csv,
};
use backtest_stream::sink::{
    JsonLinesConfig, JsonLinesSink, OverflowPolicy, ProgressSink, SharedSink,
};
use backtest_stream::wire::BacktestId;

const USAGE: &str = "usage: backtest [--data FILE.csv] [--fast N] [--slow N] [--size X] \
[--cash X] [--bars N] [--seed N] [--mode LABEL] [--id ID] [--symbol S] [--timeframe T] \
[--every N] [--slippage X] [--periods-per-year X] [--max-result-trades N] [--no-stream] \
[--ws ADDR [--linger SECS]] [--redis URL [--redis-queue N]] [--bar-delay-us N]";

const HELP: &str = "\
Runs the SMA-crossover strategy and streams the run as JSON Lines on stdout.

Data:
  --data FILE.csv          bars from a CSV file (timestamp,open,high,low,close,volume)
  --bars N                 synthetic bars when there is no --data (default 10000)
  --seed N                 seed of the synthetic bars (default 42)
Strategy and account:
  --fast N, --slow N       SMA lengths (default 10 and 20)
  --size X                 units per trade (default 1)
  --cash X                 starting cash (default 10000)
  --slippage X             price added to buys, taken from sells (default 0)
  --periods-per-year X     Sharpe annualisation (default 252 with --data, else 365)
Streaming:
  --mode LABEL             the run's variant label (default sma_crossover)
  --id ID                  the run's id (default: a random UUID)
  --symbol S, --timeframe T  shown in backtest_start (default SYNTH, H1)
  --every N                progress every N bars (default 100)
  --max-result-trades N    list only the last N trades in backtest_complete
  --no-stream              run without streaming; print only the summary
  --ws ADDR                also serve the run over WebSocket on ADDR (ws://ADDR/ws)
  --linger SECS            with --ws: keep serving SECS after the run
  --redis URL              also write the run to Redis Streams (redis://HOST:PORT) for
                           gateways to serve; waits until it is written before exiting
  --redis-queue N          with --redis: events kept while Redis is slow or away (default
                           65536); past 3/4 of it progress is dropped (counted, announced)
  --bar-delay-us N         sleep N microseconds per bar, to watch a run
  -h, --help               this help";

struct Options {
    data: Option<String>,
    fast: usize,
    slow: usize,
    size: f64,
    cash: f64,
    bars: usize,
    seed: u64,
    mode: Option<String>,
    id: Option<String>,
    symbol: String,
    timeframe: String,
    every: u64,
    slippage: f64,
    periods_per_year: Option<f64>,
    max_result_trades: Option<usize>,
    stream: bool,
    ws: Option<String>,
    redis: Option<String>,
    redis_queue: Option<usize>,
    linger: Duration,
    bar_delay: Duration,
}

/// What the command line asks for.
enum Command {
    Run(Box<Options>),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = Options {
        data: None,
        fast: 10,
        slow: 20,
        size: 1.0,
        cash: 10_000.0,
        bars: 10_000,
        seed: 42,
        mode: None,
        id: None,
        symbol: "SYNTH".into(),
        timeframe: "H1".into(),
        every: 100,
        slippage: 0.0,
        periods_per_year: None,
        max_result_trades: None,
        stream: true,
        ws: None,
        redis: None,
        redis_queue: None,
        linger: Duration::ZERO,
        bar_delay: Duration::ZERO,
    };
    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("backtest")).chain(args));
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n{USAGE}"))? {
        let flag = match arg {
            Long("no-stream") => {
                options.stream = false;
                continue;
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            Long(flag) => format!("--{flag}"),
            Short(flag) => return Err(format!("unknown option -{flag}\n{USAGE}")),
            Value(value) => return Err(format!("unexpected argument {value:?}\n{USAGE}")),
        };
        let value = parser
            .value()
            .map_err(|_| format!("{flag} needs a value\n{USAGE}"))?
            .into_string()
            .map_err(|v| format!("{flag}: {v:?} is not valid text"))?;
        set(&mut options, &flag, value)?;
    }
    if options.ws.is_none() && !options.linger.is_zero() {
        return Err(format!("--linger needs --ws\n{USAGE}"));
    }
    if options.redis.is_none() && options.redis_queue.is_some() {
        return Err(format!("--redis-queue needs --redis\n{USAGE}"));
    }
    Ok(Command::Run(Box::new(options)))
}

/// Sets the option `flag` (`--fast`, ...) from its value.
fn set(options: &mut Options, flag: &str, value: String) -> Result<(), String> {
    let number = |what: &str| format!("{flag}: {value:?} is not {what}");
    match flag {
        "--data" => options.data = Some(value),
        "--fast" => options.fast = value.parse().map_err(|_| number("a count"))?,
        "--slow" => options.slow = value.parse().map_err(|_| number("a count"))?,
        "--size" => options.size = value.parse().map_err(|_| number("a number"))?,
        "--cash" => options.cash = value.parse().map_err(|_| number("a number"))?,
        "--bars" => options.bars = value.parse().map_err(|_| number("a count"))?,
        "--seed" => options.seed = value.parse().map_err(|_| number("a seed"))?,
        "--mode" => options.mode = Some(value),
        "--id" => options.id = Some(value),
        "--symbol" => options.symbol = value,
        "--timeframe" => options.timeframe = value,
        "--every" => options.every = value.parse().map_err(|_| number("a count"))?,
        "--slippage" => options.slippage = value.parse().map_err(|_| number("a number"))?,
        "--max-result-trades" => {
            options.max_result_trades = Some(value.parse().map_err(|_| number("a count"))?)
        }
        "--ws" => options.ws = Some(value),
        "--redis" => options.redis = Some(value),
        "--redis-queue" => match value.parse::<usize>() {
            Ok(events) if events >= 4 => options.redis_queue = Some(events),
            _ => return Err(number("a count of at least 4")),
        },
        "--linger" => {
            let secs: f64 = value.parse().map_err(|_| number("a number of seconds"))?;
            options.linger =
                Duration::try_from_secs_f64(secs).map_err(|_| number("a number of seconds"))?;
        }
        "--bar-delay-us" => {
            options.bar_delay = Duration::from_micros(value.parse().map_err(|_| number("a count"))?)
        }
        "--periods-per-year" => {
            options.periods_per_year = Some(value.parse().map_err(|_| number("a number"))?)
        }
        _ => return Err(format!("unknown option {flag}\n{USAGE}")),
    }
    Ok(())
}

/// A strategy that sleeps before each bar, so that a person can watch a run.
struct Paced<S> {
    inner: S,
    delay: Duration,
}

impl<S: Strategy> Strategy for Paced<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        self.inner.parameters()
    }
    fn on_start(&mut self) {
        self.inner.on_start();
    }
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.inner.on_bar(ctx)
    }
}

/// The WebSocket side of `--ws`: the crate's server on a thread of its own.
#[cfg(feature = "server")]
mod ws {
    use std::net::ToSocketAddrs;

    use backtest_stream::server::{BackgroundServer, ServerConfig};

    pub struct WsServer(BackgroundServer);

    impl WsServer {
        /// Starts serving on `addr` and prints the URL to stderr.
        pub fn start(addr: &str) -> Result<Self, String> {
            let socket = addr
                .to_socket_addrs()
                .map_err(|e| format!("--ws {addr:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("--ws {addr:?}: no address"))?;
            let server = BackgroundServer::start(ServerConfig::default().bind(socket))
                .map_err(|e| format!("--ws {addr}: cannot serve: {e}"))?;
            eprintln!("ws://{}/ws", server.local_addr());
            Ok(Self(server))
        }

        pub fn sink(&self) -> backtest_stream::sink::SharedSink {
            std::sync::Arc::new(self.0.sink())
        }

        /// Serves `linger` longer, then shuts down gracefully.
        pub fn finish(self, linger: std::time::Duration) {
            use backtest_stream::sink::ProgressSink;
            // Everything published is in the hub's history before the linger starts.
            let _ = self.0.sink().flush();
            if !linger.is_zero() {
                eprintln!(
                    "serving ws://{}/ws for {:.1} s more",
                    self.0.local_addr(),
                    linger.as_secs_f64()
                );
                std::thread::sleep(linger);
            }
            if let Err(error) = self.0.shutdown() {
                eprintln!("ws server: {error}");
            }
        }
    }
}

/// The worker side of `--redis`: the run written to Redis Streams by a `RedisSink`.
#[cfg(feature = "redis")]
mod broker {
    use std::time::Duration;

    use backtest_stream::broker::{RedisSink, RedisSinkConfig};

    /// How long the example waits for its events to be written before it gives up.
    const FLUSH_WAIT: Duration = Duration::from_secs(10);

    pub struct Broker(RedisSink);

    impl Broker {
        /// A sink writing to the Redis at `url` (it connects in the background),
        /// keeping up to `queue` events while Redis is slow or away.
        pub fn connect(url: &str, queue: Option<usize>) -> Result<Self, String> {
            let mut config = RedisSinkConfig::default();
            if let Some(events) = queue {
                config = config.queue_capacity(events);
            }
            RedisSink::connect_with_config(url, config)
                .map(Self)
                .map_err(|e| format!("--redis: {e}"))
        }

        pub fn sink(&self) -> backtest_stream::sink::SharedSink {
            std::sync::Arc::new(self.0.clone())
        }

        /// Waits until every event is written, then reports the sink's counters on
        /// stderr; an error when some could not be written in time.
        pub fn finish(self) -> Result<(), String> {
            let flushed = self.0.flush_within(FLUSH_WAIT);
            let s = self.0.stats();
            eprintln!(
                "redis: {} of {} events written ({} progress and {} other refused, {} loss \
                 markers, {} failed calls{})",
                s.written,
                s.accepted,
                s.refused_progress,
                s.refused_other + s.terminal_refused,
                s.loss_markers,
                s.failures,
                s.last_error
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            );
            flushed.map_err(|e| format!("redis: {e} after {} s", FLUSH_WAIT.as_secs()))
        }
    }
}

#[cfg(not(feature = "redis"))]
mod broker {
    pub struct Broker;

    impl Broker {
        pub fn connect(_url: &str, _queue: Option<usize>) -> Result<Self, String> {
            Err("--redis needs the crate's `redis` feature (--features redis)".into())
        }
        pub fn sink(&self) -> backtest_stream::sink::SharedSink {
            std::sync::Arc::new(backtest_stream::sink::NoopSink)
        }
        pub fn finish(self) -> Result<(), String> {
            Ok(())
        }
    }
}

#[cfg(not(feature = "server"))]
mod ws {
    pub struct WsServer;

    impl WsServer {
        pub fn start(_addr: &str) -> Result<Self, String> {
            Err("--ws needs the crate's `server` feature".into())
        }
        pub fn sink(&self) -> backtest_stream::sink::SharedSink {
            std::sync::Arc::new(backtest_stream::sink::NoopSink)
        }
        pub fn finish(self, _linger: std::time::Duration) {}
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let options = match parse_args(std::env::args_os().skip(1))? {
        Command::Run(options) => *options,
        Command::Help => {
            println!("{USAGE}\n\n{HELP}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let bars = match &options.data {
        Some(path) => load_csv(path).map_err(|e| format!("{path}: {e}"))?,
        None => SyntheticBars {
            count: options.bars,
            seed: options.seed,
            ..SyntheticBars::default()
        }
        .generate()
        .map_err(|e| e.to_string())?,
    };
    let strategy = Paced {
        inner: SmaCrossover::new(options.fast, options.slow, options.size)
            .map_err(|e| e.to_string())?,
        delay: options.bar_delay,
    };
    let server = options.ws.as_deref().map(ws::WsServer::start).transpose()?;
    let broker = options
        .redis
        .as_deref()
        .map(|url| broker::Broker::connect(url, options.redis_queue))
        .transpose()?;

    // Block rather than drop: an example's output should be complete.
    let stdout = Arc::new(JsonLinesSink::with_config(
        std::io::stdout(),
        JsonLinesConfig {
            overflow: OverflowPolicy::Block,
            ..JsonLinesConfig::default()
        },
    ));
    let mut sinks: Vec<SharedSink> = Vec::new();
    if options.stream {
        sinks.push(stdout.clone() as SharedSink);
    }
    sinks.extend(server.as_ref().map(ws::WsServer::sink));
    sinks.extend(broker.as_ref().map(broker::Broker::sink));
    let sink: Option<SharedSink> = match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Arc::new(sinks)),
    };
    // The run's log records (its fills) become its log_entry events.
    if sink.is_some() {
        LogBridge::builder()
            .level(log::LevelFilter::Info)
            .build()
            .try_init()
            .map_err(|e| e.to_string())?;
    }
    let mut code = backtest(&options, &bars, strategy, sink)?;
    let _ = stdout.flush();
    if let Some(broker) = broker {
        if let Err(message) = broker.finish() {
            eprintln!("error: {message}");
            code = ExitCode::FAILURE;
        }
    }
    if let Some(server) = server {
        server.finish(options.linger);
    }
    Ok(code)
}

/// Runs the strategy on the bars, streaming to `sink`, and prints the summary.
fn backtest(
    options: &Options,
    bars: &[Bar],
    strategy: Paced<SmaCrossover>,
    sink: Option<SharedSink>,
) -> Result<ExitCode, String> {
    let mut runner = BacktestRunner::streaming(sink).progress_every(options.every);
    if let Some(mode) = &options.mode {
        runner = runner.variant(mode.clone());
    }
    if let Some(id) = &options.id {
        runner = runner.with_id(BacktestId::new(id).map_err(|e| e.to_string())?);
    }
    let config = EngineConfig {
        initial_cash: options.cash,
        slippage: options.slippage,
        // The synthetic data trades every day; a CSV file is taken to be a stock market.
        periods_per_year: options
            .periods_per_year
            .unwrap_or(if options.data.is_some() { 252.0 } else { 365.0 }),
        symbol: options.symbol.clone(),
        timeframe: options.timeframe.clone(),
        max_result_trades: options.max_result_trades,
    };
    let id = runner.id().clone();
    cancel_on_signal(runner.cancel_token().clone());
    match runner.run(&mut ReferenceEngine::new(bars, strategy, config)) {
        Ok(report) => {
            let m = report.metrics;
            eprintln!(
                "{id}: {} bars, {} trades, final balance {:.2}, return {:.2} %, drawdown {:.2} %, \
                 win rate {:.1} %, Sharpe {:.2}",
                report.bars,
                m.total_trades,
                m.final_balance,
                m.return_pct,
                m.drawdown,
                m.win_rate,
                m.sharpe_ratio
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{id}: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Cancels the run on Ctrl-C or SIGTERM (the run then ends with `backtest_error`, which
/// the sinks write before the example exits).
fn cancel_on_signal(token: backtest_stream::engine::CancelToken) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signalled = runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut terminate) = signal(SignalKind::terminate()) else {
                    return tokio::signal::ctrl_c().await.is_ok();
                };
                tokio::select! {
                    interrupted = tokio::signal::ctrl_c() => interrupted.is_ok(),
                    _ = terminate.recv() => true,
                }
            }
            #[cfg(not(unix))]
            tokio::signal::ctrl_c().await.is_ok()
        });
        if signalled {
            eprintln!("interrupted: cancelling the run");
            token.cancel();
        }
    });
}
