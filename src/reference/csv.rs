//! Loading bars from CSV files.
//!
//! The file has a header line naming the columns `timestamp`, `open`, `high`, `low`,
//! `close` and `volume` (in any order, names case-insensitive, other columns ignored),
//! then one bar per line. Timestamps are ISO 8601 in UTC: RFC 3339
//! (`2024-01-15T10:30:00Z`, any precision, any offset, converted to UTC), or without a
//! zone (`2024-01-15T10:30:00`, `2024-01-15 10:30:00`, taken as UTC), or a bare date
//! (`2024-01-15`, midnight UTC). Timestamps must ascend strictly; prices must be positive
//! with `low` ≤ `open`, `close` ≤ `high`, and volumes not negative. Every error names the
//! line (1 is the header) and, where it applies, the column.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::reference::Bar;
use crate::wire::Timestamp;

/// The columns a bar file must have, in the order of [`Bar`]'s fields.
pub const CSV_COLUMNS: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];

/// Why a CSV file could not be loaded as bars.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input is empty: not even a header line.
    #[error("the CSV input is empty: expected the header `timestamp,open,high,low,close,volume`")]
    Empty,
    /// The header has no column of this name.
    #[error(
        "line 1: missing column `{column}` in the header (expected `timestamp,open,high,low,close,volume`)"
    )]
    MissingColumn {
        /// The missing column.
        column: &'static str,
    },
    /// The header is one field holding another separator than the comma (a file
    /// written with `;` or tabs).
    #[error(
        "line 1: the header is separated by {separator:?}, not by commas: expected `timestamp,open,high,low,close,volume`"
    )]
    Separator {
        /// The separator found in the header.
        separator: char,
    },
    /// The header has no data lines after it.
    #[error("the CSV input has a header but no bars")]
    NoBars,
    /// A line is not valid CSV (wrong number of fields, bad UTF-8, ...).
    #[error("line {line}: malformed CSV: {detail}", detail = describe(source))]
    Malformed {
        /// The line (1 is the header).
        line: u64,
        /// The parser's error.
        source: csv::Error,
    },
    /// A price or volume is not a finite number.
    #[error("line {line}, column `{column}`: {value:?} is not a finite number")]
    BadNumber {
        /// The line (1 is the header).
        line: u64,
        /// The column.
        column: &'static str,
        /// The text found.
        value: String,
    },
    /// A price that is not positive, a `high` or `low` that does not bound the bar, or a
    /// negative volume.
    #[error("line {line}, column `{column}`: {reason}")]
    BadBar {
        /// The line (1 is the header).
        line: u64,
        /// The column at fault.
        column: &'static str,
        /// What is wrong, with the values.
        reason: String,
    },
    /// A timestamp is not ISO 8601.
    #[error("line {line}, column `timestamp`: {value:?} is not an ISO 8601 UTC timestamp")]
    BadTimestamp {
        /// The line (1 is the header).
        line: u64,
        /// The text found.
        value: String,
    },
    /// A timestamp is not after the one before it.
    #[error(
        "line {line}, column `timestamp`: {timestamp} is not after {previous} (line {previous_line}); timestamps must ascend"
    )]
    NotAscending {
        /// The line (1 is the header).
        line: u64,
        /// This line's timestamp.
        timestamp: Timestamp,
        /// The timestamp of the line before.
        previous: Timestamp,
        /// The line before.
        previous_line: u64,
    },
}

/// Loads bars from a CSV file in the format of [`read_csv`].
///
/// ```no_run
/// let bars = backtest_stream::reference::load_csv("data/EURUSD_H1.csv")?;
/// println!("{} bars from {}", bars.len(), bars[0].timestamp.date_string());
/// # Ok::<(), backtest_stream::reference::CsvError>(())
/// ```
pub fn load_csv(path: impl AsRef<Path>) -> Result<Vec<Bar>, CsvError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| CsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_csv(file).map_err(|error| match error {
        CsvError::Malformed { source, .. } if source.is_io_error() => {
            let source = match source.into_kind() {
                csv::ErrorKind::Io(io) => io,
                other => std::io::Error::other(format!("{other:?}")),
            };
            CsvError::Io {
                path: path.to_owned(),
                source,
            }
        }
        other => other,
    })
}

