//! The wire contract: every byte that travels between a backtest and a user interface.
//!
//! [`docs/PROTOCOL.md`](protocol) is the contract as users read it; this module is its one
//! owner in code:
//!
//! - the five **events**, [`Event`] and its payloads, with exactly the field names, order
//!   and JSON types of the original system (`{"type": "backtest_progress", "data": {...}}`);
//! - the values they carry: [`BacktestId`], [`Topic`], [`Timestamp`] (RFC 3339 with
//!   milliseconds and `Z`), [`Trade`] and the open [`Results`] object;
//! - their **framing**: an [`Envelope`] is an event and its topic (what a sink receives and
//!   a JSON Lines file holds); an [`EventFrame`] is an envelope numbered on its topic (what
//!   a WebSocket client receives, with `topic` and `seq` at the top level);
//! - the **protocol** in both directions: [`ClientMessage`] (subscribe, unsubscribe, ping)
//!   and [`ServerMessage`] (confirmations, errors, `lagged` notices and event frames), and
//!   the [`CloseCode`]s that tell a client whether to reconnect.
//!
//! Every type here implements serde's `Serialize` and `Deserialize`, and its serde form
//! *is* its wire form: a Rust client reads a server's frames with
//! [`ServerMessage::from_json`] and writes its requests with [`ClientMessage::to_json`].
//! Numbers that are not finite are written as `null` and read back as `NaN`.
//!
//! The events also have a hand-written writer ([`Event::write_json`],
//! [`Envelope::write_json`], [`EventFrame::write_json`]) for the hub's hot path, where it
//! costs about a third of what serde_json takes to write the same frame into a reused
//! buffer (`cargo bench --bench events`, groups `frame_hand` and `frame_serde`). A
//! property test over random events (`tests/wire_properties.rs`) keeps its bytes identical
//! to serde's.
//!
//! ```
//! use backtest_stream::wire::{ClientMessage, ServerMessage, Subscribe, Topic};
//!
//! let subscribe = ClientMessage::from(Subscribe::to(Topic::BACKTEST).snapshot());
//! assert_eq!(subscribe.to_json(), r#"{"action":"subscribe","topic":"backtest","snapshot":true}"#);
//!
//! let reply = ServerMessage::from_json(
//!     r#"{"type":"subscription_confirmed","topic":"backtest","epoch":"e1","seq":41}"#,
//! )?;
//! let ServerMessage::SubscriptionConfirmed(confirmation) = reply else { unreachable!() };
//! assert_eq!(confirmation.seq, Some(41));
//! # Ok::<(), serde_json::Error>(())
//! ```

mod client;
mod close;
mod envelope;
mod event;
mod finite;
mod id;
mod loose;
mod name;
mod results;
mod server;
mod timestamp;
mod topic;
mod trade;
mod writer;

pub use client::{BadRequest, ClientMessage, Subscribe};
pub use close::{CloseAdvice, CloseCode};
pub use envelope::{Envelope, EventFrame};
pub use event::{
    BacktestComplete, BacktestError, BacktestProgress, BacktestStart, Event, EventKind, LogEntry,
    LogLevel,
};
pub use id::{BacktestId, InvalidBacktestId};
pub use results::Results;
pub use server::{Confirmation, ErrorCode, ErrorData, LagNotice, ServerMessage, Unsubscribed};
pub use timestamp::{Timestamp, TimestampError};
pub use topic::{InvalidTopic, Topic};
pub use trade::{Side, Trade};

#[doc = include_str!("../../docs/PROTOCOL.md")]
pub mod protocol {}
