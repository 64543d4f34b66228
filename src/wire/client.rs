//! What a client sends: [`ClientMessage`], and the [`BadRequest`] a server answers when it
//! cannot act on a message.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::wire::id::BacktestId;
use crate::wire::loose::{Loose, Parsed};
use crate::wire::topic::Topic;

/// A message a client sends to the server, parsed and validated.
///
/// Its serde form is the wire form (`{"action": "subscribe", "topic": ...}`); unknown keys
/// are ignored. [`parse`](Self::parse) tells exactly what is wrong with a message the
/// server cannot act on, as a [`BadRequest`] (the text of the `bad_request` error reply).
///
/// ```
/// use backtest_stream::wire::{BadRequest, ClientMessage, Subscribe, Topic};
///
/// assert_eq!(ClientMessage::parse(r#"{"action":"ping"}"#), Ok(ClientMessage::Ping));
/// assert_eq!(
///     ClientMessage::parse(r#"{"action":"subscribe"}"#),
///     Err(BadRequest::MissingTopic)
/// );
/// let resume = ClientMessage::from(Subscribe::to(Topic::BACKTEST).since(41, "e1"));
/// assert_eq!(
///     resume.to_json(),
///     r#"{"action":"subscribe","topic":"backtest","since":41,"epoch":"e1"}"#
/// );
/// assert_eq!(ClientMessage::parse(&resume.to_json()), Ok(resume));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// `{"action":"subscribe","topic":...}` with its options.
    Subscribe(Subscribe),
    /// `{"action":"unsubscribe","topic":...}`
    Unsubscribe {
        /// The topic to leave.
        topic: Topic,
    },
    /// `{"action":"ping"}`: the server answers `{"type":"pong"}`.
    Ping,
    /// `{"action":"auth","token":...}`: authenticate (the first message after an upgrade
    /// without a token), or refresh the token.
    Auth {
        /// The bearer token (a JWT).
        token: String,
    },
}

/// A subscribe request: a topic, or one run on it, with its replay options.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Subscribe {
    /// The topic.
    pub topic: Topic,
    /// Only events of this run, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtest_id: Option<BacktestId>,
    /// Replay what the server holds after this seq first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// The epoch `since` belongs to; absent means the server's current epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// Send the current state of each known run first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
}

impl Subscribe {
    /// A subscribe to the whole of `topic`, without replay.
    pub fn to(topic: Topic) -> Self {
        Self {
            topic,
            ..Self::default()
        }
    }

    /// Only the events of run `id`.
    pub fn run(mut self, id: BacktestId) -> Self {
        self.backtest_id = Some(id);
        self
    }

    /// First replay what the server holds after `seq` of `epoch`.
    pub fn since(mut self, seq: u64, epoch: impl Into<String>) -> Self {
        self.since = Some(seq);
        self.epoch = Some(epoch.into());
        self
    }

    /// First send the current state of each run the server knows.
    pub fn snapshot(mut self) -> Self {
        self.snapshot = true;
        self
    }
}

impl From<Subscribe> for ClientMessage {
    fn from(subscribe: Subscribe) -> Self {
        ClientMessage::Subscribe(subscribe)
    }
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
    #[error("unknown action {0:?}; expected subscribe, unsubscribe, ping or auth")]
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
    /// An `auth` message without a token.
    #[error("missing or empty \"token\"")]
    MissingToken,
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

impl ClientMessage {
    /// Parses a text frame. Unknown keys are ignored; a key given twice counts once, with
    /// its last value.
    pub fn parse(text: &str) -> Result<Self, BadRequest> {
        let Parsed(fields) =
            serde_json::from_str(text).map_err(|e| BadRequest::NotJson(e.to_string()))?;
        fields?.into_message()
    }

