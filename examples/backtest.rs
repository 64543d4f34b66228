//! Runs the SMA-crossover strategy on a CSV file or the embedded synthetic data and
//! streams the run as JSON Lines to standard output.
//!
//! ```text
//! cargo run --release --example backtest -- [--data FILE.csv] [--fast 10 --slow 20
//!     --size 1 --cash 10000] [--bars 10000 --seed 42] [--mode vanilla] [--id my-run]
//!     [--symbol EURUSD --timeframe H1] [--every 100] [--slippage 0]
//!     [--periods-per-year 252|365] [--max-result-trades N] [--no-stream]
//! ```
//!
//! Every line on stdout is one event (`backtest_start`, `backtest_progress`, the run's
//! `log_entry` lines for its fills, then `backtest_complete` or `backtest_error`); a
//! summary goes to stderr. Streaming to a WebSocket server is not offered yet.

use std::process::ExitCode;
use std::sync::Arc;

use backtest_stream::{
    BacktestId, BacktestRunner, EngineConfig, JsonLinesConfig, JsonLinesSink, LogBridge,
    OverflowPolicy, ProgressSink, ReferenceEngine, SharedSink, SmaCrossover, SyntheticBars,
    load_csv,
};

const USAGE: &str = "usage: backtest [--data FILE.csv] [--fast N] [--slow N] [--size X] \
[--cash X] [--bars N] [--seed N] [--mode LABEL] [--id ID] [--symbol S] [--timeframe T] \
[--every N] [--slippage X] [--periods-per-year X] [--max-result-trades N] [--no-stream]";

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
}

fn parse_args() -> Result<Options, String> {
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
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-stream" {
            options.stream = false;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| format!("{flag}: {value:?} is not {what}");
        match flag.as_str() {
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
            "--periods-per-year" => {
                options.periods_per_year = Some(value.parse().map_err(|_| number("a number"))?)
            }
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(options)
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
    let options = parse_args()?;
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
    let strategy =
        SmaCrossover::new(options.fast, options.slow, options.size).map_err(|e| e.to_string())?;

    // Block rather than drop: an example's output should be complete.
    let stdout = Arc::new(JsonLinesSink::with_config(
        std::io::stdout(),
        JsonLinesConfig {
            overflow: OverflowPolicy::Block,
            ..JsonLinesConfig::default()
        },
    ));
    let sink: Option<SharedSink> = options.stream.then(|| stdout.clone() as SharedSink);
    // The run's log records (its fills) become its log_entry events.
    if options.stream {
        LogBridge::builder()
            .level(log::LevelFilter::Info)
            .build()
            .try_init()
            .map_err(|e| e.to_string())?;
    }

    let mut runner = BacktestRunner::streaming(sink).progress_every(options.every);
    if let Some(mode) = options.mode {
        runner = runner.variant(mode);
    }
    if let Some(id) = options.id {
        runner = runner.with_id(BacktestId::new(id).map_err(|e| e.to_string())?);
    }
    let config = EngineConfig {
        initial_cash: options.cash,
        slippage: options.slippage,
        // The synthetic data trades every day; a CSV file is taken to be a stock market.
        periods_per_year: options
            .periods_per_year
            .unwrap_or(if options.data.is_some() { 252.0 } else { 365.0 }),
        symbol: options.symbol,
        timeframe: options.timeframe,
        max_result_trades: options.max_result_trades,
    };
    let id = runner.id().clone();
    let outcome = runner.run(&mut ReferenceEngine::new(&bars, strategy, config));
    let _ = stdout.flush();

    match outcome {
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
