//! Catching a subscriber up before live delivery: the snapshot and the `since` replay
//! of a subscribe ([`CatchUp`]), and replays too long for the client's queue, continued
//! as it drains ([`ReplayCursor`]).

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::server::history::{Replay, TopicHistory};
use crate::server::queue::ClientQueue;
use crate::wire::{BacktestId, Subscribe, Topic};

/// A replay too long for the client's queue: continued each time the queue drains;
/// the connection joins live delivery of the topic when the replay reaches the head.
pub(crate) struct ReplayCursor {
    pub(crate) topic: Topic,
    pub(crate) run: Option<BacktestId>,
    /// The next seq to replay.
    pub(crate) next: u64,
    pub(crate) link: Link,
}

/// Where a subscription joins live delivery.
pub(crate) enum Link {
    All,
    Run(BacktestId),
    Nothing,
}

/// Announces the `missed` events a paging replay found gone from the history (the
/// history moved on faster than the client replayed it), and still sends the terminal
/// events among them, which the snapshot state holds: each lost stretch is announced
/// just before the frame after it, so every gap is told, in seq order. Returns the
/// frames that did not fit.
pub(crate) fn fill_lost_terminals(
    queue: &ClientQueue,
    cursor: &ReplayCursor,
    history: &TopicHistory,
    missed: u64,
) -> u64 {
    if missed == 0 {
        return 0;
    }
    let until = cursor.next + missed;
    let terminals = history.terminals_between(cursor.next, until, cursor.run.as_ref());
    fill_gap(queue, &cursor.topic, cursor.next..until, terminals)
}

/// Sends what a client still gets of a stretch of seqs it otherwise lost (`frames`, in
/// seq order, all within `gap`): each lost run of seqs is announced just before the
/// frame after it, and what is lost after the last frame before the topic's next frame.
/// Returns the frames that did not fit.
fn fill_gap<'a>(
    queue: &ClientQueue,
    topic: &Topic,
    gap: std::ops::Range<u64>,
    frames: impl IntoIterator<Item = (u64, &'a Utf8Bytes)>,
) -> u64 {
    let mut at = gap.start;
    let mut lagged = 0;
    for (seq, frame) in frames {
        queue.add_missed(topic, seq - at);
        lagged += queue.push_replayed(topic, [frame]);
        at = seq + 1;
    }
    queue.add_missed(topic, gap.end.saturating_sub(at));
    lagged
}

/// What a subscribe sends before live delivery: the snapshot, the replay, and whether
/// its `since` could be honoured.
pub(crate) struct CatchUp<'a> {
    snapshot: Vec<(u64, &'a Utf8Bytes)>,
    replay: Option<Replay<'a>>,
    pub(crate) recovered: Option<bool>,
}

impl<'a> CatchUp<'a> {
    pub(crate) fn plan(history: &'a TopicHistory, request: &Subscribe, epoch: &str) -> Self {
        let run = request.backtest_id.as_ref();
        let mut snapshot = if request.snapshot {
            history.snapshot(run)
        } else {
            Vec::new()
        };
        // A `since` without `epoch` is taken to be of this epoch.
        let same_epoch = request.epoch.as_deref().is_none_or(|e| e == epoch);
        let replay = match request.since {
            Some(since) if same_epoch && since <= history.head() => {
                Some(history.replay(since, run))
            }
            _ => None,
        };
        if let (Some(since), Some(_)) = (request.since, &replay) {
            // With a replay, the snapshot only fills the part of the gap that is no
            // longer retained: what the client has (seq <= since) and what the replay
            // sends (seq >= the oldest retained) are left out, so no seq comes twice and
            // every frame comes in seq order.
            let oldest = history.oldest();
            snapshot.retain(|(seq, _)| *seq > since && *seq < oldest);
            snapshot.sort_unstable_by_key(|(seq, _)| *seq);
        }
        let recovered = request
            .since
            .map(|_| replay.as_ref().is_some_and(|r| r.missed == 0));
        Self {
            snapshot,
            replay,
            recovered,
        }
    }

    /// Queues the snapshot, then the replay (all of it, or as much as fits for a new
    /// subscription, which then continues from the cursor returned); the frames that did
    /// not fit are counted, and announced to the client as missed.
    pub(crate) fn send(self, queue: &ClientQueue, request: &Subscribe, is_new: bool) -> Sent {
        let topic = &request.topic;
        let mut bytes = frame_bytes(&self.snapshot);
        let Some(replay) = self.replay else {
            let lagged = queue.push_replayed(topic, self.snapshot.iter().map(|(_, f)| *f));
            return Sent {
                lagged,
                bytes,
                cursor: None,
            };
        };
        // The snapshot fills the part of the gap no longer retained (`since` < seq <
        // the oldest retained), in seq order, its lost stretches announced around it.
        let first = request.since.unwrap_or(0).saturating_add(1);
        let lost = first..first + replay.missed;
        let mut lagged = fill_gap(queue, topic, lost, self.snapshot.iter().copied());
        // A new subscription whose replay does not fit continues it as the queue
        // drains, and joins live delivery only when the replay reaches the head.
        let room = queue.free(topic);
        let paged = is_new && replay.frames.len() > room;
        let now = if paged { room } else { replay.frames.len() };
        bytes += frame_bytes(&replay.frames[..now]);
        lagged += queue.push_replayed(topic, replay.frames[..now].iter().map(|(_, f)| *f));
        let cursor = paged.then(|| ReplayCursor {
            topic: topic.clone(),
            run: request.backtest_id.clone(),
            next: replay.frames[now].0,
            link: Link::Nothing,
        });
        Sent {
            lagged,
            bytes,
            cursor,
        }
    }
}

/// What [`CatchUp::send`] queued.
pub(crate) struct Sent {
    /// Frames that did not fit (announced as missed).
    pub(crate) lagged: u64,
    /// Bytes of the frames sent, for the replay budget.
    pub(crate) bytes: usize,
    /// Where a replay too long for the queue goes on.
    pub(crate) cursor: Option<ReplayCursor>,
}

/// The bytes of some numbered frames.
pub(crate) fn frame_bytes(frames: &[(u64, &Utf8Bytes)]) -> usize {
    frames.iter().map(|(_, frame)| frame.len()).sum()
}
