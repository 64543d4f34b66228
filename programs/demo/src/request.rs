//! A run request (`POST /api/v1/backtest/run`): its JSON body read and checked into a
//! [`RunSpec`]; every error names the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use backtest_stream::reference::{self, EngineConfig, SmaCrossover, SyntheticBars};
use backtest_stream::wire::{BacktestId, Timestamp};
use serde_json::{Map, Value};
use time::{Date, Month, OffsetDateTime, Time};

use crate::error::ApiError;
use crate::runs::{DataSource, RunSpec};

/// Defaults of a run request.
pub const DEFAULT_BARS: u64 = 5_000;
/// 5,000 bars × 3 ms: a default run takes about 15 s.
pub const DEFAULT_BAR_DELAY_US: u64 = 3_000;
/// The timeframe of synthetic bars unless the request names one.
const DEFAULT_TIMEFRAME: &str = "H1";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3_600);
/// The largest synthetic data set a request may ask for.
pub const MAX_BARS: u64 = 2_000_000;
/// The longest pause per bar (one second).
pub const MAX_BAR_DELAY_US: u64 = 1_000_000;

const FIELDS: &[&str] = &[
    "variant",
    "symbol",
    "timeframe",
    "start_date",
    "end_date",
    "bars",
    "bar_delay_us",
    "backtest_id",
    "fast",
    "slow",
    "size",
    "cash",
    "seed",
    "data_path",
];

/// Validates a run request; every field is optional.
///
/// A `data_path` is kept as given (`DataSource::Csv` without its file): the caller
/// opens it below the data directory. A paced run (`bar_delay_us` > 0) of more than
/// `max_run` (`bars × bar_delay_us`) is refused, naming `bar_delay_us`.
pub fn parse_request(body: &[u8], max_run: Duration) -> Result<RunSpec, ApiError> {
    let obj = body_object(body)?;
    let req = Fields(&obj);
    let id = run_id(&req)?;
    let variant = req
        .string("variant", 64)?
        .unwrap_or_else(|| "vanilla".into());
    let symbol = req.string("symbol", 32)?;
    let timeframe = match req.string("timeframe", 8)? {
        Some(name) => Some(reference::timeframe(&name).ok_or_else(|| {
            ApiError::field(
                "timeframe",
                format!("unknown timeframe `{name}`; use M1, M5, M15, M30, H1, H4 or D1"),
            )
        })?),
        None => None,
    };
    let start = req.date("start_date")?;
    let end = req.date("end_date")?;
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            return Err(ApiError::field("end_date", "must be after start_date"));
        }
    }
    let bar_delay_us = req
        .uint("bar_delay_us", 0, MAX_BAR_DELAY_US)?
        .unwrap_or(DEFAULT_BAR_DELAY_US);
    let (fast, slow) = sma_lengths(&req)?;
    let size = req.positive("size")?.unwrap_or(SmaCrossover::DEFAULT_SIZE);
    let cash = req
        .positive("cash")?
        .unwrap_or(EngineConfig::default().initial_cash);
    let (start_ts, end_ts) = (start.map(midnight), end.map(midnight));
    let data = data_source(&req, start_ts, end_ts, timeframe)?;
    // Synthetic bars are named SYNTH and H1 unless told; a file by its name, and by the
    // spacing of its bars (found when it is read).
    let (symbol, timeframe) = match &data {
        DataSource::Synthetic { .. } => (
            symbol.unwrap_or_else(|| SyntheticBars::SYMBOL.into()),
            timeframe
                .map_or(DEFAULT_TIMEFRAME, |(name, _)| name)
                .to_owned(),
        ),
        DataSource::Csv { path, .. } => (
            symbol.unwrap_or_else(|| file_stem(path)),
            timeframe.map_or("", |(name, _)| name).to_owned(),
        ),
    };
    let bar_delay = Duration::from_micros(bar_delay_us);
    check_duration(&data, bar_delay, max_run)?;
    let start_date = match (start, &data) {
        (Some(d), _) => d.to_string(),
        (None, DataSource::Synthetic { start, .. }) => start.date_string(),
        (None, DataSource::Csv { .. }) => String::new(),
    };
    Ok(RunSpec {
        id,
        variant,
        symbol,
        timeframe,
        start_date,
        end_date: end.map(|d| d.to_string()).unwrap_or_default(),
        start: start_ts,
        end: end_ts,
        data,
        bar_delay,
        max_run,
        fast: fast as usize,
        slow: slow as usize,
        size,
        cash,
    })
}

