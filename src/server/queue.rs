//! The bounded queue between the hub and one connection.
//!
//! The hub task pushes shared frames; the connection task takes them all at once and
//! writes them as one batch. What does not fit is counted per topic and announced to
//! the client with a `lagged` notice before the next event of that topic it gets. A
//! run's terminal event and the replies to the client's own requests may go past the
//! capacity up to a hard limit, so that a lagging client still learns how a run ended.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::server::frames::reply_frame;
use crate::wire::{CloseCode, ServerMessage, Topic};

/// Queue capacity kept while a connection is idle; more is released.
const IDLE_CAPACITY: usize = 64;

/// What happened to a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued (maybe after a `lagged` notice).
    Queued,
    /// Did not fit; counted as missed.
    Dropped,
    /// A frame that must not be lost did not fit even past the capacity.
    Overflow,
    /// The connection is closing; nothing is queued any more.
    Closed,
}

/// What the connection found when it looked at its queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Frames were moved into the caller's batch.
    Frames,
    /// The hub asks the connection to close (after the frames already taken).
    Close(CloseCode),
    /// The queue is empty and the hub asked to be told (it has more replay to send).
    Drained,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    /// Frames the connection took and has not written yet.
    taken: usize,
    /// Events missed per topic and not yet announced.
    missed: Vec<(Topic, u64)>,
    waker: Option<Waker>,
    close: Option<CloseCode>,
    /// The hub wants a `Drained` notice once the queue is empty.
    drain_notice: bool,
}

/// The queue of one connection; shared by the hub (producer) and the connection.
pub(crate) struct ClientQueue {
    state: Mutex<State>,
    /// The connection's commands (subscribe, unsubscribe) the hub has not handled yet:
    /// the connection stops reading while too many wait.
    commands: AtomicUsize,
    capacity: usize,
    hard_limit: usize,
}

