//! The client side of the wire protocol: the messages a client sends, the replies the
//! server makes, and the `bad_request` errors for input it cannot act on.

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{BacktestId, Topic};

/// A message a client sent, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `{"action":"subscribe","topic":...}` with its options.
    Subscribe(Subscribe),
    /// `{"action":"unsubscribe","topic":...}`
    Unsubscribe {
        /// The topic to leave.
        topic: Topic,
    },
    /// `{"action":"ping"}`
    Ping,
}

/// A subscribe request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    /// The topic.
    pub topic: Topic,
    /// Only events of this run, when set.
    pub backtest_id: Option<BacktestId>,
    /// Replay what the server holds after this seq first.
    pub since: Option<u64>,
    /// The epoch `since` belongs to; absent means the server's current epoch.
    pub epoch: Option<String>,
    /// Send the current state of each known run first.
    pub snapshot: bool,
}

/// Why a client message cannot be acted on; its text is the `error` of the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadRequest {
    /// The text is not JSON.
    #[error("message is not valid JSON: {0}")]
    NotJson(String),
    /// The JSON is not an object.
    #[error("message must be a JSON object, got {0}")]
    NotObject(&'static str),
    /// No `action` key.
    #[error("missing \"action\"")]
    MissingAction,
    /// An action nobody knows.
    #[error("unknown action {0:?}; expected subscribe, unsubscribe or ping")]
    UnknownAction(String),
    /// No topic, or an empty one.
    #[error("missing or empty \"topic\"")]
    MissingTopic,
    /// A field has the wrong JSON type.
    #[error("field {field:?} must be {expected}, got {got}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        got: &'static str,
    },
    /// A field has the right type but an invalid value.
    #[error("field {field:?} is invalid: {reason}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A binary frame.
    #[error("binary frames are not supported; send JSON text frames")]
    Binary,
    /// The connection holds as many subscriptions as allowed.
    #[error("too many subscriptions on this connection (limit {limit})")]
    TooManySubscriptions {
        /// The limit, `ServerConfig::max_subscriptions`.
        limit: usize,
    },
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, BadRequest> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(BadRequest::WrongType {
            field,
            expected: "a string",
            got: type_name(other),
        }),
    }
}

fn topic_field(object: &Map<String, Value>) -> Result<Topic, BadRequest> {
    match string_field(object, "topic")? {
        None | Some("") => Err(BadRequest::MissingTopic),
        Some(name) => Topic::new(name).map_err(|e| BadRequest::InvalidValue {
            field: "topic",
            reason: e.to_string(),
        }),
    }
}

impl ClientMessage {
    /// Parses a text frame. Unknown keys are ignored.
    ///
    /// ```
    /// use backtest_stream::server::{BadRequest, ClientMessage};
    ///
    /// assert_eq!(ClientMessage::parse(r#"{"action":"ping"}"#), Ok(ClientMessage::Ping));
    /// assert_eq!(
    ///     ClientMessage::parse(r#"{"action":"subscribe"}"#),
    ///     Err(BadRequest::MissingTopic)
    /// );
    /// ```
    pub fn parse(text: &str) -> Result<Self, BadRequest> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| BadRequest::NotJson(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(BadRequest::NotObject(type_name(&value)));
        };
        let action = match object.get("action") {
            None | Some(Value::Null) => return Err(BadRequest::MissingAction),
            Some(Value::String(action)) => action.as_str(),
            Some(other) => {
                return Err(BadRequest::WrongType {
                    field: "action",
                    expected: "a string",
                    got: type_name(other),
                });
            }
        };
        match action {
            "ping" => Ok(ClientMessage::Ping),
            "unsubscribe" => Ok(ClientMessage::Unsubscribe {
                topic: topic_field(&object)?,
            }),
            "subscribe" => {
                let topic = topic_field(&object)?;
                let backtest_id = string_field(&object, "backtest_id")?
                    .map(|id| {
                        BacktestId::new(id).map_err(|e| BadRequest::InvalidValue {
                            field: "backtest_id",
                            reason: e.to_string(),
                        })
                    })
                    .transpose()?;
                let since = match object.get("since") {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => {
                        Some(n.as_u64().ok_or_else(|| BadRequest::InvalidValue {
                            field: "since",
                            reason: format!("{n} is not a non-negative integer"),
                        })?)
                    }
                    Some(other) => {
                        return Err(BadRequest::WrongType {
                            field: "since",
                            expected: "a non-negative integer",
                            got: type_name(other),
                        });
                    }
                };
                let epoch = string_field(&object, "epoch")?.map(str::to_owned);
                let snapshot = match object.get("snapshot") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(BadRequest::WrongType {
                            field: "snapshot",
                            expected: "a boolean",
                            got: type_name(other),
                        });
                    }
                };
                Ok(ClientMessage::Subscribe(Subscribe {
                    topic,
                    backtest_id,
                    since,
                    epoch,
                    snapshot,
                }))
            }
            other => Err(BadRequest::UnknownAction(other.to_owned())),
        }
    }
}

