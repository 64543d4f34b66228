//! What a client receives: [`ServerMessage`], the replies to its requests and the event
//! frames of its subscriptions.

use serde::{Deserialize, Serialize};

use crate::wire::envelope::EventFrame;
use crate::wire::event::EventKind;
use crate::wire::id::BacktestId;
use crate::wire::topic::Topic;

/// A message a server sends: a reply to the client's own request, a `lagged` notice, or
/// an event of a subscription.
///
/// Its serde form is the wire form; [`from_json`](Self::from_json) reads a text frame and
/// names what is wrong with one it cannot read.
///
/// ```
/// use backtest_stream::wire::{ErrorCode, ServerMessage};
///
/// match ServerMessage::from_json(r#"{"type":"error","data":{"code":"bad_request","error":"missing \"action\""}}"#)? {
///     ServerMessage::Error { data } => assert_eq!(data.code, ErrorCode::BadRequest),
///     other => panic!("not an error: {other:?}"),
/// }
/// assert_eq!(ServerMessage::Pong.to_json(), r#"{"type":"pong"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// `{"type":"subscription_confirmed","topic":...}`: a subscribe took effect.
    SubscriptionConfirmed(Confirmation),
    /// `{"type":"unsubscribed","topic":...}`: an unsubscribe took effect.
    Unsubscribed(Unsubscribed),
    /// `{"type":"pong"}`: the answer to a ping.
    Pong,
    /// `{"type":"error","data":{"code":...,"error":...}}`: a message the server could not
    /// act on. The connection stays open and nothing else changed.
    Error {
        /// What went wrong.
        data: ErrorData,
    },
    /// `{"type":"lagged","data":{"topic":...,"missed":N}}`: the client missed events of a
    /// topic; sent before the next event of that topic it gets.
    Lagged {
        /// Which topic, how many.
        data: LagNotice,
    },
    /// An event of a subscription: `{"type":"backtest_progress","data":{...},"topic":...,"seq":N}`.
    #[serde(untagged)]
    Event(EventFrame),
}

/// `subscription_confirmed`: what a subscribe got.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Confirmation {
    /// The topic subscribed to.
    pub topic: Topic,
    /// The run, for a subscribe to one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest_id: Option<BacktestId>,
    /// The server's epoch: seqs of another epoch mean nothing here. (The original system
    /// sent no epoch.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The topic's head: the seq of its last event (0 before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// For a subscribe with `since`: whether every event after `since` follows (`false`:
    /// some were no longer held, or the epoch changed; reload state with a snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// `unsubscribed`: an unsubscribe took effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribed {
    /// The topic left.
    pub topic: Topic,
}

/// The `data` of an `error` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// Why, for a person.
    pub error: String,
}

/// The `code` of an `error` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_request`: the message is malformed or not allowed on this connection.
    BadRequest,
    /// `unauthorized`: no valid token yet (servers configured with a verifier).
    Unauthorized,
    /// `forbidden`: the token does not grant this subscription.
    Forbidden,
    /// `rate_limited`: the client sent more messages than its limit allows.
    RateLimited,
}

impl ErrorCode {
    /// The wire name (`"bad_request"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data` of a `lagged` notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagNotice {
    /// The topic whose events were missed.
    pub topic: Topic,
    /// How many were missed.
    pub missed: u64,
}

impl ServerMessage {
    /// An `error` reply.
    pub fn error(code: ErrorCode, error: impl Into<String>) -> Self {
        ServerMessage::Error {
            data: ErrorData {
                code,
                error: error.into(),
            },
        }
    }

    /// A `lagged` notice.
    pub fn lagged(topic: Topic, missed: u64) -> Self {
        ServerMessage::Lagged {
            data: LagNotice { topic, missed },
        }
    }

    /// The message's JSON text.
    pub fn to_json(&self) -> String {
        match self {
            // The events' own writer: the same bytes, a third of the time.
            ServerMessage::Event(frame) => frame.to_json(),
            // Strings, integers and booleans only: serializing into memory cannot fail.
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }

    /// Reads a text frame. A frame that is not a message says what is wrong with it:
    /// which `type`, which field.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text).map_err(|error| diagnose(text).unwrap_or(error))
    }
}

