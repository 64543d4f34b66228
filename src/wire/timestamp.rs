//! UTC timestamps in the wire format: RFC 3339 with milliseconds and `Z`.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

/// A point in time, always in UTC, written on the wire as
/// `2024-01-15T10:30:00.000Z` (RFC 3339, milliseconds, `Z`).
///
/// Parsing accepts any RFC 3339 timestamp (any precision, any offset) and
/// normalises it to UTC; formatting truncates to whole milliseconds.
///
/// ```
/// use backtest_stream::wire::Timestamp;
///
/// let t: Timestamp = "2024-01-15T12:30:00.123456+02:00".parse()?;
/// assert_eq!(t.to_string(), "2024-01-15T10:30:00.123Z");
/// # Ok::<(), backtest_stream::wire::TimestampError>(())
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

    /// Wraps a [`time::OffsetDateTime`](https://docs.rs/time/0.3/time/struct.OffsetDateTime.html), converting it to UTC.
    pub fn from_offset_date_time(value: OffsetDateTime) -> Self {
        Self(value.to_offset(UtcOffset::UTC))
    }

    /// Builds a timestamp from whole milliseconds since the Unix epoch.
    ///
    /// Returns `None` when the value is outside the range `time` supports.
    ///
    /// ```
    /// use backtest_stream::wire::Timestamp;
    ///
    /// let t = Timestamp::from_unix_millis(1_705_314_600_000).unwrap();
    /// assert_eq!(t.to_string(), "2024-01-15T10:30:00.000Z");
    /// ```
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        // Whole seconds, then the milliseconds: no 128-bit arithmetic.
        let milli = u16::try_from(millis.rem_euclid(1000)).ok()?;
        OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
            .ok()?
            .replace_millisecond(milli)
            .ok()
            .map(Self)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        // Truncation is intended: the range of `OffsetDateTime` fits in i64 milliseconds.
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The underlying [`time::OffsetDateTime`](https://docs.rs/time/0.3/time/struct.OffsetDateTime.html) (always UTC).
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// The UTC calendar date, formatted `YYYY-MM-DD`.
    ///
    /// ```
    /// use backtest_stream::wire::Timestamp;
    ///
    /// let t: Timestamp = "2023-06-15T23:59:59Z".parse()?;
    /// assert_eq!(t.date_string(), "2023-06-15");
    /// # Ok::<(), backtest_stream::wire::TimestampError>(())
    /// ```
    pub fn date_string(&self) -> String {
        let buf = self.format_buf();
        // The buffer is ASCII by construction.
        String::from_utf8_lossy(&buf[..10]).into_owned()
    }

    fn format_buf(&self) -> [u8; FORMATTED_LEN] {
        // Consecutive timestamps mostly fall in the same second: its text is kept per
        // thread and only the milliseconds are written again.
        let t = self.0;
        let key = (t.date(), t.hour(), t.minute(), t.second());
        let mut buf = match LAST_SECOND.get() {
            Some((last, buf)) if last == key => buf,
            _ => {
                let buf = self.format_buf_uncached();
                LAST_SECOND.set(Some((key, buf)));
                buf
            }
        };
        put_digits(&mut buf[20..23], u32::from(t.millisecond()));
        buf
    }

    fn format_buf_uncached(&self) -> [u8; FORMATTED_LEN] {
        let t = self.0;
        // The calendar date from the day number (integer arithmetic only: several
        // times cheaper than `time`'s calendar accessors, which matters on the
        // server's hot path). Years outside 0..=9999 take the general path.
        let secs = t.unix_timestamp();
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        if !(0..=9999).contains(&year) {
            return self.format_buf_general();
        }
        let second_of_day = secs.rem_euclid(86_400) as u32;
        digits_into(
            year as u32,
            month,
            day,
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60,
            u32::from(t.millisecond()),
        )
    }

    /// `format_buf` through `time`'s calendar accessors (any year; clamped to 0..=9999).
    fn format_buf_general(&self) -> [u8; FORMATTED_LEN] {
        let t = self.0;
        let (year, month, day) = t.to_calendar_date();
        let (hour, minute, second, milli) = t.to_hms_milli();
        digits_into(
            year.clamp(0, 9999) as u32,
            u32::from(u8::from(month)),
            u32::from(day),
            u32::from(hour),
            u32::from(minute),
            u32::from(second),
            u32::from(milli),
        )
    }

    /// The wire text, `YYYY-MM-DDTHH:MM:SS.mmmZ`, as ASCII bytes.
    pub(crate) fn text(&self) -> [u8; FORMATTED_LEN] {
        self.format_buf()
    }
}

