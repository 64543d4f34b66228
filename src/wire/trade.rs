//! [`Trade`]: a closed trade, as listed in the `results.trades` of `backtest_complete`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::wire::timestamp::Timestamp;

/// The direction of a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Bought first, sold to close.
    Long,
    /// Sold first, bought to close.
    Short,
}

impl Side {
    /// The wire name: `"long"` or `"short"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Long => "long",
            Side::Short => "short",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A closed trade.
///
/// Its JSON form, one element of `results.trades` in `backtest_complete`, has its keys in
/// alphabetical order, the order of a [`serde_json::Map`], so that a trade read back as
/// JSON and written again gives the same text. Numbers that are not finite are written
/// as `null` and read back as `NaN`.
///
/// ```
/// use backtest_stream::wire::{Side, Timestamp, Trade};
///
/// let trade = Trade {
///     side: Side::Long,
///     size: 1.0,
///     entry_time: Timestamp::from_unix_millis(1_704_067_200_000).unwrap(),
///     entry_price: 100.5,
///     exit_time: Timestamp::from_unix_millis(1_704_070_800_000).unwrap(),
///     exit_price: 101.25,
///     pnl: 0.75,
///     closed_at_end: false,
/// };
/// assert_eq!(
///     serde_json::to_string(&trade)?,
///     r#"{"closed_at_end":false,"entry_price":100.5,"entry_time":"2024-01-01T00:00:00.000Z","exit_price":101.25,"exit_time":"2024-01-01T01:00:00.000Z","pnl":0.75,"side":"long","size":1.0}"#
/// );
/// assert_eq!(serde_json::from_str::<Trade>(&serde_json::to_string(&trade)?)?, trade);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    // The fields are declared in the alphabetical order of their keys, which is the
    // order they are written in (see above).
    /// Whether the trade was closed at the last bar's close because the data ended.
    pub closed_at_end: bool,
    /// The entry fill price.
    #[serde(with = "crate::wire::finite")]
    pub entry_price: f64,
    /// The timestamp of the entry fill's bar.
    pub entry_time: Timestamp,
    /// The exit fill price.
    #[serde(with = "crate::wire::finite")]
    pub exit_price: f64,
    /// The timestamp of the exit fill's bar.
    pub exit_time: Timestamp,
    /// `quantity × (exit − entry)`, the quantity negative for a short trade.
    #[serde(with = "crate::wire::finite")]
    pub pnl: f64,
    /// Long or short.
    pub side: Side,
    /// Units, positive.
    #[serde(with = "crate::wire::finite")]
    pub size: f64,
}
