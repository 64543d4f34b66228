//! Replays older than a hub's history, from an archive (a gateway's broker): the
//! [`Archive`] a gateway hands its hub, the request for a range of seqs, and what comes
//! back ([`Fetched`]), sent to the client before the history's own replay.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::server::catch_up::Link;
use crate::server::queue::ClientQueue;
use crate::wire::{BacktestId, Subscribe, Topic};

/// A range of a topic's events to fetch: seqs `from` up to before `until`, the newest
/// `max` of them at most; the answer goes back to connection `conn` as
/// `Command::Archived`.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveRequest {
    pub(crate) conn: u64,
    pub(crate) topic: Topic,
    pub(crate) from: u64,
    pub(crate) until: u64,
    pub(crate) max: usize,
}

/// Where a hub fetches events older than its history.
pub(crate) trait Archive: Send + Sync {
    /// Asks for a range; `false` when the archive cannot take the request now (the hub
    /// then replays what its history holds and announces the rest as missed).
    fn fetch(&self, request: ArchiveRequest) -> bool;
}

/// A subscribe between its filter update and its confirmation.
pub(crate) struct Joining {
    pub(crate) request: Subscribe,
    pub(crate) queue: Arc<ClientQueue>,
    pub(crate) link: Link,
    pub(crate) is_new: bool,
}

/// What an archive sent back for a range `[from, until)`.
pub(crate) struct Fetched {
    /// The events found, in seq order, framed, with their run.
    pub(crate) frames: Vec<(u64, Option<BacktestId>, Utf8Bytes)>,
    /// Events the range misses: seqs not found (trimmed from the archive, beyond `max`)
    /// and events lost before they were numbered (loss markers).
    pub(crate) missed: u64,
    /// The seq the history's replay starts after (`until - 1`).
    pub(crate) until: u64,
    /// Whether every seq of the range was found.
    pub(crate) complete: bool,
}

impl Fetched {
    /// Queues the missed count, then the frames (of the subscribed run only, with a
    /// filter); returns the frames that did not fit and the bytes sent.
    pub(crate) fn send(self, queue: &ClientQueue, request: &Subscribe) -> (u64, usize) {
        let topic = &request.topic;
        queue.add_missed(topic, self.missed);
        let run = request.backtest_id.as_ref();
        let frames: Vec<&Utf8Bytes> = self
            .frames
            .iter()
            .filter(|(_, id, _)| run.is_none() || id.as_ref() == run)
            .map(|(_, _, frame)| frame)
            .collect();
        let bytes = frames.iter().map(|f| f.len()).sum();
        (queue.push_replayed(topic, frames), bytes)
    }
}