/// Reads a frame that did not parse as the kind its `type` names, for an error that
/// says which field is wrong (serde's untagged fallback cannot tell).
fn diagnose(text: &str) -> Option<serde_json::Error> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    let kind = match serde_json::from_str::<Kind>(text) {
        Ok(Kind { kind }) => kind,
        Err(error) => return Some(error),
    };
    fn error_of<T: for<'de> Deserialize<'de>>(text: &str) -> Option<serde_json::Error> {
        serde_json::from_str::<T>(text).err()
    }
    #[derive(Deserialize)]
    struct Data<T> {
        #[allow(dead_code)] // read only for its errors
        data: T,
    }
    match kind.as_str() {
        "subscription_confirmed" => error_of::<Confirmation>(text),
        "unsubscribed" => error_of::<Unsubscribed>(text),
        "error" => error_of::<Data<ErrorData>>(text),
        "lagged" => error_of::<Data<LagNotice>>(text),
        kind if EventKind::from_name(kind).is_some() => error_of::<EventFrame>(text),
        kind => Some(serde::de::Error::custom(format_args!(
            "unknown frame type {kind:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_have_the_protocol_shape() {
        let confirmation = ServerMessage::SubscriptionConfirmed(Confirmation {
            topic: Topic::BACKTEST,
            epoch: Some("E".into()),
            seq: Some(3),
            ..Confirmation::default()
        });
        assert_eq!(
            confirmation.to_json(),
            r#"{"type":"subscription_confirmed","topic":"backtest","epoch":"E","seq":3}"#
        );
        assert_eq!(
            ServerMessage::lagged(Topic::LOGS, 7).to_json(),
            r#"{"type":"lagged","data":{"topic":"logs","missed":7}}"#
        );
        assert_eq!(
            ServerMessage::error(ErrorCode::BadRequest, "missing or empty \"topic\"").to_json(),
            r#"{"type":"error","data":{"code":"bad_request","error":"missing or empty \"topic\""}}"#
        );
        assert_eq!(
            ServerMessage::Unsubscribed(Unsubscribed { topic: Topic::LOGS }).to_json(),
            r#"{"type":"unsubscribed","topic":"logs"}"#
        );
        for message in [
            confirmation,
            ServerMessage::Pong,
            ServerMessage::lagged(Topic::LOGS, 7),
        ] {
            assert_eq!(
                ServerMessage::from_json(&message.to_json()).unwrap(),
                message
            );
        }
    }

    #[test]
    fn error_codes_are_named_as_serde_writes_them() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::RateLimited,
        ] {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }

    #[test]
    fn the_original_confirmation_reads_too() {
        let message =
            ServerMessage::from_json(r#"{"type":"subscription_confirmed","topic":"backtest"}"#)
                .unwrap();
        assert_eq!(
            message,
            ServerMessage::SubscriptionConfirmed(Confirmation {
                topic: Topic::BACKTEST,
                ..Confirmation::default()
            })
        );
    }

    #[test]
    fn unreadable_frames_name_the_problem() {
        for (text, expected) in [
            (
                r#"{"type":"lagged","data":{"topic":"b"}}"#,
                "missing field `missed`",
            ),
            (r#"{"type":"nope"}"#, "unknown frame type \"nope\""),
            (r#"{"data":{}}"#, "missing field `type`"),
            (
                r#"{"type":"backtest_error","data":{"backtest_id":"a","error":1,"error_details":"","timestamp":"2024-01-15T10:30:45.000Z"},"topic":"t","seq":1}"#,
                "invalid type",
            ),
            (
                r#"{"type":"backtest_error","data":{"backtest_id":"a","error":"","error_details":"","timestamp":"2024-01-15T10:30:45.000Z"},"topic":"t"}"#,
                "missing field `seq`",
            ),
        ] {
            let error = ServerMessage::from_json(text).expect_err(text);
            assert!(
                error.to_string().contains(expected),
                "{text}: {error} should mention {expected}"
            );
        }
    }
}
