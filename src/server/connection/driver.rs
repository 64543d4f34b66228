//! The connection driver: one poll function that reads the client's requests, writes
//! its queued frames in batches (`feed`-style sends, one flush per batch: when events
//! are sparse a batch is one frame, flushed at once; under load many frames share a
//! flush), and runs its timers (pings, the dead-peer check, the write-stall check, the
//! wait for the close answer). Each is a step of [`Driver::poll_drive`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};

use crate::server::connection::session::{AuthStep, Session};
use crate::server::connection::{CLOSE_WAIT, ConnectionEnd, close_frame};
use crate::server::frames::reply_frame;
use crate::server::hub::Hub;
use crate::server::limits::MessageVerdict;
use crate::server::queue::{ClientQueue, Taken};
use crate::server::shared::{Command, Slot};
use crate::server::stats::{add, bump};
use crate::wire::{BadRequest, ClientMessage, CloseCode, ErrorCode, ServerMessage};

/// Replies (pongs, errors) waiting to be written before reading pauses; also the pings
/// the client may send before its pongs are flushed.
const MAX_REPLIES: usize = 64;
/// Commands (subscribe, unsubscribe) waiting for the hub before reading pauses.
const MAX_COMMANDS: usize = 16;

/// What a step decides: `Ok(progress)` to go on, `Err(end)` to end the connection.
type Step = Result<bool, ConnectionEnd>;

pub(super) struct Driver<'h, S> {
    hub: &'h Hub,
    ws: WebSocketStream<S>,
    queue: Arc<ClientQueue>,
    id: u64,
    /// The connection's slot: released by the hub with the connection.
    slot: Option<Slot>,
    /// Frames taken from the queue, being written.
    batch: VecDeque<Utf8Bytes>,
    /// Local replies and control frames, written before the batch.
    replies: VecDeque<Message>,
    unflushed: bool,
    /// Fires when the next ping is due, or when the pinged client is late.
    timer: Pin<Box<Sleep>>,
    /// When the next ping is due, or the pinged client is late; the timer fires at the
    /// earlier of this and the session's deadline (one timer per connection).
    ping_at: Instant,
    awaiting_pong: bool,
    /// Pings read since the last completed flush: tungstenite owes their pongs.
    pings_unanswered: usize,
    read_done: bool,
    peer_closed: bool,
    pending_close: Option<CloseCode>,
    /// The reason sent with the pending close, when not the code's own.
    close_reason: Option<String>,
    close_sent: Option<CloseCode>,
    close_deadline: Option<Pin<Box<Sleep>>>,
    /// Fires when writing has been blocked for the write-stall timeout; made the
    /// first time writing blocks (an idle connection never needs it).
    stall_timer: Option<Pin<Box<Sleep>>>,
    /// Whether `stall_timer` runs (writing is blocked since it was set).
    stall_armed: bool,
    /// The socket refused writes since it last took some: when it takes data again,
    /// the client's end is reading, which is a sign of life (a slow reader's pong may
    /// wait behind megabytes it has yet to read).
    write_blocked: bool,
    session: Session,
}

impl<S> Drop for Driver<'_, S> {
    fn drop(&mut self) {
        let left = self.batch.len() + self.queue.close_and_discard();
        add(&self.hub.shared.counters.closed_connection, left as u64);
        self.hub.command(Command::Disconnect {
            id: self.id,
            slot: self.slot.take(),
        });
    }
}

