//! JSON Lines: a durable, replayable record of runs, one event per line.
//!
//! [`JsonLinesSink`] writes each envelope as one line of JSON (the event's
//! `{"type":...,"data":{...}}` plus its `"topic"`) to any [`io::Write`]: standard output,
//! a file, a pipe. [`read_json_lines`] reads such a record back.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sink::{ProgressSink, SinkError};
use crate::wire::Envelope;

/// What a [`JsonLinesSink`] does when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Drop the event, count it and return [`SinkError::Full`]: the caller never waits,
    /// except for a run's terminal event (`backtest_complete`, `backtest_error`), which
    /// waits for room up to [`JsonLinesConfig::terminal_wait`] rather than be lost.
    #[default]
    Drop,
    /// Wait until the writer thread has room: nothing is lost, but a slow destination
    /// slows the backtest down.
    Block,
}

/// Configuration of a [`JsonLinesSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLinesConfig {
    /// How many events may wait for the writer thread (default 65,536).
    pub capacity: usize,
    /// What happens when they are more (default [`OverflowPolicy::Drop`]).
    pub overflow: OverflowPolicy,
    /// How long a terminal event waits for room under [`OverflowPolicy::Drop`] (default
    /// 5 s); past it, it is dropped and counted like any other.
    pub terminal_wait: Duration,
}

impl Default for JsonLinesConfig {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            overflow: OverflowPolicy::Drop,
            terminal_wait: Duration::from_secs(5),
        }
    }
}

/// Counters of a [`JsonLinesSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsonLinesStats {
    /// Lines written.
    pub written: u64,
    /// Events dropped because the queue was full or the writer had stopped.
    pub dropped: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Lines lost because their write failed.
    pub lost: u64,
}

/// Writes every event as one line of JSON, on a writer thread of its own.
///
/// Publishing only queues the event (bounded, see [`JsonLinesConfig`]); serializing and
/// writing happen on the sink's thread, so a slow disk or a blocked pipe never stalls
/// the backtest. Lines are written in batches, and whenever the queue runs empty, so
/// they appear promptly; a failed write is counted and its lines are counted as lost. [`flush`](ProgressSink::flush) waits until everything queued is written;
/// dropping the sink writes what is queued, flushes and stops the thread.
///
/// Stream a run to standard output:
///
/// ```
/// use backtest_stream::sink::JsonLinesSink;
/// use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
///
/// let mut run = ProgressStreamer::new(JsonLinesSink::stdout())
///     .start(RunInfo::new("vanilla", "EURUSD"), 1_000);
/// for bar in 1..=1_000 {
///     run.progress(bar, || ProgressDetails::default());
/// }
/// run.complete(RunResults { final_balance: 10_250.0, ..Default::default() });
/// ```
pub struct JsonLinesSink {
    tx: Option<mpsc::SyncSender<Command>>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    config: JsonLinesConfig,
}

#[derive(Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    lost: AtomicU64,
    /// A write error not yet reported to a publisher.
    pending_error: Mutex<Option<io::Error>>,
}

