//! The ready sinks: JSON Lines, fan-out, composition.

mod writer_support;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use backtest_stream::sink::{
    FanOut, JsonLinesConfig, JsonLinesSink, MemorySink, NoopSink, OverflowPolicy, ProgressSink,
    SinkError, read_json_lines, sink_fn,
};
use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
use backtest_stream::wire::{Event, EventKind, Topic};
use writer_support::SharedBuffer;

fn run_to(sink: impl ProgressSink + 'static, bars: u64) {
    let mut run = ProgressStreamer::new(sink).start(RunInfo::new("vanilla", "EURUSD"), bars);
    for bar in 1..=bars {
        run.progress(bar, || ProgressDetails {
            status: Some(format!("bar {bar} \"quoted\"\n")),
            ..Default::default()
        });
    }
    run.complete(RunResults::default());
}

#[test]
fn json_lines_are_valid_ndjson_one_event_per_line_and_read_back() {
    let buffer = SharedBuffer::default();
    let sink = Arc::new(JsonLinesSink::new(buffer.clone()));
    run_to(sink.clone(), 1_000);
    sink.flush().unwrap();
    assert_eq!(sink.stats().written, 12);
    let text = buffer.text();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12);
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["topic"], "backtest");
        assert!(value["data"].is_object());
    }
    let envelopes: Vec<_> = read_json_lines(text.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(envelopes.len(), 12);
    assert_eq!(envelopes[0].event.kind(), EventKind::BacktestStart);
    assert_eq!(envelopes[11].event.kind(), EventKind::BacktestComplete);
    let Event::BacktestProgress(p) = &*envelopes[1].event else {
        panic!()
    };
    assert_eq!(p.status, "bar 100 \"quoted\"\n");
    // Each line is also an Event on its own.
    assert_eq!(Event::from_json(lines[1]).unwrap(), *envelopes[1].event);
}

#[test]
fn json_lines_to_a_file_are_complete_when_the_sink_is_dropped() {
    let path = std::env::temp_dir().join(format!("backtest-stream-{}.jsonl", std::process::id()));
    let sink = JsonLinesSink::create(&path).unwrap();
    run_to(sink, 250);
    let file = std::fs::File::open(&path).unwrap();
    let kinds: Vec<EventKind> = read_json_lines(io::BufReader::new(file))
        .map(|e| e.unwrap().event.kind())
        .collect();
    std::fs::remove_file(&path).unwrap();
    use EventKind::*;
    assert_eq!(
        kinds,
        [
            BacktestStart,
            BacktestProgress,
            BacktestProgress,
            BacktestProgress,
            BacktestComplete
        ]
    );
}

/// A writer that fails every write.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
    }
}

#[test]
fn json_lines_write_errors_are_counted_and_reported() {
    let sink = Arc::new(JsonLinesSink::new(Broken));
    let memory = MemorySink::new();
    run_to((sink.clone(), memory.clone()), 100);
    let err = sink.flush().unwrap_err();
    assert!(
        matches!(err, SinkError::Io(ref e) if e.kind() == io::ErrorKind::BrokenPipe),
        "{err}"
    );
    assert!(sink.stats().write_errors >= 1);
    assert_eq!(sink.stats().written, 0);
    // The other half of the pair got everything.
    assert_eq!(memory.len(), 3);
}

/// A writer that blocks until released, to fill the sink's queue.
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (open, cv) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.write(&[]).map(|_| ())
    }
}

#[test]
fn a_full_json_lines_queue_drops_and_counts_without_blocking() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let sink = JsonLinesSink::with_config(
        Gate(gate.clone()),
        JsonLinesConfig {
            capacity: 4,
            overflow: OverflowPolicy::Drop,
            ..JsonLinesConfig::default()
        },
    );
    // Progress gives way; a run's terminal event would wait for room instead (below).
    let envelope = backtest_stream::wire::Envelope::new(
        Topic::BACKTEST,
        Event::from_json(include_str!("fixtures/seed_backtest_progress.json")).unwrap(),
    );
    let mut full = 0;
    for _ in 0..100 {
        if let Err(SinkError::Full { capacity: 4 }) = sink.publish(&envelope) {
            full += 1;
        }
    }
    // The writer holds at most one batch; the queue at most 4: the rest were dropped.
    assert!(full >= 90, "{full}");
    assert_eq!(sink.stats().dropped, full);
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    sink.flush().unwrap();
    assert_eq!(sink.stats().written + sink.stats().dropped, 100);
}

