//! The event model: the five messages of the wire contract and their JSON form.
//!
//! Every event serializes as `{"type": "<kind>", "data": {...}}` with exactly the field
//! names, order and JSON types of the original system (see `PROTOCOL.md` in the
//! repository and the fixtures under `tests/fixtures/`). Numbers that are not finite are
//! written as `null` and read back as `NaN`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{BacktestId, Results, Timestamp};

/// One message of a backtest's life, as sent to user interfaces.
///
/// ```
/// use backtest_stream::{BacktestError, BacktestId, Event, Timestamp};
///
/// let event = Event::BacktestError(BacktestError {
///     backtest_id: BacktestId::new("run-1")?,
///     error: "Strategy execution failed".into(),
///     error_details: "division by zero".into(),
///     timestamp: Timestamp::from_unix_millis(1_705_314_645_000).unwrap(),
/// });
/// assert_eq!(
///     event.to_json(),
///     r#"{"type":"backtest_error","data":{"backtest_id":"run-1","error":"Strategy execution failed","error_details":"division by zero","timestamp":"2024-01-15T10:30:45.000Z"}}"#
/// );
/// assert_eq!(Event::from_json(&event.to_json()).unwrap(), event);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// `backtest_start`: a run began.
    BacktestStart(BacktestStart),
    /// `backtest_progress`: a run advanced (typically every 100 bars).
    BacktestProgress(BacktestProgress),
    /// `log_entry`: a log record, usually tied to a run.
    LogEntry(LogEntry),
    /// `backtest_complete`: a run finished successfully, with its results.
    BacktestComplete(BacktestComplete),
    /// `backtest_error`: a run failed.
    BacktestError(BacktestError),
}

/// The kind of an [`Event`], as written in its `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `backtest_start`
    BacktestStart,
    /// `backtest_progress`
    BacktestProgress,
    /// `log_entry`
    LogEntry,
    /// `backtest_complete`
    BacktestComplete,
    /// `backtest_error`
    BacktestError,
}

impl EventKind {
    /// All kinds, in lifecycle order.
    pub const ALL: [EventKind; 5] = [
        EventKind::BacktestStart,
        EventKind::BacktestProgress,
        EventKind::LogEntry,
        EventKind::BacktestComplete,
        EventKind::BacktestError,
    ];

