//! [`Results`]: the open `results` object of `backtest_complete`, its trade list kept
//! typed and shared until a transport writes it.

use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::wire::trade::Trade;

/// The `results` object of `backtest_complete`: an open JSON object (parameters, counts,
/// whatever an engine reports) and, optionally, the run's trade list.
///
/// The trade list is kept as typed [`Trade`]s behind an [`Arc`], not as JSON values:
/// handing a run's trades to the event costs a reference count whatever their number,
/// an in-memory sink keeps them as they are, and they become JSON text only when a
/// transport writes the event (the WebSocket hub's task, the JSON Lines writer thread),
/// never on the backtest's thread. They are written under the key `"trades"`, as an
/// array of [`Trade`] objects, in key order among the other keys (the order of
/// [`serde_json::Map`]), so an event read back and written again gives the same text.
///
/// Read back from JSON ([`Event::from_json`](crate::wire::Event::from_json)), every key, the
/// trade list included, is a plain JSON value: reading is lossless whatever shape another
/// engine gave its trades. [`read_trades`](Self::read_trades) gives the trades typed in
/// both cases.
///
/// ```
/// use backtest_stream::wire::{Results, Side, Timestamp, Trade};
///
/// let t0 = Timestamp::from_unix_millis(1_704_067_200_000).unwrap();
/// let trade = Trade {
///     side: Side::Long,
///     size: 1.0,
///     entry_time: t0,
///     entry_price: 100.0,
///     exit_time: t0,
///     exit_price: 101.5,
///     pnl: 1.5,
///     closed_at_end: false,
/// };
/// let mut results = Results::with_trades(vec![trade]);
/// results.insert("strategy", "sma_crossover");
/// assert_eq!(
///     serde_json::to_string(&results)?,
///     r#"{"strategy":"sma_crossover","trades":[{"closed_at_end":false,"entry_price":100.0,"entry_time":"2024-01-01T00:00:00.000Z","exit_price":101.5,"exit_time":"2024-01-01T00:00:00.000Z","pnl":1.5,"side":"long","size":1.0}]}"#
/// );
///
/// // Read back, the list is JSON; `read_trades` parses it.
/// let parsed: Results = serde_json::from_str(&serde_json::to_string(&results)?)?;
/// assert!(parsed.trades().is_none());
/// assert_eq!(parsed.read_trades().unwrap()?.as_ref(), &[trade]);
/// assert_eq!(parsed, results);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The typed trade list, written as `"trades"` (it hides a `"trades"` field).
    trades: Option<Arc<[Trade]>>,
    /// Every other key.
    fields: Map<String, Value>,
}

impl Results {
    /// Empty results: `{}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Results holding a trade list: `{"trades": [...]}`. A `Vec<Trade>` is moved in
    /// (one copy); an `Arc<[Trade]>` is shared.
    pub fn with_trades(trades: impl Into<Arc<[Trade]>>) -> Self {
        Self {
            trades: Some(trades.into()),
            fields: Map::new(),
        }
    }

    /// Sets the typed trade list (replacing a `"trades"` field, if any).
    pub fn set_trades(&mut self, trades: impl Into<Arc<[Trade]>>) {
        self.fields.remove("trades");
        self.trades = Some(trades.into());
    }

    /// The typed trade list, when one was set. `None` for results read back from JSON:
    /// see [`read_trades`](Self::read_trades).
    pub fn trades(&self) -> Option<&Arc<[Trade]>> {
        self.trades.as_ref()
    }

