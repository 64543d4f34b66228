//! One client connection, from the verdict on its upgrade request to its end.
//!
//! A connection runs as one task that polls the socket's read side, its queue and its
//! timers together ([`driver`]), so a client that stops reading blocks only its own
//! writes.

mod driver;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::server::admission::{Admitted, Verdict};
use crate::server::connection::session::Session;
use crate::server::hub::Hub;
use crate::server::queue::ClientQueue;
use crate::server::shared::Command;
use crate::server::stats::bump;
use crate::wire::CloseCode;

/// How long to wait for the client's answer to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// The client closed the connection (or the TCP connection ended).
    ClientClosed,
    /// The server closed it with this code: shutdown, a refusal by policy, a message
    /// too big, too many connections, a client too slow, ...
    ServerClosed(CloseCode),
    /// The client did not answer a ping within the timeout (closed with 4002 if the
    /// socket still took the close frame).
    DeadPeer,
    /// Frames were waiting but the socket accepted none of them within
    /// [`ServerConfig::write_stall_timeout`](crate::server::ServerConfig::write_stall_timeout):
    /// the client does not read (closed with 4003 if the socket still took the close
    /// frame).
    WriteStalled,
    /// The upgrade request was refused with this HTTP status (wrong path, refused by
    /// the handshake hook).
    Refused(u16),
    /// The WebSocket handshake did not complete (not a WebSocket request, timeout, ...).
    HandshakeFailed(String),
    /// Reading or writing failed.
    Failed(String),
}

/// A close frame with `code` and `reason` (at most 123 bytes of it are sent).
fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame {
        code: code.code().into(),
        reason: Utf8Bytes::from(truncate(reason, 123)),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Sends a close frame, bounded in time, and gives up on the connection.
async fn close_now<S>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_WAIT, ws.close(Some(close_frame(code, reason)))).await;
}

/// Serves an upgraded connection as the admission decided: until it ends when it was
/// accepted, else closing it at once with the refusal's code.
pub(crate) async fn serve_verdict<S>(
    hub: &Hub,
    mut ws: WebSocketStream<S>,
    verdict: Verdict,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match verdict {
        Verdict::Accept(admitted) => serve(hub, ws, admitted).await,
        Verdict::Close { code, reason } => {
            close_now(&mut ws, code, &reason).await;
            ConnectionEnd::ServerClosed(code)
        }
        // Too late for an HTTP answer: the close a browser can read.
        Verdict::RefuseHttp { reason, close, .. } => {
            close_now(&mut ws, close, &reason).await;
            ConnectionEnd::ServerClosed(close)
        }
    }
}

/// Serves an admitted connection until it ends.
async fn serve<S>(hub: &Hub, ws: WebSocketStream<S>, admitted: Admitted) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Admitted { slot, auth } = admitted;
    bump(&hub.shared.counters.connections_accepted);
    let queue = Arc::new(ClientQueue::new(hub.config().queue_capacity));
    let session = Session::new(hub, auth);
    hub.command(Command::Register {
        id: slot.id,
        queue: Arc::clone(&queue),
        access: session.access(),
    });
    let mut driver = driver::Driver::new(hub, ws, queue, slot, session);
    std::future::poll_fn(|cx| driver.poll_drive(cx)).await
}