impl ClientQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State::default()),
            commands: AtomicUsize::new(0),
            capacity,
            hard_limit: capacity.saturating_mul(2).max(capacity + 16),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent in a
        // way that matters more than losing the connection: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event frame of `topic`.
    pub(crate) fn push_event(&self, topic: &Topic, frame: &Utf8Bytes, terminal: bool) -> Pushed {
        let waker;
        let outcome;
        {
            let mut state = self.lock();
            if state.close.is_some() {
                return Pushed::Closed;
            }
            let pending = state
                .missed
                .iter()
                .position(|(t, _)| t == topic)
                .map(|i| (i, state.missed[i].1));
            let needed = if pending.is_some() { 2 } else { 1 };
            let used = state.frames.len() + state.taken;
            let limit = if terminal {
                self.hard_limit
            } else {
                self.capacity
            };
            if used + needed <= limit {
                if let Some((index, missed)) = pending {
                    state.missed.swap_remove(index);
                    state
                        .frames
                        .push_back(reply_frame(&ServerMessage::lagged(topic.clone(), missed)));
                }
                state.frames.push_back(frame.clone());
                outcome = Pushed::Queued;
            } else {
                match pending {
                    Some((index, _)) => state.missed[index].1 += 1,
                    None => state.missed.push((topic.clone(), 1)),
                }
                outcome = if terminal {
                    Pushed::Overflow
                } else {
                    Pushed::Dropped
                };
            }
            waker = if outcome == Pushed::Queued {
                state.waker.take()
            } else {
                None
            };
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        outcome
    }

    /// Queues replayed (or snapshot) frames of `topic` in order; returns how many did not
    /// fit, which are announced to the client as missed.
    pub(crate) fn push_replayed<'a>(
        &self,
        topic: &Topic,
        frames: impl IntoIterator<Item = &'a Utf8Bytes>,
    ) -> u64 {
        let mut dropped = 0;
        for frame in frames {
            if self.push_event(topic, frame, false) == Pushed::Dropped {
                dropped += 1;
            }
        }
        dropped
    }

    /// Records `missed` events of `topic` that the client will be told about before its
    /// next event of that topic (a `since` older than the history).
    pub(crate) fn add_missed(&self, topic: &Topic, missed: u64) {
        if missed == 0 {
            return;
        }
        let mut state = self.lock();
        match state.missed.iter_mut().find(|(t, _)| t == topic) {
            Some((_, m)) => *m += missed,
            None => state.missed.push((topic.clone(), missed)),
        }
    }

    /// Forgets the missed count of a topic the client left.
    pub(crate) fn forget_topic(&self, topic: &Topic) {
        self.lock().missed.retain(|(t, _)| t != topic);
    }

    /// Queues a reply to the client's own request (up to the hard limit).
    pub(crate) fn push_reply(&self, frame: Utf8Bytes) -> Pushed {
        let waker;
        {
            let mut state = self.lock();
            if state.close.is_some() {
                return Pushed::Closed;
            }
            if state.frames.len() + state.taken >= self.hard_limit {
                return Pushed::Overflow;
            }
            state.frames.push_back(frame);
            waker = state.waker.take();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        Pushed::Queued
    }

    /// Asks the connection to close; with `discard`, frames not yet taken are dropped
    /// and their number returned.
    pub(crate) fn request_close(&self, code: CloseCode, discard: bool) -> usize {
        let (waker, discarded) = {
            let mut state = self.lock();
            if state.close.is_some() {
                return 0;
            }
            let discarded = if discard {
                let n = state.frames.len();
                state.frames = VecDeque::new();
                n
            } else {
                0
            };
            state.close = Some(code);
            (state.waker.take(), discarded)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        discarded
    }

    /// Marks the queue closed (the connection is gone) and drops what it holds; returns
    /// how many frames were dropped.
    pub(crate) fn close_and_discard(&self) -> usize {
        let mut state = self.lock();
        if state.close.is_none() {
            state.close = Some(CloseCode::Normal);
        }
        state.waker = None;
        state.taken = 0;
        std::mem::take(&mut state.frames).len()
    }

    /// Moves every queued frame into `batch` (which must be empty), or reports a close
    /// request, or registers the task to be woken when something arrives.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Utf8Bytes>,
    ) -> Poll<Taken> {
        debug_assert!(batch.is_empty());
        let mut state = self.lock();
        if !state.frames.is_empty() {
            std::mem::swap(&mut state.frames, batch);
            state.taken += batch.len();
            return Poll::Ready(Taken::Frames);
        }
        if let Some(close) = state.close {
            return Poll::Ready(Taken::Close(close));
        }
        if state.drain_notice && state.taken == 0 {
            state.drain_notice = false;
            return Poll::Ready(Taken::Drained);
        }
        // Idle after a burst: give the burst's memory back.
        if state.frames.capacity() > IDLE_CAPACITY {
            state.frames = VecDeque::new();
        }
        if batch.capacity() > IDLE_CAPACITY {
            *batch = VecDeque::new();
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Asks the connection to report when its queue is empty.
    pub(crate) fn request_drain_notice(&self) {
        let waker = {
            let mut state = self.lock();
            state.drain_notice = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The connection wrote `n` of the frames it took.
    pub(crate) fn written(&self, n: usize) {
        let mut state = self.lock();
        state.taken = state.taken.saturating_sub(n);
    }

    /// The connection sent the hub a command.
    pub(crate) fn command_sent(&self) {
        self.commands.fetch_add(1, Ordering::AcqRel);
    }

    /// The hub took one of the connection's commands (before it replies to it, so that
    /// the reply wakes a connection that can read again).
    pub(crate) fn command_taken(&self) {
        // Never below zero, whatever the order of the two sides.
        let _ = self
            .commands
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Commands sent and not yet taken by the hub.
    pub(crate) fn commands_waiting(&self) -> usize {
        self.commands.load(Ordering::Acquire)
    }

    /// Room left below the capacity for events of `topic`: as many as can be queued
    /// now without one being dropped.
    pub(crate) fn free(&self, topic: &Topic) -> usize {
        let state = self.lock();
        // A `lagged` notice waiting for the topic goes in before its next event.
        let notice = state
            .missed
            .iter()
            .any(|(t, missed)| t == topic && *missed > 0);
        self.capacity
            .saturating_sub(state.frames.len() + state.taken + usize::from(notice))
    }

    /// Frames queued or taken and not yet written.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let state = self.lock();
        state.frames.len() + state.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Utf8Bytes {
        Utf8Bytes::from(format!("{{\"n\":{n}}}"))
    }

    fn drain(queue: &ClientQueue) -> Vec<String> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut batch = VecDeque::new();
        let mut out = Vec::new();
        while let Poll::Ready(Taken::Frames) = queue.poll_take(&mut cx, &mut batch) {
            queue.written(batch.len());
            out.extend(batch.drain(..).map(|f| f.as_str().to_owned()));
        }
        out
    }

    #[test]
    fn overflow_is_counted_and_announced_before_the_next_event() {
        let queue = ClientQueue::new(2);
        let t = Topic::BACKTEST;
        assert_eq!(queue.push_event(&t, &frame(1), false), Pushed::Queued);
        assert_eq!(queue.push_event(&t, &frame(2), false), Pushed::Queued);
        assert_eq!(queue.push_event(&t, &frame(3), false), Pushed::Dropped);
        assert_eq!(queue.push_event(&t, &frame(4), false), Pushed::Dropped);
        assert_eq!(queue.len(), 2);
        assert_eq!(drain(&queue), [r#"{"n":1}"#, r#"{"n":2}"#]);
        assert_eq!(queue.push_event(&t, &frame(5), false), Pushed::Queued);
        assert_eq!(
            drain(&queue),
            [
                r#"{"type":"lagged","data":{"topic":"backtest","missed":2}}"#,
                r#"{"n":5}"#
            ]
        );
    }

    #[test]
    fn terminal_events_pass_the_capacity_up_to_the_hard_limit() {
        let queue = ClientQueue::new(2);
        let t = Topic::BACKTEST;
        queue.push_event(&t, &frame(1), false);
        queue.push_event(&t, &frame(2), false);
        assert_eq!(queue.push_event(&t, &frame(3), false), Pushed::Dropped);
        assert_eq!(queue.push_event(&t, &frame(4), true), Pushed::Queued);
        let got = drain(&queue);
        assert_eq!(got.len(), 4);
        assert!(got[2].contains("\"missed\":1"));
        assert_eq!(got[3], r#"{"n":4}"#);
    }
}
