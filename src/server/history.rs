//! Per-topic numbering, bounded history for replay, and the latest state of each run
//! for `snapshot`.

use std::collections::{HashMap, VecDeque};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::wire::{BacktestId, Event, EventKind};

/// A fast hasher for the map of runs, which is looked up for every event.
///
/// Its keys come from the publishers (the application), not from clients, and the map
/// holds at most `snapshot_runs` of them, so SipHash's protection against chosen
/// colliding keys is not needed here; this multiply-rotate hash (8 bytes per step) is
/// several times cheaper for short ids.
#[derive(Default, Clone, Copy)]
pub(crate) struct BuildRunHasher;

impl std::hash::BuildHasher for BuildRunHasher {
    type Hasher = RunHasher;

    fn build_hasher(&self) -> RunHasher {
        RunHasher(0)
    }
}

pub(crate) struct RunHasher(u64);

impl RunHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for RunHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// One retained event.
struct Entry {
    seq: u64,
    backtest_id: Option<BacktestId>,
    frame: Utf8Bytes,
}

/// The latest known state of one run.
/// Frames of the snapshot, with their seq.
type Kept = Option<(u64, Utf8Bytes)>;

#[derive(Default)]
struct RunState {
    start: Kept,
    progress: Kept,
    terminal: Kept,
}

impl RunState {
    /// Keeps `frame` as the run's latest event of its kind; returns the length of the
    /// frame it replaces (0 if none).
    fn set(&mut self, kind: EventKind, seq: u64, frame: &Utf8Bytes) -> usize {
        let slot = match kind {
            EventKind::BacktestStart => &mut self.start,
            EventKind::BacktestProgress => &mut self.progress,
            _ => &mut self.terminal,
        };
        slot.replace((seq, frame.clone()))
            .map_or(0, |(_, old)| old.len())
    }

    /// The bytes of the frames kept.
    fn bytes(&self) -> usize {
        self.frames().map(|(_, frame)| frame.len()).sum()
    }

    fn frames(&self) -> impl Iterator<Item = (u64, &Utf8Bytes)> {
        self.start
            .iter()
            .chain(self.progress.iter())
            .chain(self.terminal.iter())
            .map(|(seq, frame)| (*seq, frame))
    }
}

/// What a `since` replay yields.
pub(crate) struct Replay<'a> {
    /// Events after `since` that are no longer retained.
    pub missed: u64,
    /// The retained events after `since`, matching the filter, in order, with their seq.
    pub frames: Vec<(u64, &'a Utf8Bytes)>,
}

/// What one topic retains at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Events kept for replay.
    pub(crate) events: usize,
    /// Bytes of the frames kept for replay.
    pub(crate) bytes: usize,
    /// Runs kept for snapshot.
    pub(crate) runs: usize,
    /// Bytes of the frames kept for snapshot.
    pub(crate) run_bytes: usize,
}

/// The history of one topic.
pub(crate) struct TopicHistory {
    seq: u64,
    entries: VecDeque<Entry>,
    /// The bytes of the frames in `entries`.
    bytes: usize,
    runs: HashMap<BacktestId, RunState, BuildRunHasher>,
    /// Runs in the order they were first seen.
    run_order: VecDeque<BacktestId>,
    /// The bytes of the frames in `runs`.
    run_bytes: usize,
    limits: Limits,
}

