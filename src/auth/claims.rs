//! The claims of a verified token, read into [`Grants`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use crate::auth::error::AuthError;
use crate::auth::grants::{Grants, TopicGrant};
use crate::wire::{BacktestId, Topic};

/// The claims the server reads; the signature and the registered claims (`exp`, `nbf`,
/// `aud`, `iss`) were checked before.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    sub: Value,
    exp: Value,
    #[serde(default)]
    iat: Option<Value>,
    #[serde(default)]
    topics: Option<Value>,
    #[serde(default)]
    runs: Option<Value>,
    #[serde(default)]
    scope: Option<Value>,
}

fn invalid(claim: &str, reason: impl Into<String>) -> AuthError {
    AuthError::InvalidClaim {
        claim: claim.to_owned(),
        reason: reason.into(),
    }
}

impl Claims {
    /// The grants these claims give, checking `iat` against `now` with `leeway`.
    pub(crate) fn into_grants(
        self,
        now: SystemTime,
        leeway: Duration,
    ) -> Result<Grants, AuthError> {
        let subject = match self.sub {
            Value::String(s) if !s.is_empty() => s,
            _ => return Err(invalid("sub", "must be a non-empty string")),
        };
        let exp = seconds("exp", &self.exp)?;
        if let Some(iat) = &self.iat {
            let issued = instant("iat", seconds("iat", iat)?)?;
            if issued > now + leeway {
                return Err(AuthError::NotYetValid);
            }
        }
        Ok(Grants {
            subject,
            topics: topics(self.topics)?,
            runs: runs(self.runs)?,
            scopes: match self.scope {
                None | Some(Value::Null) => Default::default(),
                Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                Some(_) => return Err(invalid("scope", "must be a space-separated string")),
            },
            expires_at: Some(instant("exp", exp)?),
        })
    }
}

/// The time `seconds` after 1970, refused when beyond the clock's range.
fn instant(claim: &str, seconds: u64) -> Result<SystemTime, AuthError> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .ok_or_else(|| invalid(claim, "out of range"))
}

fn seconds(claim: &str, value: &Value) -> Result<u64, AuthError> {
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .ok_or_else(|| invalid(claim, "must be a number of seconds"))
}

/// `"topics"`: `"*"`, or a list of topic names (`"*"` among them grants every topic).
fn topics(value: Option<Value>) -> Result<TopicGrant, AuthError> {
    let names = match value {
        None | Some(Value::Null) => return Ok(TopicGrant::None),
        Some(Value::String(s)) if s == "*" => return Ok(TopicGrant::All),
        Some(Value::Array(names)) => names,
        Some(_) => return Err(invalid("topics", "must be \"*\" or a list of topic names")),
    };
    let mut topics = std::collections::HashSet::new();
    for name in names {
        let Value::String(name) = name else {
            return Err(invalid("topics", "must list strings"));
        };
        if name == "*" {
            return Ok(TopicGrant::All);
        }
        let topic = Topic::new(&name).map_err(|e| invalid("topics", e.to_string()))?;
        topics.insert(topic);
    }
    Ok(TopicGrant::Only(topics))
}

/// `"runs"`: a list of backtest ids.
fn runs(value: Option<Value>) -> Result<std::collections::HashSet<BacktestId>, AuthError> {
    let ids = match value {
        None | Some(Value::Null) => return Ok(Default::default()),
        Some(Value::Array(ids)) => ids,
        Some(_) => return Err(invalid("runs", "must be a list of backtest ids")),
    };
    ids.into_iter()
        .map(|id| match id {
            Value::String(id) => BacktestId::new(&id).map_err(|e| invalid("runs", e.to_string())),
            _ => Err(invalid("runs", "must list strings")),
        })
        .collect()
}