/// The body as a JSON object (an empty body is `{}`), with only the known fields.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not UTF-8: {e}"),
        )
    })?;
    let value: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not valid JSON: {e}"),
            )
        })?
    };
    let Value::Object(obj) = value else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !FIELDS.contains(k))
        .collect();
    if let Some(first) = unknown.first() {
        return Err(ApiError::field(
            first,
            format!(
                "unknown field{} {}; the fields are: {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                FIELDS.join(", ")
            ),
        ));
    }
    Ok(obj)
}

/// Refuses a paced run longer than `max_run` (a CSV run without `bars` is checked
/// when its file is read).
fn check_duration(data: &DataSource, delay: Duration, max_run: Duration) -> Result<(), ApiError> {
    let bars = match data {
        DataSource::Synthetic { count, .. } => *count as u128,
        DataSource::Csv { limit: Some(n), .. } => *n as u128,
        DataSource::Csv { limit: None, .. } => return Ok(()),
    };
    let total_us = bars.saturating_mul(delay.as_micros());
    if total_us <= max_run.as_micros() {
        return Ok(());
    }
    Err(ApiError::field(
        "bar_delay_us",
        format!(
            "{bars} bars x bar_delay_us {} would take {} s, more than the {} s a paced run may \
             take (--max-run-seconds); lower bar_delay_us or bars",
            delay.as_micros(),
            total_us.div_ceil(1_000_000),
            max_run.as_secs()
        ),
    ))
}

/// `backtest_id`, or a random one.
fn run_id(req: &Fields<'_>) -> Result<BacktestId, ApiError> {
    let Some(id) = req.string("backtest_id", 128)? else {
        return Ok(BacktestId::random());
    };
    // Ids appear in URLs (`/api/v1/backtest/{id}`): keep them plain.
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
    {
        return Err(ApiError::field(
            "backtest_id",
            format!("may hold only letters, digits and - _ . : (not {bad:?})"),
        ));
    }
    BacktestId::new(&id).map_err(|e| ApiError::field("backtest_id", e.to_string()))
}

/// `fast` and `slow`, the SMA lengths (`fast` < `slow`).
fn sma_lengths(req: &Fields<'_>) -> Result<(u64, u64), ApiError> {
    let fast = req
        .uint("fast", 1, 100_000)?
        .unwrap_or(SmaCrossover::DEFAULT_FAST as u64);
    let slow = req
        .uint("slow", 1, 100_000)?
        .unwrap_or(SmaCrossover::DEFAULT_SLOW as u64);
    if fast >= slow {
        return Err(ApiError::field(
            if req.0.contains_key("slow") {
                "slow"
            } else {
                "fast"
            },
            format!("slow ({slow}) must be greater than fast ({fast})"),
        ));
    }
    Ok((fast, slow))
}

/// Where the bars come from: `data_path`, or synthetic bars from `start` (or the
/// default), `bars` of them or as many as reach `end` (not both: the run would stop at
/// the date with fewer bars than asked).
fn data_source(
    req: &Fields<'_>,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    timeframe: Option<(&str, Duration)>,
) -> Result<DataSource, ApiError> {
    let bars = req.uint("bars", 1, MAX_BARS)?;
    let seed = req.uint("seed", 0, u64::MAX)?.unwrap_or(42);
    if let Some(path) = req.string("data_path", 4096)? {
        return Ok(DataSource::Csv {
            path: PathBuf::from(path),
            limit: bars.map(|b| b as usize),
            file: None,
        });
    }
    let first = start.unwrap_or_else(synthetic_start);
    let (timeframe, interval) = timeframe.unwrap_or((DEFAULT_TIMEFRAME, DEFAULT_INTERVAL));
    let count = match (bars, end) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "end_date",
                "give `bars` or `end_date` for synthetic data, not both: the bars run from \
                 start_date, `bars` of them or as many as reach end_date",
            ));
        }
        (Some(b), None) => b,
        (None, Some(end)) => {
            let span = end.unix_millis().saturating_sub(first.unix_millis()).max(0) as u128;
            let n = span.div_ceil(interval.as_millis().max(1)) as u64;
            if n > MAX_BARS {
                return Err(ApiError::field(
                    "end_date",
                    format!("the range holds {n} {timeframe} bars, more than {MAX_BARS}"),
                ));
            }
            n.max(1)
        }
        (None, None) => DEFAULT_BARS,
    };
    Ok(DataSource::Synthetic {
        count: count as usize,
        seed,
        start: first,
        interval,
    })
}