impl<'h, S> Driver<'h, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pub(super) fn new(
        hub: &'h Hub,
        ws: WebSocketStream<S>,
        queue: Arc<ClientQueue>,
        slot: Slot,
        session: Session,
    ) -> Self {
        let id = slot.id;
        let interval = hub.config().ping_interval;
        let ping_at = Instant::now() + interval;
        let first = session.deadline().map_or(ping_at, |d| d.min(ping_at));
        Self {
            hub,
            ws,
            queue,
            id,
            slot: Some(slot),
            batch: VecDeque::new(),
            replies: VecDeque::new(),
            unflushed: false,
            timer: Box::pin(tokio::time::sleep_until(first)),
            ping_at,
            awaiting_pong: false,
            pings_unanswered: 0,
            read_done: false,
            peer_closed: false,
            pending_close: None,
            close_reason: None,
            close_sent: None,
            close_deadline: None,
            stall_timer: None,
            stall_armed: false,
            write_blocked: false,
            session,
        }
    }

    /// Drives the connection until it ends.
    pub(super) fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionEnd> {
        loop {
            match self.step(cx) {
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
                Err(end) => return Poll::Ready(end),
            }
        }
    }

    /// One round of every step; whether anything moved.
    fn step(&mut self, cx: &mut Context<'_>) -> Step {
        let mut progress = self.poll_read(cx)?;
        let (wrote, written_any) = self.poll_write(cx)?;
        progress |= wrote;
        let flushed = self.poll_flush(cx)?;
        // A completed flush may let reading go on (pongs were owed).
        progress |= flushed;
        self.check_stall(cx, written_any || flushed)?;
        if self.read_done && self.close_sent.is_some() && !self.unflushed {
            // The read side is gone (oversized message): nothing more to wait for.
            return Err(self.end_after_close());
        }
        progress |= self.poll_timers(cx)?;
        Ok(progress)
    }

    /// Reads the client's requests, pausing while many replies, pongs or commands wait
    /// (a client that sends faster than it reads is slowed by TCP, not by memory).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Step {
        let mut progress = false;
        while !self.read_done
            && self.replies.len() < MAX_REPLIES
            && self.pings_unanswered < MAX_REPLIES
            && self.queue.commands_waiting() < MAX_COMMANDS
        {
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    progress = true;
                    self.on_message(message);
                }
                Poll::Ready(Some(Err(WsError::Capacity(_)))) => {
                    progress = true;
                    self.read_done = true;
                    bump(&self.hub.shared.counters.closed_message_too_big);
                    self.batch.clear();
                    self.replies.clear();
                    self.start_close(CloseCode::MessageTooBig);
                }
                Poll::Ready(Some(Err(error))) => {
                    return Err(ConnectionEnd::Failed(error.to_string()));
                }
                Poll::Ready(None) => return Err(self.end_after_close()),
                Poll::Pending => break,
            }
        }
        Ok(progress)
    }

    fn on_message(&mut self, message: Message) {
        self.alive();
        match message {
            Message::Text(text) if self.within_rate() => match ClientMessage::parse(&text) {
                Ok(message) => self.on_request(message),
                Err(error) => self.reply_error(&error),
            },
            Message::Binary(_) if self.within_rate() => self.reply_error(&BadRequest::Binary),
            Message::Text(_) | Message::Binary(_) => {}
            Message::Close(_) => self.peer_closed = true,
            // tungstenite answers pings itself, on the next flush: owed pongs count as
            // unflushed writes (so a client that pings but never reads stalls), and
            // reading pauses while many are owed.
            Message::Ping(_) => {
                self.pings_unanswered += 1;
                self.unflushed = true;
            }
            // A pong is just a sign of life.
            Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    /// Takes a client message from the rate limit: `false` when it must not be acted
    /// on (it was answered `rate_limited`, or the connection is closing for it).
    fn within_rate(&mut self) -> bool {
        let counters = &self.hub.shared.counters;
        match self.session.check_rate() {
            MessageVerdict::Allowed => return true,
            MessageVerdict::Refused => {
                bump(&counters.messages_rate_limited);
                let limits = &self.hub.config().rate_limits;
                let text = format!(
                    "rate limited: at most {} messages per second (bursts of {}); this one was not acted on",
                    limits.messages_per_second, limits.message_burst
                );
                self.reply(&ServerMessage::error(ErrorCode::RateLimited, text));
            }
            MessageVerdict::Close => {
                bump(&counters.closed_rate_limited);
                self.give_up(CloseCode::RateLimited, None);
            }
        }
        false
    }

    /// A valid client message.
    fn on_request(&mut self, message: ClientMessage) {
        if let ClientMessage::Auth { token } = &message {
            return self.on_auth(token);
        }
        if self.session.pending() {
            let text = r#"authenticate first: {"action":"auth","token":"<jwt>"}"#;
            return self.reply(&ServerMessage::error(ErrorCode::Unauthorized, text));
        }
        let id = self.id;
        let command = match message {
            ClientMessage::Ping => return self.reply(&ServerMessage::Pong),
            ClientMessage::Subscribe(request) => Command::Subscribe { id, request },
            ClientMessage::Unsubscribe { topic } => Command::Unsubscribe { id, topic },
            _ => return,
        };
        self.queue.command_sent();
        self.hub.command(command);
    }

    fn on_auth(&mut self, token: &str) {
        match self.session.on_auth(self.hub, token) {
            AuthStep::Grant(grants) => {
                self.queue.command_sent();
                self.hub.command(Command::Authorize {
                    id: self.id,
                    grants,
                });
            }
            AuthStep::Reply(message) => self.reply(&message),
            AuthStep::Close(code, reason) => self.give_up(code, Some(reason)),
            AuthStep::Ignore => {}
        }
    }

    /// Closes with `code` without writing what waits, and stops reading.
    fn give_up(&mut self, code: CloseCode, reason: Option<String>) {
        self.read_done = true;
        self.batch.clear();
        self.replies.clear();
        let discarded = self.queue.request_close(code, true);
        add(
            &self.hub.shared.counters.closed_connection,
            discarded as u64,
        );
        if self.pending_close.is_none() && self.close_sent.is_none() {
            self.close_reason = reason;
        }
        self.start_close(code);
    }

    fn reply(&mut self, message: &ServerMessage) {
        self.replies.push_back(Message::Text(reply_frame(message)));
    }

    fn reply_error(&mut self, error: &BadRequest) {
        self.reply(&ServerMessage::error(
            ErrorCode::BadRequest,
            error.to_string(),
        ));
    }

    /// The client showed a sign of life: the next ping is a full interval away.
    fn alive(&mut self) {
        self.awaiting_pong = false;
        self.ping_at = Instant::now() + self.hub.config().ping_interval;
        self.rearm();
    }

    /// Sets the timer to the earlier of the ping deadline and the session's.
    fn rearm(&mut self) {
        let at = match self.session.deadline() {
            Some(deadline) => deadline.min(self.ping_at),
            None => self.ping_at,
        };
        self.timer.as_mut().reset(at);
    }

    /// Queues a close frame to be sent after what is already being written.
    fn start_close(&mut self, code: CloseCode) {
        if self.pending_close.is_none() && self.close_sent.is_none() {
            self.pending_close = Some(code);
        }
    }

    /// Writes replies, then queued frames, as long as the socket takes them; whether
    /// anything moved, and whether anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(bool, bool), ConnectionEnd> {
        let mut progress = false;
        let mut wrote_any = false;
        let mut written = 0;
        while self.close_sent.is_none() && !self.peer_closed {
            if self.replies.is_empty() && self.batch.is_empty() {
                if let Some(code) = self.pending_close {
                    let reason = self.close_reason.take();
                    let frame = close_frame(code, reason.as_deref().unwrap_or(code.reason()));
                    self.replies.push_back(Message::Close(Some(frame)));
                    continue;
                }
                if written > 0 {
                    // Account before looking again, so that the queue knows it is empty.
                    self.queue.written(written);
                    written = 0;
                }
                if !self.poll_queue(cx) {
                    break;
                }
                progress = true;
                continue;
            }
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => self.unblocked(),
                Poll::Ready(Err(error)) => return Err(ConnectionEnd::Failed(error.to_string())),
                Poll::Pending => {
                    self.write_blocked = true;
                    break;
                }
            }
            let message = match self.replies.pop_front() {
                Some(reply) => reply,
                None => match self.batch.pop_front() {
                    Some(frame) => {
                        written += 1;
                        Message::Text(frame)
                    }
                    None => continue,
                },
            };
            self.send(message)?;
            wrote_any = true;
            progress = true;
        }
        if written > 0 {
            self.queue.written(written);
        }
        Ok((progress, wrote_any))
    }

    /// Takes what the queue has into the batch (or its close request, or its drain
    /// notice); whether it had anything.
    fn poll_queue(&mut self, cx: &mut Context<'_>) -> bool {
        match self.queue.poll_take(cx, &mut self.batch) {
            Poll::Ready(Taken::Frames) => {}
            Poll::Ready(Taken::Close(code)) => self.start_close(code),
            Poll::Ready(Taken::Drained) => self.hub.command(Command::Drained { id: self.id }),
            Poll::Pending => return false,
        }
        true
    }

    /// Hands one message to the socket (a close frame starts the wait for the answer).
    fn send(&mut self, message: Message) -> Result<(), ConnectionEnd> {
        let is_close = matches!(message, Message::Close(_));
        if let Err(error) = Pin::new(&mut self.ws).start_send(message) {
            return Err(ConnectionEnd::Failed(error.to_string()));
        }
        if is_close {
            self.close_sent = Some(self.pending_close.take().unwrap_or(CloseCode::Normal));
            self.close_deadline = Some(Box::pin(tokio::time::sleep(CLOSE_WAIT)));
        }
        self.unflushed = true;
        Ok(())
    }

    /// Flushes what was written (and the pongs owed); whether that flush completed.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnectionEnd> {
        if !(self.unflushed || self.peer_closed) {
            return Ok(false);
        }
        match Pin::new(&mut self.ws).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.unblocked();
                let had = self.unflushed;
                self.unflushed = false;
                self.pings_unanswered = 0;
                Ok(had)
            }
            Poll::Ready(Err(_)) if self.close_sent.is_some() || self.peer_closed => {
                Err(self.end_after_close())
            }
            Poll::Ready(Err(error)) => Err(ConnectionEnd::Failed(error.to_string())),
            Poll::Pending => {
                self.write_blocked = true;
                Ok(false)
            }
        }
    }

    /// The socket takes data again after refusing some: the client reads.
    fn unblocked(&mut self) {
        if self.write_blocked {
            self.write_blocked = false;
            self.alive();
        }
    }

    /// Drops a client whose socket takes none of the waiting frames for the stall
    /// timeout, even if it keeps sending (and so looks alive).
    fn check_stall(&mut self, cx: &mut Context<'_>, moved: bool) -> Result<(), ConnectionEnd> {
        let blocked = self.close_sent.is_none()
            && (self.unflushed || !self.batch.is_empty() || !self.replies.is_empty());
        if !blocked || moved {
            self.stall_armed = false;
        }
        if !blocked {
            return Ok(());
        }
        let timer = self
            .stall_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::ZERO)));
        if !self.stall_armed {
            self.stall_armed = true;
            let deadline = Instant::now() + self.hub.config().write_stall_timeout;
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            bump(&self.hub.shared.counters.dropped_write_stall);
            self.try_close(cx, CloseCode::WriteStalled);
            return Err(ConnectionEnd::WriteStalled);
        }
        Ok(())
    }

    /// The wait for the close answer, the end of the wait for a token or of its
    /// grants, or pings and the dead-peer check.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Step {
        if let Some(deadline) = &mut self.close_deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                return Err(self.end_after_close());
            }
            return Ok(false);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return Ok(false);
        }
        let now = Instant::now();
        if let Some((code, reason)) = self.session.ended(self.hub, now) {
            self.give_up(code, Some(reason.to_owned()));
            return Ok(true);
        }
        if now < self.ping_at {
            // The session's deadline moved (a refreshed token): wait again.
            self.rearm();
            return Ok(true);
        }
        if self.awaiting_pong {
            bump(&self.hub.shared.counters.dropped_dead_peer);
            self.try_close(cx, CloseCode::PingTimeout);
            return Err(ConnectionEnd::DeadPeer);
        }
        self.awaiting_pong = true;
        self.replies.push_back(Message::Ping(Bytes::new()));
        self.ping_at = now + self.hub.config().ping_timeout;
        self.rearm();
        Ok(true)
    }

    /// Tells a client the server gives up on it, if its socket still takes a frame now;
    /// never waits.
    fn try_close(&mut self, cx: &mut Context<'_>, code: CloseCode) {
        if self.close_sent.is_some() {
            return;
        }
        if let Poll::Ready(Ok(())) = Pin::new(&mut self.ws).poll_ready(cx) {
            let frame = Message::Close(Some(close_frame(code, code.reason())));
            if Pin::new(&mut self.ws).start_send(frame).is_ok() {
                let _ = Pin::new(&mut self.ws).poll_flush(cx);
            }
        }
    }

    fn end_after_close(&self) -> ConnectionEnd {
        match self.close_sent {
            Some(code) => ConnectionEnd::ServerClosed(code),
            None => ConnectionEnd::ClientClosed,
        }
    }
}