impl TopicHistory {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            seq: 0,
            entries: VecDeque::new(),
            bytes: 0,
            runs: HashMap::default(),
            run_order: VecDeque::new(),
            run_bytes: 0,
            limits,
        }
    }

    /// The seq of the last event of the topic (0 before the first).
    pub(crate) fn head(&self) -> u64 {
        self.seq
    }

    /// Numbers the next event.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Takes `seq`, given elsewhere (a broker), as the head: the seqs between the old
    /// head and it were never seen here (a replay reports them missed).
    pub(crate) fn advance_to(&mut self, seq: u64) -> u64 {
        self.seq = self.seq.max(seq);
        self.seq
    }

    /// Retains an event and updates the state of its run.
    pub(crate) fn record(&mut self, seq: u64, event: &Event, frame: &Utf8Bytes) {
        if self.limits.events > 0 {
            self.entries.push_back(Entry {
                seq,
                backtest_id: event.backtest_id().cloned(),
                frame: frame.clone(),
            });
            self.bytes += frame.len();
            // The oldest go first; a frame larger than the whole budget is not kept
            // either (a replay reports it missed).
            while self.entries.len() > self.limits.events || self.bytes > self.limits.bytes {
                let Some(old) = self.entries.pop_front() else {
                    break;
                };
                self.bytes -= old.frame.len();
            }
        }
        if self.limits.runs == 0 {
            return;
        }
        let Some(id) = event.backtest_id() else {
            return;
        };
        let kind = event.kind();
        if kind == EventKind::LogEntry {
            return;
        }
        // The common case (a run already known) costs one lookup.
        if let Some(run) = self.runs.get_mut(id) {
            let replaced = run.set(kind, seq, frame);
            self.run_bytes = self.run_bytes - replaced + frame.len();
            if self.run_bytes > self.limits.run_bytes {
                self.evict_runs(id);
            }
            return;
        }
        let mut run = RunState::default();
        run.set(kind, seq, frame);
        self.run_bytes += frame.len();
        self.run_order.push_back(id.clone());
        self.runs.insert(id.clone(), run);
        self.evict_runs(id);
    }

    /// Forgets runs until at most `limits.runs` are kept in at most `limits.run_bytes`:
    /// the oldest finished run first, else the oldest running one, never `current`
    /// (the run just updated, which may alone go past the byte budget).
    fn evict_runs(&mut self, current: &BacktestId) {
        while self.runs.len() > self.limits.runs || self.run_bytes > self.limits.run_bytes {
            let finished = self.run_order.iter().position(|id| {
                id != current && self.runs.get(id).is_none_or(|run| run.terminal.is_some())
            });
            let Some(index) =
                finished.or_else(|| self.run_order.iter().position(|id| id != current))
            else {
                break;
            };
            let Some(id) = self.run_order.remove(index) else {
                break;
            };
            if let Some(run) = self.runs.remove(&id) {
                self.run_bytes -= run.bytes();
            }
        }
    }

    /// The retained events after `since` (for one run only, with a filter).
    pub(crate) fn replay(&self, since: u64, run: Option<&BacktestId>) -> Replay<'_> {
        let oldest = self.oldest();
        let missed = oldest.saturating_sub(since.saturating_add(1));
        let start = self.entries.partition_point(|e| e.seq <= since);
        let frames = self
            .entries
            .range(start..)
            .filter(|e| run.is_none() || e.backtest_id.as_ref() == run)
            .map(|e| (e.seq, &e.frame))
            .collect();
        Replay { missed, frames }
    }

    /// The seq of the oldest retained event (`head + 1` when none is retained).
    pub(crate) fn oldest(&self) -> u64 {
        self.entries.front().map_or(self.seq + 1, |e| e.seq)
    }

    /// The terminal events (of every run, or of one) numbered from `from` to before
    /// `until`, in seq order: what the snapshot state still holds of a part of the
    /// history that is gone.
    pub(crate) fn terminals_between(
        &self,
        from: u64,
        until: u64,
        run: Option<&BacktestId>,
    ) -> Vec<(u64, &Utf8Bytes)> {
        let mut terminals: Vec<(u64, &Utf8Bytes)> = self
            .runs
            .iter()
            .filter(|(id, _)| run.is_none_or(|run| run == *id))
            .filter_map(|(_, state)| state.terminal.as_ref())
            .filter(|(seq, _)| (from..until).contains(seq))
            .map(|(seq, frame)| (*seq, frame))
            .collect();
        terminals.sort_unstable_by_key(|(seq, _)| *seq);
        terminals
    }

    /// The state of every known run (or of one): start, latest progress, terminal,
    /// with their seq.
    pub(crate) fn snapshot(&self, run: Option<&BacktestId>) -> Vec<(u64, &Utf8Bytes)> {
        match run {
            Some(id) => self
                .runs
                .get(id)
                .map(|r| r.frames().collect())
                .unwrap_or_default(),
            None => self
                .run_order
                .iter()
                .filter_map(|id| self.runs.get(id))
                .flat_map(RunState::frames)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::frames::event_frame;
    use crate::wire::{BacktestProgress, Envelope, Timestamp, Topic};

    fn progress(id: &str, bars: u64) -> Event {
        Event::BacktestProgress(BacktestProgress {
            backtest_id: BacktestId::new(id).unwrap(),
            progress: 0.0,
            status: String::new(),
            bars_processed: bars,
            total_bars: 10,
            current_date: String::new(),
            trades_count: 0,
            current_pnl: 0.0,
            timestamp: Timestamp::from_unix_millis(0).unwrap(),
        })
    }

    fn limits(events: usize, bytes: usize, runs: usize, run_bytes: usize) -> Limits {
        Limits {
            events,
            bytes,
            runs,
            run_bytes,
        }
    }

    fn publish(history: &mut TopicHistory, event: Event) {
        let seq = history.next_seq();
        let frame = event_frame(&Envelope::new(Topic::BACKTEST, event.clone()), seq);
        history.record(seq, &event, &frame);
    }

    #[test]
    fn replay_reports_what_fell_out_of_the_history() {
        let mut history = TopicHistory::new(limits(3, usize::MAX, 8, usize::MAX));
        for bars in 1..=5 {
            publish(&mut history, progress("r", bars));
        }
        assert_eq!(history.head(), 5);
        let replay = history.replay(0, None);
        assert_eq!(replay.missed, 2);
        assert_eq!(replay.frames.len(), 3);
        let replay = history.replay(3, None);
        assert_eq!(replay.missed, 0);
        assert_eq!(replay.frames.len(), 2);
        assert_eq!(replay.frames[0].0, 4);
        assert!(replay.frames[0].1.as_str().ends_with("\"seq\":4}"));
        assert_eq!(history.replay(5, None).frames.len(), 0);
    }

    #[test]
    fn snapshot_keeps_the_latest_progress_and_evicts_finished_runs_first() {
        let mut history = TopicHistory::new(limits(0, 0, 2, usize::MAX));
        publish(&mut history, progress("a", 1));
        publish(&mut history, progress("a", 2));
        let snapshot = history.snapshot(None);
        assert_eq!(snapshot.len(), 1);
        assert!(snapshot[0].1.as_str().contains("\"bars_processed\":2"));
        publish(&mut history, progress("b", 1));
        publish(&mut history, progress("c", 1));
        assert_eq!(history.snapshot(None).len(), 2);
        assert!(
            history
                .snapshot(Some(&BacktestId::new("a").unwrap()))
                .is_empty()
        );
    }

    fn frame_len(event: Event) -> usize {
        event_frame(&Envelope::new(Topic::BACKTEST, event), 1).len()
    }

    fn error(id: &str) -> Event {
        Event::BacktestError(crate::wire::BacktestError {
            backtest_id: BacktestId::new(id).unwrap(),
            error: "failed".into(),
            error_details: "x".repeat(1000),
            timestamp: Timestamp::from_unix_millis(0).unwrap(),
        })
    }

    #[test]
    fn the_replay_history_keeps_at_most_its_byte_budget_oldest_out_first() {
        // Frames of progress("r", 1..=9) have the same length.
        let len = frame_len(progress("r", 1));
        let mut history = TopicHistory::new(limits(100, 3 * len, 8, usize::MAX));
        for bars in 1..=5 {
            publish(&mut history, progress("r", bars));
        }
        assert_eq!(history.bytes, 3 * len);
        let replay = history.replay(0, None);
        assert_eq!(replay.missed, 2);
        assert_eq!(
            replay
                .frames
                .iter()
                .map(|(seq, _)| *seq)
                .collect::<Vec<_>>(),
            [3, 4, 5]
        );
        // A frame larger than the whole budget is not kept, and is reported missed.
        publish(&mut history, error("r"));
        assert_eq!(history.bytes, 0);
        let replay = history.replay(5, None);
        assert_eq!(replay.missed, 1);
        assert!(replay.frames.is_empty());
        publish(&mut history, progress("r", 7));
        assert_eq!(history.replay(0, None).frames.len(), 1);
        assert_eq!(history.bytes, len);
    }

    #[test]
    fn the_snapshot_keeps_at_most_its_byte_budget_finished_runs_out_first() {
        let small = frame_len(progress("a", 1));
        let big = frame_len(error("a"));
        // Just short of two finished runs (start-less: progress + error).
        let mut history = TopicHistory::new(limits(0, 0, 100, 2 * (small + big) - 1));
        assert!(3 * small + big < 2 * (small + big) - 1);
        let id = |s: &str| BacktestId::new(s).unwrap();
        publish(&mut history, progress("a", 1));
        publish(&mut history, error("a"));
        publish(&mut history, progress("b", 1));
        publish(&mut history, progress("c", 1));
        assert_eq!(history.run_bytes, small + big + 2 * small);
        // b ends: over the budget, a (the oldest finished run) is forgotten.
        publish(&mut history, error("b"));
        assert!(history.snapshot(Some(&id("a"))).is_empty());
        assert_eq!(history.snapshot(Some(&id("b"))).len(), 2);
        assert_eq!(history.snapshot(Some(&id("c"))).len(), 1);
        assert_eq!(history.run_bytes, small + big + small);
        // c ends too: b is forgotten, never c, the run just updated.
        publish(&mut history, error("c"));
        assert!(history.snapshot(Some(&id("b"))).is_empty());
        assert_eq!(history.snapshot(Some(&id("c"))).len(), 2);
        // A run alone over the budget is kept (its latest frames only).
        let mut tight = TopicHistory::new(limits(0, 0, 100, small));
        publish(&mut tight, progress("x", 1));
        publish(&mut tight, error("x"));
        assert_eq!(tight.snapshot(None).len(), 2);
        publish(&mut tight, progress("y", 1));
        assert!(tight.snapshot(Some(&id("x"))).is_empty());
        assert_eq!(tight.snapshot(None).len(), 1);
        assert_eq!(tight.run_bytes, small);
    }
}