    /// The message's JSON text.
    pub fn to_json(&self) -> String {
        // Only strings, integers and booleans: serializing into memory cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for ClientMessage {
    /// Reads a message with the rules and errors of [`ClientMessage::parse`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Parsed(fields) = Parsed::deserialize(deserializer)?;
        fields
            .and_then(Fields::into_message)
            .map_err(de::Error::custom)
    }
}

/// The known keys of a client message, each as the loosely typed value it had, so that a
/// wrong type is reported with the field it is in, and only when the action uses it.
#[derive(Default)]
pub(super) struct Fields {
    pub(super) action: Option<Loose>,
    pub(super) topic: Option<Loose>,
    pub(super) backtest_id: Option<Loose>,
    pub(super) since: Option<Loose>,
    pub(super) epoch: Option<Loose>,
    pub(super) snapshot: Option<Loose>,
    pub(super) token: Option<Loose>,
}

impl Fields {
    pub(super) fn into_message(self) -> Result<ClientMessage, BadRequest> {
        let action = match self.action {
            None | Some(Loose::Null) => return Err(BadRequest::MissingAction),
            Some(Loose::Str(action)) => action,
            Some(other) => return Err(wrong_type("action", "a string", &other)),
        };
        match action.as_str() {
            "ping" => Ok(ClientMessage::Ping),
            "auth" => match string("token", self.token)? {
                Some(token) if !token.is_empty() => Ok(ClientMessage::Auth { token }),
                _ => Err(BadRequest::MissingToken),
            },
            "unsubscribe" => Ok(ClientMessage::Unsubscribe {
                topic: topic(self.topic)?,
            }),
            "subscribe" => Ok(ClientMessage::Subscribe(Subscribe {
                topic: topic(self.topic)?,
                backtest_id: string("backtest_id", self.backtest_id)?
                    .map(|id| {
                        BacktestId::try_from(id).map_err(|e| BadRequest::InvalidValue {
                            field: "backtest_id",
                            reason: e.to_string(),
                        })
                    })
                    .transpose()?,
                since: since(self.since)?,
                epoch: string("epoch", self.epoch)?,
                snapshot: match self.snapshot {
                    None | Some(Loose::Null) => false,
                    Some(Loose::Bool(b)) => b,
                    Some(other) => return Err(wrong_type("snapshot", "a boolean", &other)),
                },
            })),
            _ => Err(BadRequest::UnknownAction(action)),
        }
    }
}

fn wrong_type(field: &'static str, expected: &'static str, got: &Loose) -> BadRequest {
    BadRequest::WrongType {
        field,
        expected,
        got: got.type_name(),
    }
}

fn string(field: &'static str, value: Option<Loose>) -> Result<Option<String>, BadRequest> {
    match value {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

fn topic(value: Option<Loose>) -> Result<Topic, BadRequest> {
    match string("topic", value)? {
        None => Err(BadRequest::MissingTopic),
        Some(name) if name.is_empty() => Err(BadRequest::MissingTopic),
        Some(name) => Topic::new(name).map_err(|e| BadRequest::InvalidValue {
            field: "topic",
            reason: e.to_string(),
        }),
    }
}

fn since(value: Option<Loose>) -> Result<Option<u64>, BadRequest> {
    match value {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::Unsigned(n)) => Ok(Some(n)),
        Some(Loose::OtherNumber(n)) => Err(BadRequest::InvalidValue {
            field: "since",
            reason: format!("{n} is not a non-negative integer"),
        }),
        Some(other) => Err(wrong_type("since", "a non-negative integer", &other)),
    }
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
    fn every_json_type_is_named_in_errors() {
        for (text, got) in [
            ("null", "null"),
            ("true", "a boolean"),
            ("-3", "a number"),
            ("2.5", "a number"),
            (r#""x""#, "a string"),
            ("[[1],{}]", "an array"),
        ] {
            assert_eq!(
                ClientMessage::parse(text),
                Err(BadRequest::NotObject(got)),
                "{text}"
            );
        }
        for (value, got) in [
            ("{}", "an object"),
            ("[1]", "an array"),
            ("true", "a boolean"),
            ("1.5", "a number"),
        ] {
            let text = format!(r#"{{"action":"subscribe","topic":{value}}}"#);
            assert_eq!(
                ClientMessage::parse(&text),
                Err(BadRequest::WrongType {
                    field: "topic",
                    expected: "a string",
                    got
                }),
                "{text}"
            );
        }
        assert_eq!(
            ClientMessage::parse(r#"{"action":"subscribe","topic":"t","since":1.5}"#),
            Err(BadRequest::InvalidValue {
                field: "since",
                reason: "1.5 is not a non-negative integer".into()
            })
        );
    }

    #[test]
    fn invalid_json_anywhere_is_not_json() {
        let deep = format!(
            r#"{{"action":"ping","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        for text in [
            r#"{"action":"ping","x":1e400}"#,
            r#"{"action":"ping","x":"\ud800"}"#,
            r#"{"action":"ping","x":{"y":[1e400]}}"#,
            "[1e400]",
            r#"{"action":"subscribe","topic":[1e400]}"#,
            &deep,
        ] {
            assert!(
                matches!(ClientMessage::parse(text), Err(BadRequest::NotJson(_))),
                "{text}: {:?}",
                ClientMessage::parse(text)
            );
        }
    }

    #[test]
    fn fields_an_action_does_not_use_are_not_checked() {
        assert_eq!(
            ClientMessage::parse(r#"{"since":"x","action":"ping","topic":[]}"#),
            Ok(ClientMessage::Ping)
        );
    }

    #[test]
    fn serde_reads_with_the_same_rules() {
        let error = serde_json::from_str::<ClientMessage>(r#"{"action":"subscribe","topic":7}"#)
            .expect_err("a number is no topic");
        assert!(
            error.to_string().contains("\"topic\" must be a string"),
            "{error}"
        );
        let message: ClientMessage =
            serde_json::from_str(r#"{"action":"unsubscribe","topic":"logs"}"#).unwrap();
        assert_eq!(message, ClientMessage::Unsubscribe { topic: Topic::LOGS });
    }
}
