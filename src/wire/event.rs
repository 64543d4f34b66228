//! The event model: the five messages of a backtest's life.
//!
//! Every event serializes as `{"type": "<kind>", "data": {...}}` with exactly the field
//! names, order and JSON types of the original system (the fixtures under
//! `tests/fixtures/` are its samples). Numbers that are not finite are written as `null`
//! and read back as `NaN`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::wire::id::BacktestId;
use crate::wire::results::Results;
use crate::wire::timestamp::Timestamp;

/// One message of a backtest's life, as sent to user interfaces.
///
/// ```
/// use backtest_stream::wire::{BacktestError, BacktestId, Event, Timestamp};
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

    /// The kind whose wire name is `name`, if any.
    ///
    /// ```
    /// use backtest_stream::wire::EventKind;
    ///
    /// assert_eq!(EventKind::from_name("log_entry"), Some(EventKind::LogEntry));
    /// assert_eq!(EventKind::from_name("pong"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
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
    #[serde(with = "crate::wire::finite")]
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
    #[serde(with = "crate::wire::finite")]
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
    #[serde(with = "crate::wire::finite")]
    pub final_balance: f64,
    /// Closed trades.
    pub total_trades: u64,
    /// Winning trades in percent; not a number (`null`) without trades.
    #[serde(with = "crate::wire::finite")]
    pub win_rate: f64,
    /// Annualised Sharpe ratio; `null` when it cannot be computed.
    #[serde(with = "crate::wire::finite")]
    pub sharpe_ratio: f64,
    /// Maximum drawdown in percent, a positive number.
    #[serde(with = "crate::wire::finite")]
    pub drawdown: f64,
    /// Total return in percent.
    #[serde(with = "crate::wire::finite")]
    pub return_pct: f64,
    /// Wall-clock duration of the run in seconds.
    #[serde(with = "crate::wire::finite")]
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
