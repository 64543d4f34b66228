//! The hub's inbox: the bounded queue publishers push into from any thread.
//!
//! A lock-free bounded queue (crossbeam's `ArrayQueue`) plus an "idle" flag: a publish
//! costs one push and one load, and wakes the hub task only when the hub has gone idle,
//! so a busy hub is never woken per event and a publisher never waits. Part of the room
//! is reserved for urgent items (a run's terminal event): an ordinary push is refused
//! once the rest is full.

use std::sync::atomic::{AtomicBool, Ordering, fence};

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

/// Why a push failed.
pub(crate) enum Refused<T> {
    /// The queue is full.
    Full(T),
    /// The hub shut down.
    Closed(T),
}

pub(crate) struct Inbox<T> {
    queue: ArrayQueue<T>,
    /// Items an ordinary push may fill; the rest of the queue is for urgent pushes.
    ordinary: usize,
    /// Set by the hub before it waits; cleared by the publisher that wakes it.
    idle: AtomicBool,
    ready: Notify,
    closed: AtomicBool,
}

impl<T> Inbox<T> {
    /// A queue of `capacity` items for any push, plus `reserve` for urgent ones.
    pub(crate) fn new(capacity: usize, reserve: usize) -> Self {
        let ordinary = capacity.max(1);
        Self {
            queue: ArrayQueue::new(ordinary.saturating_add(reserve)),
            ordinary,
            idle: AtomicBool::new(false),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The room of ordinary pushes.
    pub(crate) fn capacity(&self) -> usize {
        self.ordinary
    }

    /// Pushes without waiting; wakes the hub if it is idle. An ordinary push is refused
    /// once `capacity` items wait; an `urgent` one may use the reserve too.
    #[inline]
    pub(crate) fn push(&self, item: T, urgent: bool) -> Result<(), Refused<T>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Refused::Closed(item));
        }
        if !urgent && self.queue.len() >= self.ordinary {
            return Err(Refused::Full(item));
        }
        self.queue.push(item).map_err(Refused::Full)?;
        // Order the push before reading the flag; pairs with the fence in `wait`.
        fence(Ordering::SeqCst);
        if self.idle.load(Ordering::Relaxed) && self.idle.swap(false, Ordering::AcqRel) {
            self.ready.notify_one();
        }
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// Refuses further pushes (what is queued can still be popped).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Resolves when the inbox may have items (the hub calls this once it is empty).
    pub(crate) async fn wait(&self) {
        let notified = self.ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.idle.store(true, Ordering::Relaxed);
        // Order the flag before reading the queue; pairs with the fence in `push`.
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.idle.store(false, Ordering::Relaxed);
            return;
        }
        notified.await;
        self.idle.store(false, Ordering::Relaxed);
    }

    /// Marks the hub busy again (after a wait was cancelled).
    pub(crate) fn busy(&self) {
        self.idle.store(false, Ordering::Relaxed);
    }
}
