//! Price bars: the data a backtest runs on.

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
