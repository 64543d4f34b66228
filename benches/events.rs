//! Cost of building and serializing each event type, and of a progress call that the
//! throttle suppresses. Run with `cargo bench --bench events`.

use std::hint::black_box;

use backtest_stream::sink::NoopSink;
use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo};
use backtest_stream::wire::{
    BacktestComplete, BacktestError, BacktestId, BacktestProgress, BacktestStart, Event, LogEntry,
    LogLevel, Timestamp,
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
