//! [`Trade`]: a closed trade, as listed in the `results.trades` of `backtest_complete`.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::Timestamp;
use crate::event::finite_or_null;
use crate::json_text;

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
/// use backtest_stream::{Side, Timestamp, Trade};
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
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Trade {
    /// Long or short.
    pub side: Side,
    /// Units, positive.
    #[serde(with = "finite_or_null")]
    pub size: f64,
    /// The timestamp of the entry fill's bar.
    pub entry_time: Timestamp,
    /// The entry fill price.
    #[serde(with = "finite_or_null")]
    pub entry_price: f64,
    /// The timestamp of the exit fill's bar.
    pub exit_time: Timestamp,
    /// The exit fill price.
    #[serde(with = "finite_or_null")]
    pub exit_price: f64,
    /// `quantity × (exit − entry)`, the quantity negative for a short trade.
    #[serde(with = "finite_or_null")]
    pub pnl: f64,
    /// Whether the trade was closed at the last bar's close because the data ended.
    pub closed_at_end: bool,
}

impl Trade {
    /// The trade as a JSON object, as in the `trades` list of `backtest_complete`
    /// (the same as its `Serialize` form).
    pub fn to_json_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("side".into(), self.side.as_str().into());
        map.insert("size".into(), self.size.into());
        map.insert("entry_time".into(), self.entry_time.to_string().into());
        map.insert("entry_price".into(), self.entry_price.into());
        map.insert("exit_time".into(), self.exit_time.to_string().into());
        map.insert("exit_price".into(), self.exit_price.into());
        map.insert("pnl".into(), self.pnl.into());
        map.insert("closed_at_end".into(), self.closed_at_end.into());
        Value::Object(map)
    }

    /// Appends the trade's JSON text: the bytes its `Serialize` form writes with
    /// serde_json, without going through serde.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.closed_at_end {
            br#"{"closed_at_end":true,"entry_price":"#
        } else {
            br#"{"closed_at_end":false,"entry_price":"#
        });
        json_text::f64_or_null(out, self.entry_price);
        out.extend_from_slice(br#","entry_time":"#);
        self.entry_time.write_json(out);
        out.extend_from_slice(br#","exit_price":"#);
        json_text::f64_or_null(out, self.exit_price);
        out.extend_from_slice(br#","exit_time":"#);
        self.exit_time.write_json(out);
        out.extend_from_slice(br#","pnl":"#);
        json_text::f64_or_null(out, self.pnl);
        out.extend_from_slice(match self.side {
            Side::Long => br#","side":"long","size":"#,
            Side::Short => br#","side":"short","size":"#,
        });
        json_text::f64_or_null(out, self.size);
        out.push(b'}');
    }
}

/// A JSON number, or `null` for a value that is not finite.
struct FiniteOrNull(f64);

impl Serialize for FiniteOrNull {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        finite_or_null::serialize(&self.0, serializer)
    }
}

/// The keys in alphabetical order (see [`Trade`]).
impl Serialize for Trade {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut trade = serializer.serialize_struct("Trade", 8)?;
        trade.serialize_field("closed_at_end", &self.closed_at_end)?;
        trade.serialize_field("entry_price", &FiniteOrNull(self.entry_price))?;
        trade.serialize_field("entry_time", &self.entry_time)?;
        trade.serialize_field("exit_price", &FiniteOrNull(self.exit_price))?;
        trade.serialize_field("exit_time", &self.exit_time)?;
        trade.serialize_field("pnl", &FiniteOrNull(self.pnl))?;
        trade.serialize_field("side", &self.side)?;
        trade.serialize_field("size", &FiniteOrNull(self.size))?;
        trade.end()
    }
}
