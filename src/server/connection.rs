//! One client connection: reads its requests, writes its queued frames in batches,
//! pings it, and closes it.
//!
//! The connection runs as one task that polls the socket's read side, its queue and
//! its timers together, so a client that stops reading blocks only its own writes.
//! Frames are written with `feed`-style sends and one flush per batch: when events are
//! sparse a batch is one frame, flushed at once; under load many frames share a flush.

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
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};

use super::hub::{Command, Hub};
use super::protocol::{BadRequest, ClientMessage, error_frame, pong_frame};
use super::queue::{ClientQueue, CloseRequest, Taken};
use super::stats::{add, bump};

/// Replies (pongs, errors) waiting to be written before reading pauses.
const MAX_REPLIES: usize = 64;
/// How long to wait for the client's answer to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// The client closed the connection (or the TCP connection ended).
    ClientClosed,
    /// The server closed it with this close code (1001 shutdown, 1008 too slow,
    /// 1009 message too big, 1013 too many connections).
    ServerClosed(u16),
    /// The client did not answer a ping within the timeout.
    DeadPeer,
    /// Frames were waiting but the socket accepted none of them within
    /// [`ServerConfig::write_stall_timeout`](super::ServerConfig::write_stall_timeout):
    /// the client does not read.
    WriteStalled,
    /// Reading or writing failed.
    Failed(String),
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason),
    }
}

impl Hub {
    /// Serves one WebSocket connection that is already upgraded (by this crate's
    /// [`Server`](super::Server), or by axum, hyper, ... on the application's own route)
    /// until it ends.
    ///
    /// For the limits of [`ServerConfig`](super::ServerConfig) to apply to its buffers
    /// and message size, create the stream with
    /// [`ServerConfig::websocket_config`](super::ServerConfig::websocket_config).
    pub async fn serve<S>(&self, mut ws: WebSocketStream<S>) -> ConnectionEnd
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if self.is_shutting_down() {
            close_now(&mut ws, 1001, "server shutting down").await;
            return ConnectionEnd::ServerClosed(1001);
        }
        let Some(admission) = self.admit() else {
            close_now(&mut ws, 1013, "too many connections").await;
            return ConnectionEnd::ServerClosed(1013);
        };
        let queue = Arc::new(ClientQueue::new(self.config().queue_capacity));
        self.command(Command::Register {
            id: admission.id,
            queue: Arc::clone(&queue),
        });
        let interval = self.config().ping_interval;
        let mut driver = Driver {
            hub: self,
            ws,
            queue,
            id: admission.id,
            batch: VecDeque::new(),
            replies: VecDeque::new(),
            unflushed: false,
            timer: Box::pin(tokio::time::sleep(interval)),
            awaiting_pong: false,
            read_done: false,
            peer_closed: false,
            pending_close: None,
            close_sent: None,
            close_deadline: None,
            stall_timer: None,
            stall_armed: false,
        };
        let end = std::future::poll_fn(|cx| driver.poll_drive(cx)).await;
        drop(driver);
        drop(admission);
        end
    }
}

/// Sends a close frame, bounded in time, and gives up on the connection.
async fn close_now<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_WAIT, ws.close(Some(close_frame(code, reason)))).await;
}

struct Driver<'h, S> {
    hub: &'h Hub,
    ws: WebSocketStream<S>,
    queue: Arc<ClientQueue>,
    id: u64,
    /// Frames taken from the queue, being written.
    batch: VecDeque<Utf8Bytes>,
    /// Local replies and control frames, written before the batch.
    replies: VecDeque<Message>,
    unflushed: bool,
    /// Fires when the next ping is due, or when the pinged client is late.
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
    read_done: bool,
    peer_closed: bool,
    pending_close: Option<CloseRequest>,
    close_sent: Option<u16>,
    close_deadline: Option<Pin<Box<Sleep>>>,
    /// Fires when writing has been blocked for the write-stall timeout; made the
    /// first time writing blocks (an idle connection never needs it).
    stall_timer: Option<Pin<Box<Sleep>>>,
    /// Whether `stall_timer` runs (writing is blocked since it was set).
    stall_armed: bool,
}

impl<S> Drop for Driver<'_, S> {
    fn drop(&mut self) {
        let left = self.batch.len() + self.queue.close_and_discard();
        add(&self.hub.shared.counters.closed_connection, left as u64);
        self.hub.command(Command::Disconnect { id: self.id });
    }
}

