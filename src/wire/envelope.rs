//! The framing of events: an [`Envelope`] (an event and its topic) and an [`EventFrame`]
//! (an envelope numbered on its topic).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::wire::event::Event;
use crate::wire::topic::Topic;

/// An event together with the topic it is published on: what a sink receives.
///
/// The event sits behind an [`Arc`], so handing an envelope to several sinks or queues
/// never copies the event. Its JSON form is the event's JSON plus a top-level `topic`
/// key; read back, a missing `topic` means [`Topic::BACKTEST`] and unknown keys (such as
/// a frame's `seq`) are ignored.
///
/// ```
/// use backtest_stream::wire::{Envelope, Event, LogEntry, LogLevel, Timestamp, Topic};
///
/// let entry = LogEntry {
///     backtest_id: None,
///     timestamp: Timestamp::from_unix_millis(0).unwrap(),
///     level: LogLevel::Info,
///     message: "hello".into(),
///     module: "main".into(),
///     function: String::new(),
///     line: 7,
///     logger_name: "app".into(),
/// };
/// let envelope = Envelope::new(Topic::LOGS, Event::LogEntry(entry));
/// let json = envelope.to_json();
/// assert!(json.starts_with(r#"{"type":"log_entry","data":{"backtest_id":null,"#));
/// assert!(json.ends_with(r#","topic":"logs"}"#));
/// assert_eq!(Envelope::from_json(&json).unwrap(), envelope);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event.
    #[serde(flatten)]
    pub event: Arc<Event>,
    /// The topic the event is published on.
    #[serde(default)]
    pub topic: Topic,
}

impl Envelope {
    /// Wraps an event for publishing on `topic`.
    pub fn new(topic: Topic, event: impl Into<Arc<Event>>) -> Self {
        Self {
            topic,
            event: event.into(),
        }
    }

    /// Parses an envelope from JSON (see the type's documentation for what is accepted).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// An event as a WebSocket client receives it: an [`Envelope`] numbered on its topic,
/// `{"type":...,"data":{...},"topic":"...","seq":N}`.
///
/// A topic numbers its events 1, 2, 3, ... in the epoch of the server (or broker) that
/// numbered them; a client resumes after a reconnect with the last `seq` it handled (see
/// [`Subscribe::since`](crate::wire::Subscribe::since)).
///
/// ```
/// use backtest_stream::wire::{Envelope, Event, EventFrame, ServerMessage};
///
/// let text = r#"{"type":"backtest_error","data":{"backtest_id":"r1","error":"failed","error_details":"","timestamp":"2024-01-15T10:30:45.000Z"},"topic":"backtest","seq":7}"#;
/// let ServerMessage::Event(frame) = ServerMessage::from_json(text)? else { unreachable!() };
/// assert_eq!(frame.seq, 7);
/// assert!(matches!(*frame.envelope.event, Event::BacktestError(_)));
/// assert_eq!(frame.to_json(), text);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// The event and its topic.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// The event's number on its topic.
    pub seq: u64,
}

impl EventFrame {
    /// Numbers an envelope.
    pub fn new(envelope: Envelope, seq: u64) -> Self {
        Self { envelope, seq }
    }
}
