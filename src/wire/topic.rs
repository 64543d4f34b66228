//! Topics: the routing key every event is published on.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::name::{self, NameProblem};

/// The topic an event is published on, so that transports can route by topic.
///
/// The original system uses `backtest` (lifecycle events, the default for a run),
/// `trading` and `logs` (log records made outside any run). Any other short name works:
/// 1 to [`Topic::MAX_LEN`] bytes without control characters. Cloning is cheap.
///
/// ```
/// use backtest_stream::wire::Topic;
///
/// assert_eq!(Topic::BACKTEST.as_str(), "backtest");
/// let custom = Topic::new("fx-desk")?;
/// assert_eq!(custom, "fx-desk");
/// assert!(Topic::new("").is_err());
/// # Ok::<(), backtest_stream::wire::InvalidTopic>(())
/// ```
#[derive(Clone)]
pub struct Topic(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

/// Why a string cannot be a [`Topic`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTopic {
    /// The topic is the empty string.
    #[error("topic is empty")]
    Empty,
    /// The topic is longer than [`Topic::MAX_LEN`] bytes.
    #[error("topic is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The length of the rejected topic, in bytes.
        len: usize,
        /// The limit, [`Topic::MAX_LEN`].
        max: usize,
    },
    /// The topic contains a control character.
    #[error("topic contains a control character at byte {index}")]
    ControlCharacter {
        /// The byte offset of the first control character.
        index: usize,
    },
}

impl Topic {
    /// The longest topic accepted, in bytes.
    pub const MAX_LEN: usize = 64;
    /// `backtest`: lifecycle events of runs (the default topic of a run).
    pub const BACKTEST: Topic = Topic(Repr::Static("backtest"));
    /// `trading`: trading activity.
    pub const TRADING: Topic = Topic(Repr::Static("trading"));
    /// `logs`: log records, in particular those made outside any run.
    pub const LOGS: Topic = Topic(Repr::Static("logs"));

    /// Validates a topic name.
    pub fn new(name: impl AsRef<str>) -> Result<Self, InvalidTopic> {
        let name = name.as_ref();
        Self::validate(name)?;
        Ok(match name {
            "backtest" => Self::BACKTEST,
            "trading" => Self::TRADING,
            "logs" => Self::LOGS,
            other => Topic(Repr::Shared(Arc::from(other))),
        })
    }

    /// Checks a name against the rules of [`Topic::new`] without allocating.
    pub fn validate(name: &str) -> Result<(), InvalidTopic> {
        name::check(name, Self::MAX_LEN).map_err(|problem| match problem {
            NameProblem::Empty => InvalidTopic::Empty,
            NameProblem::TooLong { len, max } => InvalidTopic::TooLong { len, max },
            NameProblem::ControlCharacter { index } => InvalidTopic::ControlCharacter { index },
        })
    }

    /// The topic name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Default for Topic {
    /// [`Topic::BACKTEST`].
    fn default() -> Self {
        Self::BACKTEST
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Topic {}

impl PartialOrd for Topic {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Topic {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Topic {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Topic {
    type Err = InvalidTopic;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&*text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_topics_compare_with_parsed_ones() {
        assert_eq!(Topic::new("backtest").unwrap(), Topic::BACKTEST);
        assert_eq!(Topic::new("x").unwrap().as_str(), "x");
        assert_eq!(Topic::default(), Topic::BACKTEST);
    }

    #[test]
    fn invalid_topics_are_typed_errors() {
        assert_eq!(
            Topic::new(""),
            Err(InvalidTopic::Empty).map(|_: ()| unreachable!())
        );
        assert!(matches!(
            Topic::new("t".repeat(65)),
            Err(InvalidTopic::TooLong { len: 65, max: 64 })
        ));
        assert!(matches!(
            Topic::new("a\tb"),
            Err(InvalidTopic::ControlCharacter { index: 1 })
        ));
    }
}
