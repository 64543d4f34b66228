//! UTC timestamps in the wire format: RFC 3339 with milliseconds and `Z`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A point in time, always in UTC, written on the wire as
/// `2024-01-15T10:30:00.000Z` (RFC 3339, milliseconds, `Z`).
///
/// Parsing accepts any RFC 3339 timestamp (any precision, any offset) and
/// normalises it to UTC; formatting truncates to whole milliseconds.
///
/// ```
/// use backtest_stream::Timestamp;
///
/// let t: Timestamp = "2024-01-15T12:30:00.123456+02:00".parse()?;
/// assert_eq!(t.to_string(), "2024-01-15T10:30:00.123Z");
/// # Ok::<(), backtest_stream::TimestampError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// The length of a formatted timestamp: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
const FORMATTED_LEN: usize = 24;

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    /// Wraps a [`time::OffsetDateTime`], converting it to UTC.
    pub fn from_offset_date_time(value: OffsetDateTime) -> Self {
        Self(value.to_offset(UtcOffset::UTC))
    }

    /// Builds a timestamp from whole milliseconds since the Unix epoch.
    ///
    /// Returns `None` when the value is outside the range `time` supports.
    ///
    /// ```
    /// use backtest_stream::Timestamp;
    ///
    /// let t = Timestamp::from_unix_millis(1_705_314_600_000).unwrap();
    /// assert_eq!(t.to_string(), "2024-01-15T10:30:00.000Z");
    /// ```
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .ok()
            .map(Self)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        // Truncation is intended: the range of `OffsetDateTime` fits in i64 milliseconds.
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The underlying [`time::OffsetDateTime`] (always UTC).
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// The UTC calendar date, formatted `YYYY-MM-DD`.
    ///
    /// ```
    /// use backtest_stream::Timestamp;
    ///
    /// let t: Timestamp = "2023-06-15T23:59:59Z".parse()?;
    /// assert_eq!(t.date_string(), "2023-06-15");
    /// # Ok::<(), backtest_stream::TimestampError>(())
    /// ```
    pub fn date_string(&self) -> String {
        let buf = self.format_buf();
        // The buffer is ASCII by construction.
        String::from_utf8_lossy(&buf[..10]).into_owned()
    }

    fn format_buf(&self) -> [u8; FORMATTED_LEN] {
        let t = self.0;
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        // One calendar computation for the date and one for the time of day.
        let (year, month, day) = t.to_calendar_date();
        let (hour, minute, second, milli) = t.to_hms_milli();
        put_digits(&mut buf[0..4], year.clamp(0, 9999) as u32);
        put_digits(&mut buf[5..7], u32::from(u8::from(month)));
        put_digits(&mut buf[8..10], u32::from(day));
        put_digits(&mut buf[11..13], u32::from(hour));
        put_digits(&mut buf[14..16], u32::from(minute));
        put_digits(&mut buf[17..19], u32::from(second));
        put_digits(&mut buf[20..23], u32::from(milli));
        buf
    }

    /// Appends the timestamp as a JSON string (what its `Serialize` writes).
    pub(crate) fn write_json_text(&self, out: &mut String) {
        let buf = self.format_buf();
        out.reserve(FORMATTED_LEN + 2);
        out.push('"');
        // The buffer is ASCII by construction.
        crate::json_text::ascii(out, &buf);
        out.push('"');
    }
}

fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(value: OffsetDateTime) -> Self {
        Self::from_offset_date_time(value)
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.format_buf();
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {input:?}: {reason}")]
pub struct TimestampError {
    input: String,
    reason: String,
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Self::from_offset_date_time)
            .map_err(|e| TimestampError {
                input: s.chars().take(64).collect(),
                reason: e.to_string(),
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let buf = self.format_buf();
        let text = std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = Timestamp::from_unix_millis(1_705_314_630_007).unwrap();
        assert_eq!(t.to_string(), "2024-01-15T10:30:30.007Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-01-15T10:30:30.007Z\""
        );
    }

    #[test]
    fn parses_offsets_and_normalises_to_utc() {
        let t: Timestamp = "2024-01-15T10:30:00-05:00".parse().unwrap();
        assert_eq!(t.to_string(), "2024-01-15T15:30:00.000Z");
        let back: Timestamp = serde_json::from_str("\"2024-01-15T15:30:00.000Z\"").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn rejects_garbage_with_the_input_named() {
        let err = "yesterday".parse::<Timestamp>().unwrap_err();
        assert!(err.to_string().contains("\"yesterday\""), "{err}");
    }

    #[test]
    fn now_is_utc_and_well_formed() {
        let s = Timestamp::now().to_string();
        assert_eq!(s.len(), FORMATTED_LEN);
        assert!(s.ends_with('Z'));
        assert_eq!(s.parse::<Timestamp>().unwrap().to_string(), s);
    }
}
