//! Cost of building and serializing each event type, and of a progress call that the
//! throttle suppresses. Run with `cargo bench --bench events`.
//!
//! `frame_hand` and `frame_serde` are the standing comparison that justifies the wire's
//! hand-written writer: the frame the hub writes once per event
//! (`{"type":...,"data":{...},"topic":...,"seq":N}`), by the hand writer and by
//! serde_json into the same reused buffer. `tests/wire_properties.rs` checks that both
//! write the same bytes.

use std::hint::black_box;

use backtest_stream::sink::NoopSink;
use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo};
use backtest_stream::wire::{
    BacktestComplete, BacktestError, BacktestId, BacktestProgress, BacktestStart, Envelope, Event,
    EventFrame, EventKind, LogEntry, LogLevel, Results, Side, Timestamp, Topic, Trade,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn build(kind: usize, id: &BacktestId, ts: Timestamp) -> Event {
    match kind {
        0 => Event::BacktestStart(BacktestStart {
            backtest_id: id.clone(),
            variant: "spiced".into(),
            symbol: "EURUSD".into(),
            timeframe: "H1".into(),
            start_date: "2023-01-01".into(),
            end_date: "2023-12-31".into(),
            timestamp: ts,
        }),
        1 => Event::BacktestProgress(BacktestProgress {
            backtest_id: id.clone(),
            progress: 50.0,
            status: "Processing bar 5000/10000".into(),
            bars_processed: 5_000,
            total_bars: 10_000,
            current_date: "2023-06-15".into(),
            trades_count: 25,
            current_pnl: 500.0,
            timestamp: ts,
        }),
        2 => Event::LogEntry(LogEntry {
            backtest_id: Some(id.clone()),
            timestamp: ts,
            level: LogLevel::Info,
            message: "Trade executed: BUY 0.1 lots EURUSD".into(),
            module: "mode_runner".into(),
            function: "execute_trade".into(),
            line: 245,
            logger_name: "backtest.uuid-string".into(),
        }),
        3 => Event::BacktestComplete(BacktestComplete {
            backtest_id: id.clone(),
            final_balance: 12_500.0,
            total_trades: 45,
            win_rate: 62.5,
            sharpe_ratio: 1.85,
            drawdown: 8.5,
            return_pct: 25.0,
            duration_seconds: 45.3,
            timestamp: ts,
            results: Default::default(),
        }),
        _ => Event::BacktestError(BacktestError {
            backtest_id: id.clone(),
            error: "Strategy execution failed".into(),
            error_details: "ZeroDivisionError: division by zero at line 45".into(),
            timestamp: ts,
        }),
    }
}

fn events(c: &mut Criterion) {
    let id = BacktestId::random();
    let ts = Timestamp::now();
    let names = [
        "backtest_start",
        "backtest_progress",
        "log_entry",
        "backtest_complete",
        "backtest_error",
    ];
    let mut group = c.benchmark_group("build_and_serialize");
    for (kind, name) in names.iter().enumerate() {
        let mut buf = Vec::with_capacity(512);
        group.bench_function(*name, |b| {
            b.iter(|| {
                buf.clear();
                build(black_box(kind), &id, ts).write_json(&mut buf);
                black_box(buf.len())
            })
        });
    }
    group.finish();

    frames(c, &id, ts);

    let mut group = c.benchmark_group("serialize");
    for (kind, name) in names.iter().enumerate() {
        let event = build(kind, &id, ts);
        let mut buf = Vec::with_capacity(512);
        group.bench_function(*name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(&event).write_json(&mut buf);
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

/// The hub's frame of each event, plus a `backtest_complete` listing 500 trades, written
/// by hand and by serde_json into a reused buffer.
fn frames(c: &mut Criterion, id: &BacktestId, ts: Timestamp) {
    let mut events: Vec<(String, Event)> = (0..5)
        .map(|kind| {
            (
                EventKind::ALL[kind].as_str().to_owned(),
                build(kind, id, ts),
            )
        })
        .collect();
    let trades: Vec<Trade> = (0..500)
        .map(|i| Trade {
            closed_at_end: false,
            entry_price: 1.0842 + f64::from(i) * 1e-4,
            entry_time: ts,
            exit_price: 1.0853 + f64::from(i) * 1e-4,
            exit_time: ts,
            pnl: 0.0011 * f64::from(i % 7) - 0.003,
            side: if i % 2 == 0 { Side::Long } else { Side::Short },
            size: 1.0,
        })
        .collect();
    if let Event::BacktestComplete(mut complete) = build(3, id, ts) {
        complete.results = Results::with_trades(trades);
        events.push((
            "complete_500_trades".into(),
            Event::BacktestComplete(complete),
        ));
    }
    for (group_name, serde) in [("frame_hand", false), ("frame_serde", true)] {
        let mut group = c.benchmark_group(group_name);
        for (name, event) in &events {
            let envelope = Envelope::new(Topic::BACKTEST, event.clone());
            let frame = EventFrame::new(envelope.clone(), 123_456);
            let mut buf = Vec::with_capacity(512);
            group.bench_function(name.as_str(), |b| {
                b.iter(|| {
                    buf.clear();
                    if serde {
                        serde_json::to_writer(&mut buf, black_box(&frame)).expect("in memory");
                    } else {
                        EventFrame::write_numbered(black_box(&envelope), 123_456, &mut buf);
                    }
                    black_box(buf.len())
                })
            });
        }
        group.finish();
    }
}

fn throttle(c: &mut Criterion) {
    let mut run = ProgressStreamer::new(NoopSink)
        .progress_every(u64::MAX / 4)
        .start(RunInfo::default(), u64::MAX / 2);
    let mut bar = 0u64;
    c.bench_function("progress_suppressed", |b| {
        b.iter(|| {
            bar += 1;
            black_box(run.progress(black_box(bar), ProgressDetails::default))
        })
    });
    run.complete(Default::default());
}

criterion_group!(benches, events, throttle);
criterion_main!(benches);