    /// The wire name (`"backtest_start"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BacktestStart => "backtest_start",
            EventKind::BacktestProgress => "backtest_progress",
            EventKind::LogEntry => "log_entry",
            EventKind::BacktestComplete => "backtest_complete",
            EventKind::BacktestError => "backtest_error",
        }
    }

    /// Whether this kind ends a run (`backtest_complete` or `backtest_error`).
    pub fn is_terminal(self) -> bool {
        matches!(self, EventKind::BacktestComplete | EventKind::BacktestError)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::BacktestStart(_) => EventKind::BacktestStart,
            Event::BacktestProgress(_) => EventKind::BacktestProgress,
            Event::LogEntry(_) => EventKind::LogEntry,
            Event::BacktestComplete(_) => EventKind::BacktestComplete,
            Event::BacktestError(_) => EventKind::BacktestError,
        }
    }

    /// The run this event belongs to; `None` only for a log record made outside any run.
    pub fn backtest_id(&self) -> Option<&BacktestId> {
        match self {
            Event::BacktestStart(e) => Some(&e.backtest_id),
            Event::BacktestProgress(e) => Some(&e.backtest_id),
            Event::LogEntry(e) => e.backtest_id.as_ref(),
            Event::BacktestComplete(e) => Some(&e.backtest_id),
            Event::BacktestError(e) => Some(&e.backtest_id),
        }
    }

    /// When the event was made.
    pub fn timestamp(&self) -> Timestamp {
        match self {
            Event::BacktestStart(e) => e.timestamp,
            Event::BacktestProgress(e) => e.timestamp,
            Event::LogEntry(e) => e.timestamp,
            Event::BacktestComplete(e) => e.timestamp,
            Event::BacktestError(e) => e.timestamp,
        }
    }

    /// Whether this event ends its run (`backtest_complete` or `backtest_error`).
    pub fn is_terminal(&self) -> bool {
        self.kind().is_terminal()
    }

    /// Appends the event's JSON (`{"type":...,"data":{...}}`) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // The same bytes serde_json writes for the event; the events are written by
        // hand (see `json_text`), which costs a fraction of serde's generic path.
        use crate::json_text::{f64_or_null, string, u64};
        match self {
            Event::BacktestProgress(p) => {
                out.extend_from_slice(br#"{"type":"backtest_progress","data":{"backtest_id":"#);
                string(out, p.backtest_id.as_str());
                out.extend_from_slice(br#","progress":"#);
                f64_or_null(out, p.progress);
                out.extend_from_slice(br#","status":"#);
                string(out, &p.status);
                out.extend_from_slice(br#","bars_processed":"#);
                u64(out, p.bars_processed);
                out.extend_from_slice(br#","total_bars":"#);
                u64(out, p.total_bars);
                out.extend_from_slice(br#","current_date":"#);
                string(out, &p.current_date);
                out.extend_from_slice(br#","trades_count":"#);
                u64(out, p.trades_count);
                out.extend_from_slice(br#","current_pnl":"#);
                f64_or_null(out, p.current_pnl);
                out.extend_from_slice(br#","timestamp":"#);
                p.timestamp.write_json(out);
                out.extend_from_slice(b"}}");
            }
            Event::LogEntry(l) => {
                out.extend_from_slice(br#"{"type":"log_entry","data":{"backtest_id":"#);
                match &l.backtest_id {
                    Some(id) => string(out, id.as_str()),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(br#","timestamp":"#);
                l.timestamp.write_json(out);
                out.extend_from_slice(br#","level":""#);
                out.extend_from_slice(l.level.as_str().as_bytes());
                out.extend_from_slice(br#"","message":"#);
                string(out, &l.message);
                out.extend_from_slice(br#","module":"#);
                string(out, &l.module);
                out.extend_from_slice(br#","function":"#);
                string(out, &l.function);
                out.extend_from_slice(br#","line":"#);
                u64(out, u64::from(l.line));
                out.extend_from_slice(br#","logger_name":"#);
                string(out, &l.logger_name);
                out.extend_from_slice(b"}}");
            }
            Event::BacktestStart(s) => {
                out.extend_from_slice(br#"{"type":"backtest_start","data":{"backtest_id":"#);
                string(out, s.backtest_id.as_str());
                out.extend_from_slice(br#","variant":"#);
                string(out, &s.variant);
                out.extend_from_slice(br#","symbol":"#);
                string(out, &s.symbol);
                out.extend_from_slice(br#","timeframe":"#);
                string(out, &s.timeframe);
                out.extend_from_slice(br#","start_date":"#);
                string(out, &s.start_date);
                out.extend_from_slice(br#","end_date":"#);
                string(out, &s.end_date);
                out.extend_from_slice(br#","timestamp":"#);
                s.timestamp.write_json(out);
                out.extend_from_slice(b"}}");
            }
            Event::BacktestError(e) => {
                out.extend_from_slice(br#"{"type":"backtest_error","data":{"backtest_id":"#);
                string(out, e.backtest_id.as_str());
                out.extend_from_slice(br#","error":"#);
                string(out, &e.error);
                out.extend_from_slice(br#","error_details":"#);
                string(out, &e.error_details);
                out.extend_from_slice(br#","timestamp":"#);
                e.timestamp.write_json(out);
                out.extend_from_slice(b"}}");
            }
            Event::BacktestComplete(c) => {
                out.extend_from_slice(br#"{"type":"backtest_complete","data":{"backtest_id":"#);
                string(out, c.backtest_id.as_str());
                out.extend_from_slice(br#","final_balance":"#);
                f64_or_null(out, c.final_balance);
                out.extend_from_slice(br#","total_trades":"#);
                u64(out, c.total_trades);
                out.extend_from_slice(br#","win_rate":"#);
                f64_or_null(out, c.win_rate);
                out.extend_from_slice(br#","sharpe_ratio":"#);
                f64_or_null(out, c.sharpe_ratio);
                out.extend_from_slice(br#","drawdown":"#);
                f64_or_null(out, c.drawdown);
                out.extend_from_slice(br#","return_pct":"#);
                f64_or_null(out, c.return_pct);
                out.extend_from_slice(br#","duration_seconds":"#);
                f64_or_null(out, c.duration_seconds);
                out.extend_from_slice(br#","timestamp":"#);
                c.timestamp.write_json(out);
                out.extend_from_slice(br#","results":"#);
                c.results.write_json(out);
                out.extend_from_slice(b"}}");
            }
        }
    }

    /// The event's JSON text (`{"type":...,"data":{...}}`).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        // Only valid UTF-8 is written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Parses an event from its JSON text. Unknown keys (such as a frame's `topic` and
    /// `seq`) are ignored.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// `backtest_start`: broadcast when a backtest begins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestStart {
    /// The run.
    pub backtest_id: BacktestId,
    /// The variant or mode of the run (`"vanilla"`, `"spiced"`, ...): a free label.
    pub variant: String,
    /// The traded symbol (`"EURUSD"`).
    pub symbol: String,
    /// The bar timeframe (`"H1"`).
    pub timeframe: String,
    /// The first date of the data, as the caller writes it (`"2023-01-01"`).
    pub start_date: String,
    /// The last date of the data (`"2023-12-31"`).
    pub end_date: String,
    /// When the run began.
    pub timestamp: Timestamp,
}

/// `backtest_progress`: broadcast during a run (typically every 100 bars).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestProgress {
    /// The run.
    pub backtest_id: BacktestId,
    /// Percent done, 0 to 100.
    #[serde(with = "finite_or_null")]
    pub progress: f64,
    /// A human-readable status (`"Processing bar 5000/10000"`).
    pub status: String,
    /// Bars processed so far.
    pub bars_processed: u64,
    /// Bars in the whole run.
    pub total_bars: u64,
    /// The date of the current bar (`"2023-06-15"`).
    pub current_date: String,
    /// Trades so far.
    pub trades_count: u64,
    /// Profit and loss so far.
    #[serde(with = "finite_or_null")]
    pub current_pnl: f64,
    /// When the update was made.
    pub timestamp: Timestamp,
}

/// `log_entry`: one log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The run the record belongs to; `null` for a record made outside any run.
    pub backtest_id: Option<BacktestId>,
    /// When the record was made.
    pub timestamp: Timestamp,
    /// The level: `TRACE`, `DEBUG`, `INFO`, `WARNING` or `ERROR`.
    pub level: LogLevel,
    /// The formatted message.
    pub message: String,
    /// The module that logged (the last segment of a Rust module path).
    pub module: String,
    /// The function that logged, when known (empty otherwise).
    pub function: String,
    /// The source line, `0` when unknown.
    pub line: u32,
    /// The logger's name (`backtest.<id>` for a run's records).
    pub logger_name: String,
}

/// `backtest_complete`: broadcast when a run finishes successfully.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestComplete {
    /// The run.
    pub backtest_id: BacktestId,
    /// The account balance at the end.
    #[serde(with = "finite_or_null")]
    pub final_balance: f64,
    /// Closed trades.
    pub total_trades: u64,
    /// Winning trades in percent; not a number (`null`) without trades.
    #[serde(with = "finite_or_null")]
    pub win_rate: f64,
    /// Annualised Sharpe ratio; `null` when it cannot be computed.
    #[serde(with = "finite_or_null")]
    pub sharpe_ratio: f64,
    /// Maximum drawdown in percent, a positive number.
    #[serde(with = "finite_or_null")]
    pub drawdown: f64,
    /// Total return in percent.
    #[serde(with = "finite_or_null")]
    pub return_pct: f64,
    /// Wall-clock duration of the run in seconds.
    #[serde(with = "finite_or_null")]
    pub duration_seconds: f64,
    /// When the run finished.
    pub timestamp: Timestamp,
    /// Extra results: an open JSON object (trade list, parameters, ...), its trade list
    /// kept typed until the event is written (see [`Results`]).
    pub results: Results,
}

/// `backtest_error`: broadcast when a run fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestError {
    /// The run.
    pub backtest_id: BacktestId,
    /// A short description (`"Strategy execution failed"`).
    pub error: String,
    /// Details: the error chain, a panic message and location, ...
    pub error_details: String,
    /// When the run failed.
    pub timestamp: Timestamp,
}

/// The level of a [`LogEntry`], named as in the original system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    /// `TRACE` (Rust's lowest level).
    #[serde(rename = "TRACE")]
    Trace,
    /// `DEBUG`
    #[serde(rename = "DEBUG")]
    Debug,
    /// `INFO`
    #[serde(rename = "INFO")]
    Info,
    /// `WARNING` (Rust's `Warn`).
    #[serde(rename = "WARNING", alias = "WARN")]
    Warning,
    /// `ERROR` (also read from Python's `CRITICAL`).
    #[serde(rename = "ERROR", alias = "CRITICAL")]
    Error,
}

impl LogLevel {
    /// The wire name (`"INFO"`, `"WARNING"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<log::Level> for LogLevel {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warning,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

impl From<LogLevel> for log::Level {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => log::Level::Error,
            LogLevel::Warning => log::Level::Warn,
            LogLevel::Info => log::Level::Info,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Trace => log::Level::Trace,
        }
    }
}

/// Serde adapter for `f64` fields: non-finite values are written as `null`, and `null`
/// reads back as `NaN`.
pub(crate) mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else {
            serializer.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}