#[test]
fn a_terminal_event_waits_for_room_in_a_full_json_lines_queue_and_is_written() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let sink = Arc::new(JsonLinesSink::with_config(
        Gate(gate.clone()),
        JsonLinesConfig {
            capacity: 2,
            overflow: OverflowPolicy::Drop,
            terminal_wait: std::time::Duration::from_secs(30),
        },
    ));
    let progress = backtest_stream::wire::Envelope::new(
        Topic::BACKTEST,
        Event::from_json(include_str!("fixtures/seed_backtest_progress.json")).unwrap(),
    );
    let error = backtest_stream::wire::Envelope::new(
        Topic::BACKTEST,
        Event::from_json(include_str!("fixtures/seed_backtest_error.json")).unwrap(),
    );
    // The writer takes a first line and blocks on the destination; then the queue
    // fills up.
    sink.publish(&progress).expect("room for the first line");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut refused = 0;
    for _ in 1..20 {
        refused += u64::from(sink.publish(&progress).is_err());
    }
    assert!(refused > 0, "the queue filled up");
    let publisher = {
        let sink = Arc::clone(&sink);
        std::thread::spawn(move || sink.publish(&error))
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !publisher.is_finished(),
        "the terminal event waits for room"
    );
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    publisher
        .join()
        .unwrap()
        .expect("the terminal event got room");
    sink.flush().unwrap();
    let stats = sink.stats();
    assert_eq!(stats.dropped, refused, "only progress gave way: {stats:?}");
    assert_eq!(stats.written, 20 - refused + 1, "{stats:?}");
}

#[test]
fn a_terminal_event_that_never_gets_room_is_dropped_and_counted_after_its_wait() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let sink = JsonLinesSink::with_config(
        Gate(gate.clone()),
        JsonLinesConfig {
            capacity: 1,
            overflow: OverflowPolicy::Drop,
            terminal_wait: std::time::Duration::from_millis(50),
        },
    );
    let error = backtest_stream::wire::Envelope::new(
        Topic::BACKTEST,
        Event::from_json(include_str!("fixtures/seed_backtest_error.json")).unwrap(),
    );
    let outcomes: Vec<_> = (0..5).map(|_| sink.publish(&error)).collect();
    assert!(
        outcomes
            .iter()
            .any(|r| matches!(r, Err(SinkError::Full { capacity: 1 }))),
        "{outcomes:?}"
    );
    let dropped = outcomes.iter().filter(|r| r.is_err()).count() as u64;
    assert_eq!(sink.stats().dropped, dropped);
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();
}

#[test]
fn fan_out_delivers_to_all_and_survives_a_failing_sink() {
    let first = MemorySink::new();
    let second = MemorySink::new();
    let fan_out = FanOut::new()
        .with(first.clone())
        .with(sink_fn(|_| Err(SinkError::other("downstream is down"))))
        .with(second.clone());
    let failures = fan_out.failures();
    assert_eq!(fan_out.len(), 3);
    run_to(fan_out, 200);
    assert_eq!(first.len(), 4);
    assert_eq!(second.len(), 4);
    assert_eq!(failures.per_sink(), [0, 4, 0]);
    assert_eq!(failures.total(), 4);
}

#[test]
fn fan_out_errors_name_how_many_failed() {
    let fan_out = FanOut::new()
        .with(NoopSink)
        .with(sink_fn(|_| Err(SinkError::Closed)));
    let envelope = backtest_stream::wire::Envelope::new(
        Topic::BACKTEST,
        Event::from_json(include_str!("fixtures/seed_backtest_start.json")).unwrap(),
    );
    let err = fan_out.publish(&envelope).unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 of 2 sinks failed; first error: sink is closed"
    );
}

#[test]
fn sinks_compose_through_option_box_arc_vec_and_tuples() {
    let a = MemorySink::new();
    let b = MemorySink::new();
    let c = MemorySink::new();
    let off: Option<MemorySink> = None;
    let stacked: Vec<Box<dyn ProgressSink>> = vec![
        Box::new(a.clone()),
        Box::new(Some(b.clone())),
        Box::new(off),
        Box::new((Arc::new(c.clone()), NoopSink)),
    ];
    run_to(stacked, 100);
    assert_eq!((a.len(), b.len(), c.len()), (3, 3, 3));
}

#[test]
fn the_channel_sink_delivers_across_threads() {
    let (sink, rx) = backtest_stream::sink::channel(64);
    let producer = std::thread::spawn(move || run_to(sink, 300));
    let kinds: Vec<EventKind> = rx.iter().map(|e| e.event.kind()).collect();
    producer.join().unwrap();
    assert_eq!(kinds.len(), 5);
    assert_eq!(kinds.last(), Some(&EventKind::BacktestComplete));
}
