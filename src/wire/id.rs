//! Backtest identifiers: a UUID v4 by default, or an id the caller chooses.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::name::{self, NameProblem};

/// The identifier of one backtest run, carried by every event of that run.
///
/// By default a random UUID v4 string ([`BacktestId::random`]); a caller may choose its
/// own id (`"my-custom-id"`) to correlate the run with a REST session. A valid id is
/// 1 to [`BacktestId::MAX_LEN`] bytes of UTF-8 without control characters.
/// Cloning is cheap (a reference count).
///
/// ```
/// use backtest_stream::wire::{BacktestId, InvalidBacktestId};
///
/// let id = BacktestId::new("my-custom-id")?;
/// assert_eq!(id.as_str(), "my-custom-id");
/// assert_eq!(BacktestId::new(""), Err(InvalidBacktestId::Empty));
/// assert_eq!(BacktestId::random().as_str().len(), 36);
/// # Ok::<(), InvalidBacktestId>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BacktestId(Arc<str>);

/// Why a string cannot be a [`BacktestId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBacktestId {
    /// The id is the empty string.
    #[error("backtest id is empty")]
    Empty,
    /// The id is longer than [`BacktestId::MAX_LEN`] bytes.
    #[error("backtest id is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The length of the rejected id, in bytes.
        len: usize,
        /// The limit, [`BacktestId::MAX_LEN`].
        max: usize,
    },
    /// The id contains a control character (a newline, a NUL, ...).
    #[error("backtest id contains a control character at byte {index}")]
    ControlCharacter {
        /// The byte offset of the first control character.
        index: usize,
    },
}

impl BacktestId {
    /// The longest id accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates a caller-chosen id.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidBacktestId> {
        let id = id.as_ref();
        Self::validate(id)?;
        Ok(Self(Arc::from(id)))
    }

    /// A fresh random UUID v4 id, the default for a run.
    pub fn random() -> Self {
        let mut buf = uuid::Uuid::encode_buffer();
        Self(Arc::from(
            &*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf),
        ))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks a string against the rules of [`BacktestId::new`] without allocating.
    pub fn validate(id: &str) -> Result<(), InvalidBacktestId> {
        name::check(id, Self::MAX_LEN).map_err(|problem| match problem {
            NameProblem::Empty => InvalidBacktestId::Empty,
            NameProblem::TooLong { len, max } => InvalidBacktestId::TooLong { len, max },
            NameProblem::ControlCharacter { index } => {
                InvalidBacktestId::ControlCharacter { index }
            }
        })
    }
}

impl fmt::Debug for BacktestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for BacktestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BacktestId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for BacktestId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for BacktestId {
    type Err = InvalidBacktestId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for BacktestId {
    type Error = InvalidBacktestId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for BacktestId {
    type Error = InvalidBacktestId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::validate(&value)?;
        Ok(Self(Arc::from(value)))
    }
}

impl PartialEq<str> for BacktestId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for BacktestId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl Serialize for BacktestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BacktestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&*text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_uuid_v4_and_distinct() {
        let a = BacktestId::random();
        let b = BacktestId::random();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn custom_ids_are_kept_verbatim() {
        let id = BacktestId::new("my-custom-id").unwrap();
        assert_eq!(id, "my-custom-id");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"my-custom-id\"");
        let max = "x".repeat(BacktestId::MAX_LEN);
        assert!(BacktestId::new(&max).is_ok());
        assert!(BacktestId::new("räksmörgås 🦀").is_ok());
    }

    #[test]
    fn invalid_ids_are_typed_errors() {
        assert_eq!(BacktestId::new(""), Err(InvalidBacktestId::Empty));
        let long = "x".repeat(BacktestId::MAX_LEN + 1);
        assert_eq!(
            BacktestId::new(&long),
            Err(InvalidBacktestId::TooLong { len: 129, max: 128 })
        );
        assert_eq!(
            BacktestId::new("ab\ncd"),
            Err(InvalidBacktestId::ControlCharacter { index: 2 })
        );
        let err = serde_json::from_str::<BacktestId>("\"\"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
