//! Turning a `log::Record` into a `log_entry` payload.

use std::fmt::Write as _;

use log::kv::{self, Key, Value, VisitSource};

use crate::wire::{BacktestId, LogEntry, LogLevel, Timestamp};

/// The key-value that names a record's run explicitly: `log::info!(backtest_id = id; ...)`.
pub const BACKTEST_ID_KEY: &str = "backtest_id";
/// The key-value that names a record's function: `log::info!(function = "on_bar"; ...)`.
pub const FUNCTION_KEY: &str = "function";

/// A [`BacktestId`] is a `log` key-value, so a record can name its run directly:
///
/// ```
/// use backtest_stream::wire::BacktestId;
///
/// let run = BacktestId::new("run-1")?;
/// log::info!(backtest_id = run; "belongs to run-1 wherever it is made");
/// # Ok::<(), backtest_stream::wire::InvalidBacktestId>(())
/// ```
impl log::kv::ToValue for BacktestId {
    fn to_value(&self) -> Value<'_> {
        Value::from(self.as_str())
    }
}

/// The last segment of a Rust module path (`my_app::engine::fills` gives `fills`).
pub(crate) fn last_segment(path: &str) -> &str {
    // `rfind(char)` is a fast byte search; a `"::"` pattern would build a substring
    // searcher for every record.
    let mut end = path.len();
    while let Some(colon) = path[..end].rfind(':') {
        if colon > 0 && path.as_bytes()[colon - 1] == b':' {
            return &path[colon + 1..];
        }
        end = colon;
    }
    path
}

/// The fields a record's key-values contribute.
#[derive(Default)]
struct KvFields {
    backtest_id: Option<BacktestId>,
    function: Option<String>,
    /// ` key=value` pairs for every other key-value, appended to the message.
    rest: String,
}

impl<'kvs> VisitSource<'kvs> for KvFields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        match key.as_str() {
            BACKTEST_ID_KEY if self.backtest_id.is_none() => {
                let parsed = match value.to_borrowed_str() {
                    Some(text) => BacktestId::new(text),
                    None => BacktestId::new(value.to_string()),
                };
                match parsed {
                    Ok(id) => self.backtest_id = Some(id),
                    // An invalid id is not dropped: it stays visible in the message.
                    Err(_) => append_pair(&mut self.rest, key.as_str(), &value),
                }
            }
            FUNCTION_KEY if self.function.is_none() => {
                self.function = Some(match value.to_borrowed_str() {
                    Some(text) => text.to_owned(),
                    None => value.to_string(),
                });
            }
            other => append_pair(&mut self.rest, other, &value),
        }
        Ok(())
    }
}

fn append_pair(out: &mut String, key: &str, value: &Value<'_>) {
    // Writing to a String cannot fail.
    let _ = write!(out, " {key}={value}");
}

/// Where a record's id comes from when it has no `backtest_id` key-value.
pub(crate) struct RunContext<'a> {
    pub(crate) backtest_id: &'a BacktestId,
    /// `backtest.<id>`, precomputed.
    pub(crate) logger_name: &'a str,
}

/// Builds the `log_entry` for `record`. The record's own `backtest_id` key-value wins
/// over `run`.
pub(crate) fn from_record(record: &log::Record<'_>, run: Option<RunContext<'_>>) -> LogEntry {
    let mut message = std::fmt::format(*record.args());
    let mut kvs = KvFields::default();
    // Our visitor never fails.
    let _ = record.key_values().visit(&mut kvs);
    message.push_str(&kvs.rest);

    let (backtest_id, logger_name) = match (kvs.backtest_id, run) {
        (Some(id), _) => {
            let name = format!("backtest.{id}");
            (Some(id), name)
        }
        (None, Some(run)) => (Some(run.backtest_id.clone()), run.logger_name.to_owned()),
        (None, None) => (None, record.target().to_owned()),
    };
    let module_path = record.module_path().unwrap_or(record.target());
    LogEntry {
        backtest_id,
        timestamp: Timestamp::now(),
        level: LogLevel::from(record.level()),
        message,
        module: last_segment(module_path).to_owned(),
        function: kvs.function.unwrap_or_default(),
        line: record.line().unwrap_or(0),
        logger_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_segment_of_paths() {
        assert_eq!(last_segment("a::b::c"), "c");
        assert_eq!(last_segment("main"), "main");
        assert_eq!(last_segment(""), "");
        assert_eq!(last_segment("a:b::c:d"), "c:d");
        assert_eq!(last_segment("::"), "");
        assert_eq!(last_segment(":x"), ":x");
    }
}
