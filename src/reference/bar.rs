//! Price bars: the data a backtest runs on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::Timestamp;

/// One price bar (a candle): the prices of one time interval and the volume traded.
///
/// `timestamp` is the bar's time as the data source gives it (usually the opening time
/// of the interval), always in UTC.
///
/// ```
/// use backtest_stream::reference::Bar;
/// use backtest_stream::wire::Timestamp;
///
/// let bar = Bar {
///     timestamp: "2024-01-15T10:00:00Z".parse()?,
///     open: 1.0921,
///     high: 1.0930,
///     low: 1.0915,
///     close: 1.0927,
///     volume: 1250.0,
/// };
/// assert_eq!(bar.timestamp.date_string(), "2024-01-15");
/// # Ok::<(), backtest_stream::wire::TimestampError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// The bar's time, UTC.
    pub timestamp: Timestamp,
    /// The first price of the interval.
    pub open: f64,
    /// The highest price of the interval.
    pub high: f64,
    /// The lowest price of the interval.
    pub low: f64,
    /// The last price of the interval.
    pub close: f64,
    /// The volume traded in the interval.
    pub volume: f64,
}

impl Bar {
    /// A bar whose four prices all equal `price` (handy in tests), with zero volume.
    ///
    /// ```
    /// use backtest_stream::reference::Bar;
    /// use backtest_stream::wire::Timestamp;
    ///
    /// let bar = Bar::flat(Timestamp::from_unix_millis(0).unwrap(), 100.0);
    /// assert_eq!((bar.open, bar.high, bar.low, bar.close), (100.0, 100.0, 100.0, 100.0));
    /// ```
    pub fn flat(timestamp: Timestamp, price: f64) -> Self {
        Self {
            timestamp,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 0.0,
        }
    }
}

/// The timeframes the crate's programs know, shortest first, with their bar spacing in
/// seconds.
const TIMEFRAMES: [(&str, u64); 7] = [
    ("M1", 60),
    ("M5", 300),
    ("M15", 900),
    ("M30", 1_800),
    ("H1", 3_600),
    ("H4", 14_400),
    ("D1", 86_400),
];

/// A timeframe's canonical name and bar spacing: `M1`, `M5`, `M15`, `M30`, `H1`, `H4` or
/// `D1`, in any case; `None` for any other name.
///
/// ```
/// use std::time::Duration;
/// use backtest_stream::reference::timeframe;
///
/// assert_eq!(timeframe("h4"), Some(("H4", Duration::from_secs(4 * 3600))));
/// assert_eq!(timeframe("H2"), None);
/// ```
pub fn timeframe(name: &str) -> Option<(&'static str, Duration)> {
    TIMEFRAMES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(known, secs)| (known, Duration::from_secs(secs)))
}

/// The timeframe of bars spaced like the first two of `bars` (`"H1"` for an hour);
/// `None` for fewer than two bars or a spacing without a name.
///
/// ```
/// use backtest_stream::reference::{SyntheticBars, timeframe_of};
///
/// let bars = SyntheticBars::with_count(3).generate()?;
/// assert_eq!(timeframe_of(&bars), Some("H1"));
/// assert_eq!(timeframe_of(&bars[..1]), None);
/// # Ok::<(), backtest_stream::reference::SyntheticError>(())
/// ```
pub fn timeframe_of(bars: &[Bar]) -> Option<&'static str> {
    let [first, second, ..] = bars else {
        return None;
    };
    let millis = (second.timestamp.unix_millis()).saturating_sub(first.timestamp.unix_millis());
    TIMEFRAMES
        .iter()
        .find(|(_, secs)| i64::try_from(secs * 1000).is_ok_and(|m| m == millis))
        .map(|(name, _)| *name)
}