/// Reads bars from CSV text.
///
/// The text has a header line naming the columns `timestamp`, `open`, `high`, `low`,
/// `close` and `volume` (in any order, names case-insensitive, other columns ignored),
/// then one bar per line. Timestamps are ISO 8601 in UTC: RFC 3339
/// (`2024-01-15T10:30:00Z`, any precision, any offset, converted to UTC), or without a
/// zone (`2024-01-15T10:30:00`, `2024-01-15 10:30:00`, taken as UTC), or a bare date
/// (`2024-01-15`, midnight UTC). Timestamps must ascend strictly; prices must be
/// positive finite numbers with `low` ≤ `open`, `close` ≤ `high`; volumes finite and not
/// negative. Every error names the line (1 is the header) and, where it applies, the
/// column.
///
/// ```
/// use backtest_stream::reference::{CsvError, read_csv};
///
/// let text = "timestamp,open,high,low,close,volume\n\
///             2024-01-15T10:00:00Z,1.0921,1.0930,1.0915,1.0927,1250\n\
///             2024-01-15T11:00:00Z,1.0927,1.0941,1.0920,1.0938,980\n";
/// let bars = read_csv(text.as_bytes())?;
/// assert_eq!(bars.len(), 2);
/// assert_eq!(bars[1].close, 1.0938);
///
/// let bad = "timestamp,open,high,low,close,volume\n2024-01-15T10:00:00Z,1.09,x,1.08,1.09,1\n";
/// let err = read_csv(bad.as_bytes()).unwrap_err();
/// assert_eq!(err.to_string(), r#"line 2, column `high`: "x" is not a finite number"#);
/// # Ok::<(), CsvError>(())
/// ```
pub fn read_csv(input: impl Read) -> Result<Vec<Bar>, CsvError> {
    read_csv_range(input, None, None, None)
}

/// Reads the bars of CSV text (the format of [`read_csv`]) from `from` (inclusive) until
/// `until` (exclusive), at most `max_bars` of them, and stops reading as soon as it has
/// them: the lines after the last bar needed are never read (a run of ten bars reads the
/// first lines of a large file, not the file), nor checked.
///
/// The lines before `from` are read and checked. An input without any bar line is
/// [`CsvError::NoBars`]; an input whose bars all lie outside the range gives no bars.
///
/// ```
/// use backtest_stream::reference::read_csv_range;
///
/// let text = "timestamp,open,high,low,close,volume\n\
///             2024-01-15T10:00:00Z,1.0921,1.0930,1.0915,1.0927,1250\n\
///             2024-01-15T11:00:00Z,1.0927,1.0941,1.0920,1.0938,980\n\
///             this line is never read\n";
/// let bars = read_csv_range(text.as_bytes(), None, None, Some(2))?;
/// assert_eq!(bars.len(), 2);
/// # Ok::<(), backtest_stream::reference::CsvError>(())
/// ```
pub fn read_csv_range(
    input: impl Read,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
    max_bars: Option<usize>,
) -> Result<Vec<Bar>, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    let malformed = |source: csv::Error| CsvError::Malformed {
        line: source.position().map_or(0, |p| p.line()),
        source,
    };
    if !reader.read_record(&mut record).map_err(malformed)? {
        return Err(CsvError::Empty);
    }
    if let [only] = record.iter().collect::<Vec<_>>()[..] {
        if let Some(separator) = only.chars().find(|c| matches!(c, ';' | '\t' | '|')) {
            return Err(CsvError::Separator { separator });
        }
    }
    let mut index = [0usize; 6];
    for (slot, column) in index.iter_mut().zip(CSV_COLUMNS) {
        *slot = record
            .iter()
            .position(|name| {
                name.trim_start_matches('\u{feff}')
                    .eq_ignore_ascii_case(column)
            })
            .ok_or(CsvError::MissingColumn { column })?;
    }
    let mut bars = Vec::new();
    let mut previous: Option<(Timestamp, u64)> = None;
    let max_bars = max_bars.unwrap_or(usize::MAX);
    while bars.len() < max_bars && reader.read_record(&mut record).map_err(malformed)? {
        let line = record.position().map_or(0, |p| p.line());
        // A record has as many fields as the header (the reader is not flexible).
        let field = |i: usize| record.get(index[i]).unwrap_or("");
        let number = |i: usize| -> Result<f64, CsvError> {
            let text = field(i);
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(value),
                _ => Err(CsvError::BadNumber {
                    line,
                    column: CSV_COLUMNS[i],
                    value: text.chars().take(64).collect(),
                }),
            }
        };
        let timestamp = parse_timestamp(field(0)).ok_or_else(|| CsvError::BadTimestamp {
            line,
            value: field(0).chars().take(64).collect(),
        })?;
        if let Some((previous, previous_line)) = previous {
            if timestamp <= previous {
                return Err(CsvError::NotAscending {
                    line,
                    timestamp,
                    previous,
                    previous_line,
                });
            }
        }
        previous = Some((timestamp, line));
        let bar = Bar {
            timestamp,
            open: number(1)?,
            high: number(2)?,
            low: number(3)?,
            close: number(4)?,
            volume: number(5)?,
        };
        check_bar(&bar, line)?;
        if until.is_some_and(|until| timestamp >= until) {
            // Timestamps ascend: no later line is in the range.
            break;
        }
        if from.is_none_or(|from| timestamp >= from) {
            bars.push(bar);
        }
    }
    if previous.is_none() {
        return Err(CsvError::NoBars);
    }
    Ok(bars)
}