fn frame_of(value: &impl Serialize) -> Utf8Bytes {
    // These reply types hold only strings, integers and booleans: serializing them into
    // memory cannot fail.
    Utf8Bytes::from(serde_json::to_string(value).unwrap_or_default())
}

/// `{"type":"pong"}`
pub(crate) fn pong_frame() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"type":"pong"}"#)
}

/// `{"type":KIND,"data":DATA}`: the shape of the replies that carry data.
fn data_frame(kind: &str, data: impl Serialize) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Reply<'a, D> {
        r#type: &'a str,
        data: D,
    }
    frame_of(&Reply { r#type: kind, data })
}

/// `{"type":"error","data":{"code":"bad_request","error":"..."}}`
pub(crate) fn error_frame(error: &BadRequest) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Data<'a> {
        code: &'a str,
        error: String,
    }
    data_frame(
        "error",
        Data {
            code: "bad_request",
            error: error.to_string(),
        },
    )
}

/// `{"type":"subscription_confirmed","topic":...}` with its optional keys.
pub(crate) fn confirmation_frame(
    topic: &Topic,
    backtest_id: Option<&BacktestId>,
    epoch: &str,
    seq: u64,
    recovered: Option<bool>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Reply<'a> {
        r#type: &'a str,
        topic: &'a Topic,
        #[serde(skip_serializing_if = "Option::is_none")]
        backtest_id: Option<&'a BacktestId>,
        epoch: &'a str,
        seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    }
    frame_of(&Reply {
        r#type: "subscription_confirmed",
        topic,
        backtest_id,
        epoch,
        seq,
        recovered,
    })
}

/// `{"type":"unsubscribed","topic":...}`
pub(crate) fn unsubscribed_frame(topic: &Topic) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Reply<'a> {
        r#type: &'a str,
        topic: &'a Topic,
    }
    frame_of(&Reply {
        r#type: "unsubscribed",
        topic,
    })
}

/// `{"type":"lagged","data":{"topic":...,"missed":N}}`
pub(crate) fn lagged_frame(topic: &Topic, missed: u64) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Data<'a> {
        topic: &'a Topic,
        missed: u64,
    }
    data_frame("lagged", Data { topic, missed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_with_every_option_parses() {
        let parsed = ClientMessage::parse(
            r#"{"action":"subscribe","topic":"backtest","backtest_id":"r1","since":5,"epoch":"e","snapshot":true,"extra":1}"#,
        );
        assert_eq!(
            parsed,
            Ok(ClientMessage::Subscribe(Subscribe {
                topic: Topic::BACKTEST,
                backtest_id: Some(BacktestId::new("r1").unwrap()),
                since: Some(5),
                epoch: Some("e".into()),
                snapshot: true,
            }))
        );
    }

    #[test]
    fn bad_inputs_are_typed() {
        assert!(matches!(
            ClientMessage::parse("nope"),
            Err(BadRequest::NotJson(_))
        ));
        assert_eq!(
            ClientMessage::parse("[1]"),
            Err(BadRequest::NotObject("an array"))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"fly"}"#),
            Err(BadRequest::UnknownAction("fly".into()))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"subscribe","topic":""}"#),
            Err(BadRequest::MissingTopic)
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"action":"subscribe","topic":1}"#),
            Err(BadRequest::WrongType { field: "topic", .. })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"action":"subscribe","topic":"t","since":-1}"#),
            Err(BadRequest::InvalidValue { field: "since", .. })
        ));
    }

    #[test]
    fn reply_frames_have_the_protocol_shape() {
        assert_eq!(
            confirmation_frame(&Topic::BACKTEST, None, "E", 3, None).as_str(),
            r#"{"type":"subscription_confirmed","topic":"backtest","epoch":"E","seq":3}"#
        );
        assert_eq!(
            lagged_frame(&Topic::LOGS, 7).as_str(),
            r#"{"type":"lagged","data":{"topic":"logs","missed":7}}"#
        );
        assert_eq!(
            error_frame(&BadRequest::MissingTopic).as_str(),
            r#"{"type":"error","data":{"code":"bad_request","error":"missing or empty \"topic\""}}"#
        );
    }
}