impl Shared {
    fn record_error(&self, error: io::Error) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        let mut pending = self
            .pending_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.get_or_insert(error);
    }

    fn take_error(&self) -> Option<io::Error> {
        if self.write_errors.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.pending_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

enum Command {
    Line(Envelope),
    Flush(mpsc::SyncSender<io::Result<()>>),
}

impl JsonLinesSink {
    /// Writes to `writer` with the default configuration.
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        Self::with_config(writer, JsonLinesConfig::default())
    }

    /// Writes to `writer` with the given configuration.
    pub fn with_config(writer: impl Write + Send + 'static, config: JsonLinesConfig) -> Self {
        let config = JsonLinesConfig {
            capacity: config.capacity.max(1),
            ..config
        };
        let (tx, rx) = mpsc::sync_channel(config.capacity);
        let shared = Arc::new(Shared::default());
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("backtest-stream-jsonl".into())
            .spawn(move || write_loop(writer, &rx, &worker_shared));
        match worker {
            Ok(worker) => Self {
                tx: Some(tx),
                worker: Some(worker),
                shared,
                config,
            },
            Err(error) => {
                // No thread: every publish reports the sink as closed.
                shared.record_error(error);
                Self {
                    tx: None,
                    worker: None,
                    shared,
                    config,
                }
            }
        }
    }

    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self::new(io::stdout())
    }

    /// Creates (or truncates) the file at `path` and writes to it.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::new(File::create(path)?))
    }

    /// The sink's counters.
    pub fn stats(&self) -> JsonLinesStats {
        JsonLinesStats {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            write_errors: self.shared.write_errors.load(Ordering::Relaxed),
            lost: self.shared.lost.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Lines are gathered in a batch of at most this many bytes before they are written.
const BATCH_BYTES: usize = 64 * 1024;

fn write_loop(mut writer: impl Write, rx: &mpsc::Receiver<Command>, shared: &Shared) {
    let mut batch = Batch::default();
    while let Ok(command) = rx.recv() {
        let mut next = Some(command);
        while let Some(command) = next {
            match command {
                Command::Line(envelope) => {
                    batch.push(&envelope);
                    if batch.bytes.len() >= BATCH_BYTES {
                        // Errors are counted in `shared`.
                        let _ = batch.write(&mut writer, shared);
                    }
                }
                Command::Flush(ack) => {
                    let result = batch.write(&mut writer, shared);
                    let _ = ack.send(result);
                }
            }
            next = rx.try_recv().ok();
        }
        // The queue ran empty: write what was gathered so it appears promptly.
        let _ = batch.write(&mut writer, shared);
    }
}

/// Lines gathered for one write.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

impl Batch {
    fn push(&mut self, envelope: &Envelope) {
        envelope.write_json(&mut self.bytes);
        self.bytes.push(b'\n');
        self.lines += 1;
    }

    /// Writes and flushes the batch; on failure its lines are counted as lost.
    fn write(&mut self, writer: &mut impl Write, shared: &Shared) -> io::Result<()> {
        let result = writer.write_all(&self.bytes).and_then(|()| writer.flush());
        match &result {
            Ok(()) => {
                shared.written.fetch_add(self.lines, Ordering::Relaxed);
            }
            Err(error) => {
                shared.lost.fetch_add(self.lines, Ordering::Relaxed);
                shared.record_error(io::Error::new(error.kind(), error.to_string()));
            }
        }
        self.bytes.clear();
        self.lines = 0;
        result
    }
}

impl ProgressSink for JsonLinesSink {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        if let Some(error) = self.shared.take_error() {
            // Report an earlier write failure once, but still queue this event.
            self.enqueue(envelope)?;
            return Err(SinkError::Io(error));
        }
        self.enqueue(envelope)
    }

    fn flush(&self) -> Result<(), SinkError> {
        let tx = self.tx.as_ref().ok_or(SinkError::Closed)?;
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        tx.send(Command::Flush(ack_tx))
            .map_err(|_| SinkError::Closed)?;
        let result = ack_rx.recv().map_err(|_| SinkError::Closed)?;
        // An error of this flush is also pending for publishers: report it once.
        let pending = self.shared.take_error();
        result?;
        match pending {
            Some(error) => Err(SinkError::Io(error)),
            None => Ok(()),
        }
    }
}

impl JsonLinesSink {
    fn enqueue(&self, envelope: &Envelope) -> Result<(), SinkError> {
        let Some(tx) = self.tx.as_ref() else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(SinkError::Closed);
        };
        let command = Command::Line(envelope.clone());
        let result = match self.config.overflow {
            OverflowPolicy::Drop => match tx.try_send(command) {
                Ok(()) => Ok(()),
                Err(mpsc::TrySendError::Full(command)) if envelope.event.is_terminal() => {
                    self.wait_for_room(tx, command)
                }
                Err(mpsc::TrySendError::Full(_)) => Err(SinkError::Full {
                    capacity: self.config.capacity,
                }),
                Err(mpsc::TrySendError::Disconnected(_)) => Err(SinkError::Closed),
            },
            OverflowPolicy::Block => tx.send(command).map_err(|_| SinkError::Closed),
        };
        if result.is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl JsonLinesSink {
    /// A terminal event found the queue full: waits for room, up to `terminal_wait`.
    #[cold]
    fn wait_for_room(
        &self,
        tx: &mpsc::SyncSender<Command>,
        mut command: Command,
    ) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.config.terminal_wait;
        loop {
            std::thread::sleep(Duration::from_micros(200));
            match tx.try_send(command) {
                Ok(()) => return Ok(()),
                Err(mpsc::TrySendError::Disconnected(_)) => return Err(SinkError::Closed),
                Err(mpsc::TrySendError::Full(_)) if Instant::now() >= deadline => {
                    return Err(SinkError::Full {
                        capacity: self.config.capacity,
                    });
                }
                Err(mpsc::TrySendError::Full(back)) => command = back,
            }
        }
    }
}

impl Drop for JsonLinesSink {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain the queue, flush and return.
        drop(self.tx.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A line of a JSON Lines record that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadJsonLinesError {
    /// Reading failed.
    #[error("line {line}: read failed: {source}")]
    Io {
        /// The 1-based line number.
        line: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The line is not an event.
    #[error("line {line}: not an event: {source}")]
    Parse {
        /// The 1-based line number.
        line: u64,
        /// The JSON error (its column is within the line).
        #[source]
        source: serde_json::Error,
    },
}

/// Reads a JSON Lines record back into envelopes, one per non-blank line, for replay.
///
/// ```
/// use backtest_stream::sink::read_json_lines;
/// use backtest_stream::wire::EventKind;
///
/// let record = br#"{"type":"backtest_error","data":{"backtest_id":"r","error":"e","error_details":"","timestamp":"2024-01-15T10:30:45.000Z"},"topic":"backtest"}
/// not json
/// "#;
/// let mut lines = read_json_lines(&record[..]);
/// assert_eq!(lines.next().unwrap()?.event.kind(), EventKind::BacktestError);
/// let error = lines.next().unwrap().unwrap_err();
/// assert!(error.to_string().starts_with("line 2: not an event"));
/// # Ok::<(), backtest_stream::sink::ReadJsonLinesError>(())
/// ```
pub fn read_json_lines<R: BufRead>(reader: R) -> JsonLinesReader<R> {
    JsonLinesReader {
        reader,
        line: 0,
        buf: String::new(),
    }
}

/// The iterator of [`read_json_lines`].
#[derive(Debug)]
pub struct JsonLinesReader<R> {
    reader: R,
    line: u64,
    buf: String,
}

impl<R: BufRead> Iterator for JsonLinesReader<R> {
    type Item = Result<Envelope, ReadJsonLinesError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(ReadJsonLinesError::Io {
                        line: self.line,
                        source,
                    }));
                }
            }
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            return Some(
                Envelope::from_json(text).map_err(|source| ReadJsonLinesError::Parse {
                    line: self.line,
                    source,
                }),
            );
        }
    }
}