/// Refuses a bar whose prices are not positive, whose `high` and `low` do not bound its
/// other prices, or whose volume is negative.
fn check_bar(bar: &Bar, line: u64) -> Result<(), CsvError> {
    let bad = |column: &'static str, reason: String| CsvError::BadBar {
        line,
        column,
        reason,
    };
    let prices = [
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", bar.close),
    ];
    if let Some((column, price)) = prices.into_iter().find(|(_, p)| *p <= 0.0) {
        return Err(bad(column, format!("{price} is not a positive price")));
    }
    if bar.volume < 0.0 {
        return Err(bad("volume", format!("{} is negative", bar.volume)));
    }
    for (name, price) in [("low", bar.low), ("open", bar.open), ("close", bar.close)] {
        if bar.high < price {
            return Err(bad("high", format!("{} is below {name} {price}", bar.high)));
        }
    }
    for (name, price) in [("open", bar.open), ("close", bar.close)] {
        if bar.low > price {
            return Err(bad("low", format!("{} is above {name} {price}", bar.low)));
        }
    }
    Ok(())
}

/// What is wrong with a line the CSV parser refused, without the parser's own position
/// (the error names the line already).
fn describe(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("field {} is not valid UTF-8", err.field() + 1)
        }
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => error.to_string(),
    }
}

/// Parses an ISO 8601 timestamp; a timestamp without a zone is UTC.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(timestamp) = text.parse() {
        return Some(timestamp);
    }
    let bytes = text.as_bytes();
    let normalised = match bytes.len() {
        10 => format!("{text}T00:00:00Z"),
        n if n >= 19 && (bytes[10] == b' ' || bytes[10] == b'T') => {
            // `get` rather than indexing: the text may hold multi-byte characters.
            let (date, time, rest) = (text.get(..10)?, text.get(11..)?, text.get(19..)?);
            let zone = if rest.contains(['Z', 'z', '+', '-']) {
                ""
            } else {
                "Z"
            };
            format!("{date}T{time}{zone}")
        }
        _ => return None,
    };
    normalised.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_keeps_its_bars_and_stops_reading_after_them() {
        let text = "timestamp,open,high,low,close,volume\n\
                    2024-01-01,1,1,1,1,1\n2024-01-02,2,2,2,2,2\n2024-01-03,3,3,3,3,3\n\
                    2024-01-04,4,4,4,4,4\nnot a bar at all\n";
        let day = |d: &str| Some(format!("{d}T00:00:00Z").parse::<Timestamp>().unwrap());
        let closes = |bars: Vec<Bar>| bars.iter().map(|b| b.close).collect::<Vec<_>>();
        let read = |from, until, max| read_csv_range(text.as_bytes(), from, until, max);
        assert_eq!(closes(read(None, None, Some(2)).unwrap()), [1.0, 2.0]);
        assert_eq!(
            closes(read(day("2024-01-02"), None, Some(2)).unwrap()),
            [2.0, 3.0]
        );
        assert_eq!(
            closes(read(None, day("2024-01-03"), None).unwrap()),
            [1.0, 2.0]
        );
        // Without a limit the bad last line is read, and named.
        assert!(matches!(
            read(None, None, None).unwrap_err(),
            CsvError::Malformed { line: 6, .. }
        ));
        let good = &text[..text.find("not a bar").unwrap()];
        let later = read_csv_range(good.as_bytes(), day("2025-01-01"), None, Some(3));
        assert!(later.unwrap().is_empty());
    }

    #[test]
    fn timestamps_without_zone_are_utc() {
        let expected: Timestamp = "2024-01-15T10:30:00Z".parse().unwrap();
        for text in [
            "2024-01-15T10:30:00Z",
            "2024-01-15T10:30:00",
            "2024-01-15 10:30:00",
            "2024-01-15 10:30:00Z",
            "2024-01-15T12:30:00+02:00",
        ] {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse_timestamp("2024-01-15"),
            Some("2024-01-15T00:00:00Z".parse().unwrap())
        );
        assert_eq!(parse_timestamp("15/01/2024"), None);
        assert_eq!(parse_timestamp("2024-01-15 1"), None);
        assert_eq!(parse_timestamp("2024-01-15 10:30:0é"), None);
    }
}
