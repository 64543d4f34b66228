//! One watching session over the WebSocket: connecting, subscribing (or resuming where
//! the last connection stopped), and reading the server's frames with the crate's own
//! wire types.

use std::time::Duration;

use backtest_stream::wire::{
    BacktestId, ClientMessage, CloseCode, Confirmation, EventFrame, ServerMessage, Subscribe, Topic,
};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::view::View;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection that did not drop ended.
pub(crate) enum Outcome {
    /// `--exit-after-complete` is satisfied.
    Done,
    /// The server answered the subscribe with an error: watching cannot go on.
    Refused(String),
    /// The snapshot shows that the server does not know the run of `--backtest-id`.
    UnknownRun(BacktestId),
}

/// How a connection ended.
pub(crate) enum Ended {
    /// It dropped (or could not be read): reconnect.
    Lost(String),
    /// The server closed it with this code (when it sent a known one), and why.
    Closed(Option<CloseCode>, String),
}

/// Why a connection attempt failed, and whether trying again could help.
pub(crate) struct ConnectError {
    pub(crate) reason: String,
    /// The server refused the request itself (wrong path, token refused): the same
    /// request would be refused again.
    pub(crate) fatal: bool,
}

/// What a frame calls for.
enum Reply {
    Nothing,
    Send(ClientMessage),
    Refused(String),
}

/// What the watcher follows, where it is in the topic's numbering, and what it shows.
pub(crate) struct Session {
    pub(crate) view: View,
    /// Only this run, with `--backtest-id`.
    run: Option<BacktestId>,
    cursor: Cursor,
    /// Whether the server confirmed a subscription on this connection.
    subscribed: bool,
    /// Sent first on each connection, when set.
    token: Option<String>,
    /// A plain subscribe sent after a snapshot of one run: its confirmation comes after
    /// the snapshot's frames, so the run is known by then or unknown to the server.
    awaiting_barrier: bool,
    /// How long the run of `--backtest-id` may stay unknown after a snapshot showed it
    /// absent (`--exit-after-complete`); without it, the watcher waits for it.
    unknown_grace: Option<Duration>,
    /// Since when the run of `--backtest-id` is known to be absent.
    unknown_since: Option<tokio::time::Instant>,
}

/// Where the watcher is in the topic's numbering, for deduplication and resuming.
#[derive(Default)]
struct Cursor {
    /// The server's epoch, from the last confirmation.
    epoch: Option<String>,
    /// The highest seq handled (or covered by a snapshot).
    last_seq: u64,
    /// After a snapshot confirmation: frames up to this seq are the snapshot's.
    snapshot_head: Option<u64>,
    /// Whether the last subscribe asked for a snapshot.
    asked_snapshot: bool,
}

impl Cursor {
    /// Whether a frame with this seq is new (and records it).
    fn accept(&mut self, seq: u64) -> bool {
        if let Some(head) = self.snapshot_head {
            if seq <= head {
                // Snapshot frames come run by run, not in seq order: the run state makes
                // them idempotent.
                return true;
            }
            self.snapshot_head = None;
        }
        if seq <= self.last_seq {
            return false;
        }
        self.last_seq = seq;
        true
    }
}

/// Opens the WebSocket; the error has a short reason (`connection refused`).
pub(crate) async fn connect(url: &str) -> Result<Socket, ConnectError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
        Err(_) => Err(ConnectError {
            reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            fatal: false,
        }),
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(error)) => Err(ConnectError {
            fatal: matches!(&error, tungstenite::Error::Http(r)
                if [401, 403, 404].contains(&r.status().as_u16())),
            reason: describe(&error),
        }),
    }
}

fn describe(error: &tungstenite::Error) -> String {
    use std::io::ErrorKind;
    match error {
        tungstenite::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::TimedOut
            | ErrorKind::AddrNotAvailable
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::UnexpectedEof => io.kind().to_string(),
            _ => io.to_string(),
        },
        tungstenite::Error::Http(response) => {
            format!(
                "the server answered HTTP {} instead of a WebSocket",
                response.status()
            )
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => "connection reset".into(),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "the connection was closed".into()
        }
        other => other.to_string(),
    }
}

/// How the server closed the connection: its code, and why for a person.
fn closed(frame: Option<&CloseFrame>) -> Ended {
    let code = frame.and_then(|f| CloseCode::from_code(u16::from(f.code)));
    Ended::Closed(code, closed_text(frame))
}

fn closed_text(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(frame) if !frame.reason.is_empty() => format!(
            "the server closed the connection ({} {})",
            u16::from(frame.code),
            frame.reason
        ),
        Some(frame) => format!(
            "the server closed the connection ({})",
            u16::from(frame.code)
        ),
        None => "the server closed the connection".into(),
    }
}

impl Session {
    pub(crate) fn new(
        view: View,
        run: Option<BacktestId>,
        token: Option<String>,
        unknown_grace: Option<Duration>,
    ) -> Self {
        Self {
            view,
            run,
            cursor: Cursor::default(),
            subscribed: false,
            token,
            awaiting_barrier: false,
            unknown_grace,
            unknown_since: None,
        }
    }