impl<S> Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn alive(&mut self) {
        self.awaiting_pong = false;
        let next = Instant::now() + self.hub.config().ping_interval;
        self.timer.as_mut().reset(next);
    }

    fn on_message(&mut self, message: Message) {
        self.alive();
        match message {
            Message::Text(text) => match ClientMessage::parse(&text) {
                Ok(ClientMessage::Ping) => self.replies.push_back(Message::Text(pong_frame())),
                Ok(ClientMessage::Subscribe(request)) => self.hub.command(Command::Subscribe {
                    id: self.id,
                    request,
                }),
                Ok(ClientMessage::Unsubscribe { topic }) => self
                    .hub
                    .command(Command::Unsubscribe { id: self.id, topic }),
                Err(error) => self.reply_error(&error),
            },
            Message::Binary(_) => self.reply_error(&BadRequest::Binary),
            Message::Close(_) => self.peer_closed = true,
            // tungstenite answers pings itself; a pong is just a sign of life.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    fn reply_error(&mut self, error: &BadRequest) {
        self.replies.push_back(Message::Text(error_frame(error)));
    }

    /// Queues a close frame to be sent after what is already being written.
    fn start_close(&mut self, request: CloseRequest) {
        if self.pending_close.is_none() && self.close_sent.is_none() {
            self.pending_close = Some(request);
        }
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionEnd> {
        loop {
            let mut progress = false;

            // Read the client's requests (pausing while many replies wait).
            while !self.read_done && self.replies.len() < MAX_REPLIES {
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
                        self.start_close(CloseRequest {
                            code: 1009,
                            reason: "message too big",
                        });
                    }
                    Poll::Ready(Some(Err(error))) => {
                        return Poll::Ready(ConnectionEnd::Failed(error.to_string()));
                    }
                    Poll::Ready(None) => {
                        return Poll::Ready(match self.close_sent {
                            Some(code) => ConnectionEnd::ServerClosed(code),
                            None => ConnectionEnd::ClientClosed,
                        });
                    }
                    Poll::Pending => break,
                }
            }

            // Write replies, then queued frames; flush once at the end of the batch.
            let mut written = 0;
            let mut wrote_any = false;
            while self.close_sent.is_none() && !self.peer_closed {
                if self.replies.is_empty() && self.batch.is_empty() {
                    if let Some(request) = &self.pending_close {
                        let frame = close_frame(request.code, request.reason);
                        self.replies.push_back(Message::Close(Some(frame)));
                        continue;
                    }
                    if written > 0 {
                        // Account before looking again, so that the queue knows it is empty.
                        self.queue.written(written);
                        written = 0;
                    }
                    match self.queue.poll_take(cx, &mut self.batch) {
                        Poll::Ready(Taken::Frames) => {
                            progress = true;
                            continue;
                        }
                        Poll::Ready(Taken::Close(request)) => {
                            progress = true;
                            self.start_close(request);
                            continue;
                        }
                        Poll::Ready(Taken::Drained) => {
                            progress = true;
                            self.hub.command(Command::Drained { id: self.id });
                            continue;
                        }
                        Poll::Pending => break,
                    }
                }
                match Pin::new(&mut self.ws).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(error)) => {
                        return Poll::Ready(ConnectionEnd::Failed(error.to_string()));
                    }
                    Poll::Pending => break,
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
                let is_close = matches!(message, Message::Close(_));
                if let Err(error) = Pin::new(&mut self.ws).start_send(message) {
                    return Poll::Ready(ConnectionEnd::Failed(error.to_string()));
                }
                if is_close {
                    let code = self.pending_close.take().map_or(1000, |r| r.code);
                    self.close_sent = Some(code);
                    self.close_deadline = Some(Box::pin(tokio::time::sleep(CLOSE_WAIT)));
                }
                self.unflushed = true;
                wrote_any = true;
                progress = true;
            }
            if written > 0 {
                self.queue.written(written);
            }
            if self.unflushed || self.peer_closed {
                match Pin::new(&mut self.ws).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        wrote_any = true;
                    }
                    Poll::Ready(Err(error)) => {
                        if self.close_sent.is_some() || self.peer_closed {
                            return Poll::Ready(self.end_after_close());
                        }
                        return Poll::Ready(ConnectionEnd::Failed(error.to_string()));
                    }
                    Poll::Pending => {}
                }
            }
            // A client whose socket takes none of the waiting frames for the stall
            // timeout is dropped, even if it keeps sending (and so looks alive).
            let blocked = self.close_sent.is_none()
                && (self.unflushed || !self.batch.is_empty() || !self.replies.is_empty());
            if !blocked || wrote_any {
                self.stall_armed = false;
            }
            if blocked {
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
                    return Poll::Ready(ConnectionEnd::WriteStalled);
                }
            }
            if self.read_done && self.close_sent.is_some() && !self.unflushed {
                // The read side is gone (oversized message): nothing more to wait for.
                return Poll::Ready(self.end_after_close());
            }

            // Timers: the wait for the close answer, or pings and the dead-peer check.
            if let Some(deadline) = &mut self.close_deadline {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(self.end_after_close());
                }
            } else if self.timer.as_mut().poll(cx).is_ready() {
                if self.awaiting_pong {
                    bump(&self.hub.shared.counters.dropped_dead_peer);
                    return Poll::Ready(ConnectionEnd::DeadPeer);
                }
                self.awaiting_pong = true;
                self.replies.push_back(Message::Ping(Bytes::new()));
                let late = Instant::now() + self.hub.config().ping_timeout;
                self.timer.as_mut().reset(late);
                progress = true;
            }

            if !progress {
                return Poll::Pending;
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
