//! Reference-engine throughput and the wrapper's streaming overhead.
//!
//! `cargo bench --bench engine`
//!
//! - `engine/sma_detached`: the SMA crossover (10/20) on 1,000,000 synthetic one-minute
//!   bars, no wrapper (target ≥ 20 M bars/s);
//! - `engine/runner_streaming_off`: the same run through `BacktestRunner::disabled()`;
//! - `engine/runner_memory_sink`: the same run streaming to a `MemorySink` with the
//!   runner's default cadence (every 100 bars, at most every 10 ms);
//! - `engine/runner_memory_sink_every_100`: the same with no time throttle (progress
//!   every 100 bars: 10,000 progress events);
//!
//! The streaming overhead is `runner_memory_sink` against `runner_streaming_off` (target
//! ≤ 2 %). It counts everything the backtest's thread does for streaming, the results of
//! `backtest_complete` included: the run makes 27,607 trades, and the event shares the
//! report's trade list (see `Results`) instead of building JSON for it.
//!
//! - `results/run_results`: building the results of `backtest_complete` from a report;
//! - `results/complete_event_json`: writing that `backtest_complete` as JSON text (the
//!   27,607 trades included), what a transport does once per run off the backtest's
//!   thread (the hub's task, the JSON Lines writer thread).

use std::hint::black_box;
use std::time::Duration;

use backtest_stream::engine::{BacktestRunner, EngineOutput};
use backtest_stream::sink::MemorySink;
use backtest_stream::wire::EventKind;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod support;

use support::{BARS, data, engine};

fn bench_engine(c: &mut Criterion) {
    let bars = data();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("sma_detached", |b| {
        b.iter(|| black_box(engine(&bars).run_detached().expect("run")))
    });
    group.bench_function("runner_streaming_off", |b| {
        b.iter(|| {
            black_box(
                BacktestRunner::disabled()
                    .run(&mut engine(&bars))
                    .expect("run"),
            )
        })
    });
    group.bench_function("runner_memory_sink_every_100", |b| {
        b.iter(|| {
            let memory = MemorySink::with_capacity(16_384);
            let report = BacktestRunner::new(memory.clone())
                .min_interval(Duration::ZERO)
                .run(&mut engine(&bars))
                .expect("run");
            assert_eq!(memory.len(), 10_002);
            black_box(report)
        })
    });
    group.bench_function("runner_memory_sink", |b| {
        b.iter(|| {
            let memory = MemorySink::with_capacity(16_384);
            let report = BacktestRunner::new(memory.clone())
                .run(&mut engine(&bars))
                .expect("run");
            black_box(report)
        })
    });
    group.finish();

    let report = engine(&bars).run_detached().expect("run");
    let mut group = c.benchmark_group("results");
    group.throughput(Throughput::Elements(report.trades.len() as u64));
    group.sample_size(30);
    group.bench_function("run_results", |b| {
        b.iter(|| black_box(report.run_results()))
    });
    let memory = MemorySink::with_capacity(16_384);
    BacktestRunner::new(memory.clone())
        .run(&mut engine(&bars))
        .expect("run");
    let complete = memory
        .events()
        .into_iter()
        .find(|e| e.kind() == EventKind::BacktestComplete)
        .expect("a backtest_complete event");
    let mut out = Vec::new();
    group.bench_function("complete_event_json", |b| {
        b.iter(|| {
            out.clear();
            complete.write_json(&mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