    /// Authenticates (with a token) and subscribes on a fresh connection, and handles
    /// its frames until it ends.
    pub(crate) async fn follow(&mut self, socket: &mut Socket) -> Result<Outcome, Ended> {
        self.subscribed = false;
        self.awaiting_barrier = false;
        if let Some(token) = &self.token {
            let auth = ClientMessage::Auth {
                token: token.clone(),
            };
            send(socket, &auth).await?;
        }
        let subscribe = self.subscribe_message();
        send(socket, &subscribe).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                message = socket.next() => {
                    let text = match message {
                        None => return Err(Ended::Lost("the server closed the connection".into())),
                        Some(Err(error)) => return Err(Ended::Lost(describe(&error))),
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => return Err(closed(frame.as_ref())),
                        Some(Ok(_)) => continue, // pings are answered by tungstenite
                    };
                    match self.frame(&text) {
                        Reply::Nothing => {}
                        Reply::Send(message) => send(socket, &message).await?,
                        Reply::Refused(reason) => return Ok(Outcome::Refused(reason)),
                    }
                }
                _ = tick.tick() => {
                    if self.view.done() {
                        return Ok(Outcome::Done);
                    }
                    if let Some(run) = self.still_unknown() {
                        return Ok(Outcome::UnknownRun(run));
                    }
                }
            }
        }
    }

    /// The subscribe message for a new connection: resume where we were when we know
    /// the epoch, else start with a snapshot.
    fn subscribe_message(&mut self) -> ClientMessage {
        let mut subscribe = Subscribe::to(Topic::BACKTEST);
        subscribe.backtest_id = self.run.clone();
        match &self.cursor.epoch {
            Some(epoch) => {
                subscribe = subscribe.since(self.cursor.last_seq, epoch.clone());
                self.cursor.asked_snapshot = false;
            }
            None => {
                subscribe = subscribe.snapshot();
                self.cursor.asked_snapshot = true;
            }
        }
        subscribe.into()
    }

    /// Handles one text frame; returns a message to send when the frame calls for one.
    fn frame(&mut self, text: &str) -> Reply {
        let message = match ServerMessage::from_json(text) {
            Ok(message) => message,
            Err(error) => {
                self.view
                    .notice(&format!("unreadable frame ({error}): {text}"));
                return Reply::Nothing;
            }
        };
        match message {
            ServerMessage::SubscriptionConfirmed(confirmation) => {
                self.subscribed = true;
                return self.confirmed(confirmation);
            }
            ServerMessage::Lagged { data } => self.view.notice(&format!(
                "missed {} event(s) on topic {:?}: the display may skip ahead",
                data.missed,
                data.topic.as_str()
            )),
            ServerMessage::Error { data } => {
                let reason = format!("{} ({})", data.error, data.code.as_str());
                // Before any confirmation the error answers our subscribe: nothing will
                // come on this connection.
                if !self.subscribed {
                    return Reply::Refused(reason);
                }
                self.view.server_error(&reason);
            }
            ServerMessage::Event(frame) => self.event(frame),
            // Pongs and unsubscribe confirmations, and replies of later protocol versions.
            _ => {}
        }
        Reply::Nothing
    }

    fn event(&mut self, frame: EventFrame) {
        if frame.envelope.topic != Topic::BACKTEST || !self.cursor.accept(frame.seq) {
            return;
        }
        self.view.event(&frame.envelope.event);
    }

    fn confirmed(&mut self, confirmation: Confirmation) -> Reply {
        if self.awaiting_barrier {
            self.awaiting_barrier = false;
            return self.barrier_passed();
        }
        let head = confirmation.seq.unwrap_or(0);
        let new_epoch = confirmation.epoch != self.cursor.epoch;
        self.cursor.epoch = confirmation.epoch;
        if self.cursor.asked_snapshot {
            // The snapshot covers everything up to the head.
            self.cursor.snapshot_head = Some(head);
            self.cursor.last_seq = if new_epoch {
                head
            } else {
                self.cursor.last_seq.max(head)
            };
            self.cursor.asked_snapshot = false;
            // With one run, learn whether the snapshot held it.
            if let Some(run) = &self.run {
                self.awaiting_barrier = true;
                return Reply::Send(Subscribe::to(Topic::BACKTEST).run(run.clone()).into());
            }
            return Reply::Nothing;
        }
        if confirmation.recovered != Some(false) {
            return Reply::Nothing;
        }
        self.view.notice(if new_epoch {
            "the server restarted: loading its current state"
        } else {
            "the server no longer holds every missed event: loading its current state"
        });
        // Live frames after this head are new; the snapshot asked for next fills in the
        // state of the runs.
        if new_epoch {
            self.cursor.last_seq = head;
            self.view.forget_unfinished_runs();
        }
        self.cursor.snapshot_head = None;
        self.cursor.asked_snapshot = true;
        let mut subscribe = Subscribe::to(Topic::BACKTEST).snapshot();
        subscribe.backtest_id = confirmation.backtest_id;
        Reply::Send(subscribe.into())
    }
}

impl Session {
    /// The snapshot of the run of `--backtest-id` is through: it is known, or not.
    fn barrier_passed(&mut self) -> Reply {
        let Some(run) = &self.run else {
            return Reply::Nothing;
        };
        if self.view.knows(run.as_str()) {
            return Reply::Nothing;
        }
        self.unknown_since = Some(tokio::time::Instant::now());
        self.view.notice(&format!(
            "run {run} is not known to the server (yet): waiting for it"
        ));
        Reply::Nothing
    }

    /// The run of `--backtest-id`, when the server showed it does not know it and it
    /// did not appear within `--exit-after-complete`.
    fn still_unknown(&self) -> Option<BacktestId> {
        let run = self.run.as_ref()?;
        let since = self.unknown_since?;
        let grace = self.unknown_grace?;
        (since.elapsed() >= grace && !self.view.knows(run.as_str())).then(|| run.clone())
    }
}

async fn send(socket: &mut Socket, message: &ClientMessage) -> Result<(), Ended> {
    socket
        .send(Message::Text(message.to_json().into()))
        .await
        .map_err(|error| Ended::Lost(describe(&error)))
}
