//! The queue between the publishers of a [`RedisSink`](crate::broker::RedisSink) and its
//! writer: bounded, lock-free to push, with bands (progress gives way first, terminal
//! events have a reserve), and the count of what it refused, per topic and run.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::wire::{BacktestId, Envelope, EventKind, Topic};

/// Events refused per topic and run, not yet announced.
pub(crate) type Refusals = HashMap<(Topic, Option<BacktestId>), u64>;

/// Counters of refused events, by kind.
#[derive(Debug, Default)]
pub(crate) struct Refused {
    pub(crate) progress: AtomicU64,
    pub(crate) other: AtomicU64,
    pub(crate) terminal: AtomicU64,
}

pub(crate) struct Queue {
    items: ArrayQueue<Envelope>,
    progress_limit: usize,
    ordinary: usize,
    pub(crate) ready: Notify,
    pub(crate) closed: AtomicBool,
    refusals: Mutex<Refusals>,
    has_refusals: AtomicBool,
    pub(crate) refused: Refused,
    /// Events taken in (for `flush`).
    pub(crate) accepted: AtomicU64,
}

impl Queue {
    pub(crate) fn new(capacity: usize, reserve: usize) -> Self {
        Self {
            items: ArrayQueue::new(capacity.saturating_add(reserve).max(1)),
            progress_limit: capacity / 4 * 3,
            ordinary: capacity,
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            refusals: Mutex::new(HashMap::new()),
            has_refusals: AtomicBool::new(false),
            refused: Refused::default(),
            accepted: AtomicU64::new(0),
        }
    }

    /// Queues `envelope` if its band has room; `Err` gives it back.
    pub(crate) fn push(&self, envelope: Envelope) -> Result<(), Envelope> {
        let limit = match envelope.event.kind() {
            EventKind::BacktestProgress => self.progress_limit,
            kind if kind.is_terminal() => usize::MAX,
            _ => self.ordinary,
        };
        if self.items.len() >= limit {
            return Err(envelope);
        }
        self.items.push(envelope)?;
        self.accepted.fetch_add(1, Ordering::AcqRel);
        self.ready.notify_one();
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<Envelope> {
        self.items.pop()
    }

    /// Counts a refused event, to be announced on its topic (and run).
    pub(crate) fn refuse(&self, envelope: &Envelope) {
        let counter = match envelope.event.kind() {
            EventKind::BacktestProgress => &self.refused.progress,
            kind if kind.is_terminal() => &self.refused.terminal,
            _ => &self.refused.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let key = (
            envelope.topic.clone(),
            envelope.event.backtest_id().cloned(),
        );
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *refusals.entry(key).or_insert(0) += 1;
        self.has_refusals.store(true, Ordering::Release);
    }

    /// Takes the refusals not yet announced.
    pub(crate) fn take_refusals(&self) -> Refusals {
        if !self.has_refusals.swap(false, Ordering::AcqRel) {
            return Refusals::new();
        }
        std::mem::take(&mut *self.refusals.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
