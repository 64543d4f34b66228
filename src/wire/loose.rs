//! Reading a client message loosely: the known keys of a JSON object, each as the
//! loosely typed value it had, so that [`Fields::into_message`] can tell exactly what is
//! wrong with it.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use crate::wire::client::{BadRequest, Fields};

/// A JSON value as far as a client message needs it: its type, and its content when it
/// is a scalar. Arrays and objects are skipped.
pub(super) enum Loose {
    Null,
    Bool(bool),
    Unsigned(u64),
    /// A negative or fractional number, as JSON text.
    OtherNumber(String),
    Str(String),
    Array,
    Object,
}

impl Loose {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Loose::Null => "null",
            Loose::Bool(_) => "a boolean",
            Loose::Unsigned(_) | Loose::OtherNumber(_) => "a number",
            Loose::Str(_) => "a string",
            Loose::Array => "an array",
            Loose::Object => "an object",
        }
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::Unsigned(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        Ok(u64::try_from(v).map_or_else(|_| Loose::OtherNumber(v.to_string()), Loose::Unsigned))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        // The number as JSON writes it (`1.5`, `1e300`).
        let text = serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        Ok(Loose::OtherNumber(text))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose, A::Error> {
        SkipVisitor.visit_seq(seq)?;
        Ok(Loose::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose, A::Error> {
        SkipVisitor.visit_map(map)?;
        Ok(Loose::Object)
    }
}

/// A value read to its end and dropped. Unlike serde's `IgnoredAny`, it reads every part
/// as a value (numbers in range, strings valid, nesting within the parser's limit), so
/// that a message holding invalid JSON anywhere is `NotJson`, whatever key it is under.
struct Skipped;

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skipped;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_none<E>(self) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skipped, A::Error> {
        while seq.next_element::<Skipped>()?.is_some() {}
        Ok(Skipped)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skipped, A::Error> {
        while map.next_entry::<Skipped, Skipped>()?.is_some() {}
        Ok(Skipped)
    }
}

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

/// A key of a client message.
enum Key {
    Action,
    Topic,
    BacktestId,
    Since,
    Epoch,
    Snapshot,
    Token,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "action" => Key::Action,
                    "topic" => Key::Topic,
                    "backtest_id" => Key::BacktestId,
                    "since" => Key::Since,
                    "epoch" => Key::Epoch,
                    "snapshot" => Key::Snapshot,
                    "token" => Key::Token,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A message read as far as its shape: the known keys of an object, or why it is not
/// one (any JSON value is read to its end, so that only invalid JSON is an error).
pub(super) struct Parsed(pub(super) Result<Fields, BadRequest>);

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MessageVisitor)
    }
}

struct MessageVisitor;

/// The answer to a message that is JSON but not an object.
fn not_object<E>(got: &'static str) -> Result<Parsed, E> {
    Ok(Parsed(Err(BadRequest::NotObject(got))))
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Action => &mut fields.action,
                Key::Topic => &mut fields.topic,
                Key::BacktestId => &mut fields.backtest_id,
                Key::Since => &mut fields.since,
                Key::Epoch => &mut fields.epoch,
                Key::Snapshot => &mut fields.snapshot,
                Key::Token => &mut fields.token,
                Key::Other => {
                    map.next_value::<Skipped>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value::<Loose>()?);
        }
        Ok(Parsed(Ok(fields)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Parsed, A::Error> {
        LooseVisitor.visit_seq(seq)?;
        not_object("an array")
    }
    fn visit_unit<E>(self) -> Result<Parsed, E> {
        not_object("null")
    }
    fn visit_none<E>(self) -> Result<Parsed, E> {
        not_object("null")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Parsed, E> {
        not_object("a boolean")
    }
    fn visit_u64<E>(self, _: u64) -> Result<Parsed, E> {
        not_object("a number")
    }
    fn visit_i64<E>(self, _: i64) -> Result<Parsed, E> {
        not_object("a number")
    }
    fn visit_f64<E>(self, _: f64) -> Result<Parsed, E> {
        not_object("a number")
    }
    fn visit_str<E>(self, _: &str) -> Result<Parsed, E> {
        not_object("a string")
    }
}
