//! The example's command line: its options, their defaults and their messages.

use std::ffi::OsString;
use std::time::Duration;

use backtest_stream::reference::metrics::DEFAULT_PERIODS_PER_YEAR;
use backtest_stream::reference::{EngineConfig, SmaCrossover, SyntheticBars};

pub(crate) const USAGE: &str = "usage: backtest [--data FILE.csv] [--fast N] [--slow N] [--size X] \
[--cash X] [--bars N] [--seed N] [--mode LABEL] [--id ID] [--symbol S] [--timeframe T] \
[--every N] [--slippage X] [--periods-per-year X] [--max-result-trades N] [--no-stream] \
[--ws ADDR [--linger SECS]] [--redis URL [--redis-queue N]] [--bar-delay-us N]";

pub(crate) const HELP: &str = "\
Runs the SMA-crossover strategy and streams the run as JSON Lines on stdout.

Data:
  --data FILE.csv          bars from a CSV file (timestamp,open,high,low,close,volume)
  --bars N                 synthetic bars when there is no --data (default 10000)
  --seed N                 seed of the synthetic bars (default 42)
Strategy and account:
  --fast N, --slow N       SMA lengths (default 10 and 30)
  --size X                 units per trade (default 10)
  --cash X                 starting cash (default 10000)
  --slippage X             price added to buys, taken from sells (default 0)
  --periods-per-year X     Sharpe annualisation (default 252)
Streaming:
  --mode LABEL             the run's variant label (default sma_crossover)
  --id ID                  the run's id (default: a random UUID)
  --symbol S, --timeframe T  shown in backtest_start (default SYNTH and H1; with --data
                           the file's name and the spacing of its first two bars)
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
  -h, --help               this help

Exit status:
  0  the run completed
  1  the run failed or was cancelled, or its events could not all be written
  2  a bad command line (an unknown option, a bad value)
  3  the data: a CSV file that cannot be read or holds a bad line";

pub(crate) struct Options {
    pub(crate) data: Option<String>,
    pub(crate) fast: usize,
    pub(crate) slow: usize,
    pub(crate) size: f64,
    pub(crate) cash: f64,
    pub(crate) bars: usize,
    pub(crate) seed: u64,
    pub(crate) mode: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) symbol: Option<String>,
    pub(crate) timeframe: Option<String>,
    pub(crate) every: u64,
    pub(crate) slippage: f64,
    pub(crate) periods_per_year: f64,
    pub(crate) max_result_trades: Option<usize>,
    pub(crate) stream: bool,
    pub(crate) ws: Option<String>,
    pub(crate) redis: Option<String>,
    pub(crate) redis_queue: Option<usize>,
    pub(crate) linger: Duration,
    pub(crate) bar_delay: Duration,
}

/// What the command line asks for.
pub(crate) enum Command {
    /// Run with these options.
    Run(Box<Options>),
    /// Print the help.
    Help,
}

pub(crate) fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = Options {
        data: None,
        fast: SmaCrossover::DEFAULT_FAST,
        slow: SmaCrossover::DEFAULT_SLOW,
        size: SmaCrossover::DEFAULT_SIZE,
        cash: EngineConfig::default().initial_cash,
        bars: SyntheticBars::default().count,
        seed: SyntheticBars::default().seed,
        mode: None,
        id: None,
        symbol: None,
        timeframe: None,
        every: 100,
        slippage: 0.0,
        periods_per_year: DEFAULT_PERIODS_PER_YEAR,
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
        "--cash" => options.cash = positive(&value).ok_or_else(|| number("a positive number"))?,
        "--bars" => options.bars = value.parse().map_err(|_| number("a count"))?,
        "--seed" => options.seed = value.parse().map_err(|_| number("a seed"))?,
        "--mode" => options.mode = Some(value),
        "--id" => options.id = Some(value),
        "--symbol" => options.symbol = Some(value),
        "--timeframe" => options.timeframe = Some(value),
        "--every" => options.every = value.parse().map_err(|_| number("a count"))?,
        "--slippage" => {
            options.slippage = match value.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => x,
                _ => return Err(number("a price of at least 0")),
            }
        }
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
            options.periods_per_year =
                positive(&value).ok_or_else(|| number("a positive number"))?
        }
        _ => return Err(format!("unknown option {flag}\n{USAGE}")),
    }
    Ok(())
}

/// A finite positive number.
fn positive(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x > 0.0)
}