/// A second (UTC date, hour, minute, second) and its formatted text.
type FormattedSecond = ((Date, u8, u8, u8), [u8; FORMATTED_LEN]);

thread_local! {
    /// The last second [`Timestamp::format_buf`] formatted on this thread.
    static LAST_SECOND: Cell<Option<FormattedSecond>> = const { Cell::new(None) };
}

/// The proleptic Gregorian (year, month, day) of a day number counted from
/// 1970-01-01 (the inverse of the classic "days from civil" algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn digits_into(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
) -> [u8; FORMATTED_LEN] {
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut buf[0..4], year);
    put_digits(&mut buf[5..7], month);
    put_digits(&mut buf[8..10], day);
    put_digits(&mut buf[11..13], hour);
    put_digits(&mut buf[14..16], minute);
    put_digits(&mut buf[17..19], second);
    put_digits(&mut buf[20..23], milli);
    buf
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
    fn the_fast_date_path_matches_the_time_crate() {
        // Every ~37 hours (and some odd milliseconds) from year 0 to 9999, the epoch,
        // leap days and the ends of the range.
        let first = -62_167_219_200_000i64; // 0000-01-01T00:00:00.000Z
        let last = 253_402_300_799_999i64; // 9999-12-31T23:59:59.999Z
        let mut millis: Vec<i64> = (0..)
            .map(|i: i64| first + i * 133_331_777)
            .take_while(|m| *m <= last)
            .collect();
        millis.extend([
            first,
            last,
            0,
            -1,
            951_782_400_000,   // 2000-02-29
            4_107_542_399_999, // 2100-02-28T23:59:59.999
            1_709_164_800_123, // 2024-02-29
        ]);
        for m in millis {
            let t = Timestamp::from_unix_millis(m).unwrap();
            assert_eq!(t.format_buf(), t.format_buf_general(), "{m}");
        }
        // Before year 0 the general path clamps the year.
        let t = Timestamp::from_unix_millis(first - 1).unwrap();
        assert_eq!(&t.format_buf(), b"0000-12-31T23:59:59.999Z");
    }

    #[test]
    fn the_kept_second_is_reused_only_for_the_same_second() {
        // Runs of timestamps inside one second (the kept text is reused), across
        // second, minute, day and year boundaries, and the same time of day on other
        // days (same hour, minute, second: the date must not be reused).
        let new_year = 1_704_067_200_000i64; // 2024-01-01T00:00:00.000Z
        let mut millis: Vec<i64> = (-3_000..3_000).map(|i| new_year + i * 7).collect();
        for day in [0, 1, 366, -1, 1] {
            millis.extend([
                new_year + day * 86_400_000 + 5,
                new_year + day * 86_400_000 + 999,
            ]);
        }
        for m in millis {
            let t = Timestamp::from_unix_millis(m).unwrap();
            assert_eq!(t.format_buf(), t.format_buf_general(), "{m}");
        }
    }

    #[test]
    fn from_unix_millis_matches_the_nanosecond_constructor() {
        let limit = 253_402_300_799_999i64; // 9999-12-31T23:59:59.999Z
        let mut millis: Vec<i64> = (-1_000..1_000).map(|i| i * 7_777_777_777 + i).collect();
        millis.extend([0, -1, 1, 999, -999, 1_000, -1_000, limit, -limit - 1]);
        millis.extend([limit + 1, -limit - 2, i64::MAX, i64::MIN]);
        for m in millis {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000_000)
                .ok()
                .map(Timestamp);
            assert_eq!(Timestamp::from_unix_millis(m), expected, "{m}");
        }
    }

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
