//! Runs the SMA-crossover strategy on a CSV file or the embedded synthetic data and
//! streams the run as JSON Lines to standard output.
//!
//! ```text
//! cargo run --release --example backtest -- [--data FILE.csv] [--fast 10 --slow 30
//!     --size 10 --cash 10000] [--bars 10000 --seed 42] [--mode vanilla] [--id my-run]
//!     [--symbol EURUSD --timeframe H1] [--every 100] [--slippage 0]
//!     [--periods-per-year 252] [--max-result-trades N] [--no-stream]
//!     [--ws ADDR [--linger SECS]] [--redis URL] [--bar-delay-us N]
//! ```
//!
//! Every line on stdout is one event (`backtest_start`, `backtest_progress`, the run's
//! `log_entry` lines for its fills, then `backtest_complete` or `backtest_error`); a
//! summary goes to stderr. The defaults are the crate's one set (the `reference` module's
//! "Defaults"), the demo's too. The exit status tells a script what happened: 0 the run
//! completed, 1 it failed or was cancelled (or its events could not all be written), 2 a
//! bad command line, 3 data that cannot be read or holds a bad line.
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

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backtest_stream::engine::BacktestRunner;
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::reference::{
    Bar, CsvError, EngineConfig, ReferenceEngine, SmaCrossover, Strategy, StrategyContext,
    StrategyError, SyntheticBars, load_csv, timeframe_of,
};
use backtest_stream::sink::{
    JsonLinesConfig, JsonLinesSink, OverflowPolicy, ProgressSink, SharedSink,
};
use backtest_stream::wire::BacktestId;

use crate::options::{Command, HELP, Options, USAGE, parse_args};

mod options;

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

/// Why the example stopped before or after its run, with its exit status.
enum Failure {
    /// A bad command line: status 2.
    Usage(String),
    /// Data that cannot be read or holds a bad line: status 3.
    Data(String),
    /// A run that could not be streamed or delivered: status 1.
    Other(String),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(failure) => {
            let (code, message) = match failure {
                Failure::Usage(message) => (2, message),
                Failure::Data(message) => (3, message),
                Failure::Other(message) => (1, message),
            };
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn run() -> Result<ExitCode, Failure> {
    let options = match parse_args(std::env::args_os().skip(1)).map_err(Failure::Usage)? {
        Command::Run(options) => *options,
        Command::Help => {
            println!("{USAGE}\n\n{HELP}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let bars = load_bars(&options)?;
    let strategy = Paced {
        inner: SmaCrossover::new(options.fast, options.slow, options.size)
            .map_err(|e| Failure::Usage(e.to_string()))?,
        delay: options.bar_delay,
    };
    let server = options
        .ws
        .as_deref()
        .map(ws::WsServer::start)
        .transpose()
        .map_err(Failure::Other)?;
    let broker = options
        .redis
        .as_deref()
        .map(|url| broker::Broker::connect(url, options.redis_queue))
        .transpose()
        .map_err(Failure::Usage)?;

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
            .map_err(|e| Failure::Other(e.to_string()))?;
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

/// The bars of `--data`, or the synthetic ones.
fn load_bars(options: &Options) -> Result<Vec<Bar>, Failure> {
    match &options.data {
        // An unreadable file's error names it already; a bad line's does not.
        Some(path) => load_csv(path).map_err(|e| match e {
            CsvError::Io { .. } => Failure::Data(e.to_string()),
            _ => Failure::Data(format!("{path}: {e}")),
        }),
        None => SyntheticBars {
            count: options.bars,
            seed: options.seed,
            ..SyntheticBars::default()
        }
        .generate()
        .map_err(|e| Failure::Usage(e.to_string())),
    }
}

/// The symbol and timeframe of `backtest_start`: as given, or from the data.
fn symbol_and_timeframe(options: &Options, bars: &[Bar]) -> (String, String) {
    let symbol = options
        .symbol
        .clone()
        .unwrap_or_else(|| match &options.data {
            Some(path) => std::path::Path::new(path)
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default(),
            None => SyntheticBars::SYMBOL.to_owned(),
        });
    let timeframe = options
        .timeframe
        .clone()
        .unwrap_or_else(|| timeframe_of(bars).unwrap_or_default().to_owned());
    (symbol, timeframe)
}

/// `value` with `decimals` decimals, never as `-0.00`.
fn fixed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => text,
    }
}

/// Runs the strategy on the bars, streaming to `sink`, and prints the summary.
fn backtest(
    options: &Options,
    bars: &[Bar],
    strategy: Paced<SmaCrossover>,
    sink: Option<SharedSink>,
) -> Result<ExitCode, Failure> {
    let mut runner = BacktestRunner::streaming(sink).progress_every(options.every);
    if let Some(mode) = &options.mode {
        runner = runner.variant(mode.clone());
    }
    if let Some(id) = &options.id {
        runner =
            runner.with_id(BacktestId::new(id).map_err(|e| Failure::Usage(format!("--id: {e}")))?);
    }
    let (symbol, timeframe) = symbol_and_timeframe(options, bars);
    let config = EngineConfig {
        initial_cash: options.cash,
        slippage: options.slippage,
        periods_per_year: options.periods_per_year,
        symbol,
        timeframe,
        max_result_trades: options.max_result_trades,
    };
    let id = runner.id().clone();
    cancel_on_signal(runner.cancel_token().clone());
    match runner.run(&mut ReferenceEngine::new(bars, strategy, config)) {
        Ok(report) => {
            let m = report.metrics;
            eprintln!(
                "{id}: {} bars, {} trade{}, final balance {}, return {} %, drawdown {} %, win \
                 rate {} %, Sharpe {}",
                report.bars,
                m.total_trades,
                if m.total_trades == 1 { "" } else { "s" },
                fixed(m.final_balance, 2),
                fixed(m.return_pct, 2),
                fixed(m.drawdown, 2),
                fixed(m.win_rate, 1),
                fixed(m.sharpe_ratio, 2)
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