    /// The trade list, typed: the one set, or else the `"trades"` field parsed as
    /// [`Trade`] objects. `None` when there is neither; an error when the field is not a
    /// list of trades.
    pub fn read_trades(&self) -> Option<Result<Cow<'_, [Trade]>, serde_json::Error>> {
        if let Some(trades) = &self.trades {
            return Some(Ok(Cow::Borrowed(trades)));
        }
        let value = self.fields.get("trades")?;
        Some(Vec::<Trade>::deserialize(value).map(Cow::Owned))
    }

    /// Sets the key `key` to `value`, returning the value it had (a `"trades"` key
    /// replaces the typed trade list, whose values are then not returned).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        if key == "trades" {
            self.trades = None;
        }
        self.fields.insert(key, value.into())
    }

    /// The value of the key `key`, other than the typed trade list (see
    /// [`trades`](Self::trades)).
    pub fn get(&self, key: &str) -> Option<&Value> {
        if self.trades.is_some() && key == "trades" {
            return None;
        }
        self.fields.get(key)
    }

    /// Removes the key `key` (the typed trade list too, for `"trades"`), returning its
    /// JSON value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let field = self.fields.remove(key);
        if key == "trades" {
            if let Some(trades) = self.trades.take() {
                return Some(trades_value(&trades));
            }
        }
        field
    }

    /// Every key other than the typed trade list.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// Every key other than the typed trade list, to change. While a typed list is set,
    /// a `"trades"` key here is not written.
    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.fields
    }

    /// The number of keys written.
    pub fn len(&self) -> usize {
        self.fields.len()
            + usize::from(self.trades.is_some() && !self.fields.contains_key("trades"))
    }

    /// Whether the object is `{}`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole object as JSON values (the typed trade list converted).
    pub fn to_map(&self) -> Map<String, Value> {
        self.entries()
            .map(|entry| match entry {
                Entry::Trades(trades) => ("trades".to_owned(), trades_value(trades)),
                Entry::Field(key, value) => (key.clone(), value.clone()),
            })
            .collect()
    }

    /// The whole object as one JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.to_map())
    }

    /// The keys as written, in order: the fields in the map's order, the typed trade
    /// list (if any) in its place as `"trades"` (hiding a `"trades"` field).
    pub(crate) fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        let mut trades = self.trades.as_deref();
        let mut fields = self.written_fields().peekable();
        std::iter::from_fn(move || {
            let trades_first = match fields.peek() {
                Some((key, _)) => key.as_str() > "trades",
                None => true,
            };
            if trades_first {
                if let Some(list) = trades.take() {
                    return Some(Entry::Trades(list));
                }
            }
            fields.next().map(|(key, value)| Entry::Field(key, value))
        })
    }

    /// The fields that are written: all but a `"trades"` one hidden by the typed list.
    fn written_fields(&self) -> impl Iterator<Item = (&String, &Value)> {
        let hide = self.trades.is_some();
        self.fields
            .iter()
            .filter(move |(key, _)| !(hide && key.as_str() == "trades"))
    }
}

/// One key of [`Results`], as written.
pub(crate) enum Entry<'a> {
    Trades(&'a [Trade]),
    Field(&'a String, &'a Value),
}

fn trades_value(trades: &[Trade]) -> Value {
    // A trade holds numbers, strings and booleans only: it always converts.
    serde_json::to_value(trades).unwrap_or(Value::Null)
}

/// Equal when the JSON objects are equal: typed trades equal the same trades read back
/// from JSON.
impl PartialEq for Results {
    fn eq(&self, other: &Self) -> bool {
        match (&self.trades, &other.trades) {
            (None, None) => self.fields == other.fields,
            (Some(a), Some(b)) => a == b && self.written_fields().eq(other.written_fields()),
            _ => self.to_map() == other.to_map(),
        }
    }
}

impl From<Map<String, Value>> for Results {
    fn from(fields: Map<String, Value>) -> Self {
        Self {
            trades: None,
            fields,
        }
    }
}

impl From<Results> for Map<String, Value> {
    fn from(results: Results) -> Self {
        match results.trades {
            None => results.fields,
            Some(_) => results.to_map(),
        }
    }
}

impl From<Results> for Value {
    fn from(results: Results) -> Self {
        Value::Object(results.into())
    }
}

impl Serialize for Results {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for entry in self.entries() {
            match entry {
                Entry::Trades(trades) => map.serialize_entry("trades", trades)?,
                Entry::Field(key, value) => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Results {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Results::from)
    }
}