/// The first bar of the default synthetic data (2024-01-01).
fn synthetic_start() -> Timestamp {
    backtest_stream::reference::SyntheticBars::default().start
}

fn midnight(date: Date) -> Timestamp {
    Timestamp::from_offset_date_time(OffsetDateTime::new_utc(date, Time::MIDNIGHT))
}

/// The name of a data file without its directory and extension (`EURUSD_H1` for
/// `fx/EURUSD_H1.csv`): the run's symbol unless the request names one.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().chars().take(32).collect())
        .unwrap_or_default()
}

/// Typed access to the request's fields; `null` counts as absent.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str, max_len: usize) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    Ok(None)
                } else if s.len() > max_len {
                    Err(ApiError::field(
                        name,
                        format!("must be at most {max_len} bytes"),
                    ))
                } else {
                    Ok(Some(s.to_owned()))
                }
            }
            Some(other) => Err(ApiError::field(
                name,
                format!("must be a string, not {}", kind(other)),
            )),
        }
    }

    /// A whole number from `min` to `max`; `100.0` is a whole number, `1e12` one out of
    /// range, `1.5` none.
    fn uint(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let refuse = |what: String| Err(ApiError::field(name, what));
        let Value::Number(number) = value else {
            return refuse(format!(
                "must be a whole number from {min} to {max}, not {}",
                kind(value)
            ));
        };
        match whole(number) {
            Whole::Exact(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Whole::Exact(n) => refuse(format!("must be from {min} to {max}, not {n}")),
            Whole::Negative => refuse(format!("must be from {min} to {max}, not {number}")),
            Whole::TooLarge => refuse(format!(
                "must be from {min} to {max}; the number given is far larger"
            )),
            Whole::Fraction => refuse(format!(
                "must be a whole number from {min} to {max}, not {number}"
            )),
        }
    }

    fn positive(&self, name: &str) -> Result<Option<f64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 && x <= 1e12 => Ok(Some(x)),
            _ => Err(ApiError::field(
                name,
                format!("must be a positive number (at most 1e12), not {value}"),
            )),
        }
    }

    fn date(&self, name: &str) -> Result<Option<Date>, ApiError> {
        let Some(text) = self.string(name, 10)? else {
            return Ok(None);
        };
        parse_date(&text).map(Some).ok_or_else(|| {
            ApiError::field(name, format!("must be a date YYYY-MM-DD, not `{text}`"))
        })
    }
}

fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    (1970..=9999).contains(&date.year()).then_some(date)
}

/// What a JSON number is as a count.
enum Whole {
    /// A whole number that fits (`100`, `100.0`, `1e12`).
    Exact(u64),
    /// A whole number below zero.
    Negative,
    /// A whole number too large to be held exactly (beyond 2^53 as a float).
    TooLarge,
    /// A number with a fraction.
    Fraction,
}

fn whole(number: &serde_json::Number) -> Whole {
    if let Some(n) = number.as_u64() {
        return Whole::Exact(n);
    }
    if number.as_i64().is_some() {
        return Whole::Negative;
    }
    let x = number.as_f64().unwrap_or(f64::NAN);
    // Floats hold every whole number up to 2^53 exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match x {
        _ if x.fract() != 0.0 || !x.is_finite() => Whole::Fraction,
        _ if x < 0.0 => Whole::Negative,
        _ if x > EXACT => Whole::TooLarge,
        _ => Whole::Exact(x as u64),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
