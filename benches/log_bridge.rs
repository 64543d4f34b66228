//! The cost of a `log::info!` through the installed log bridge.
//!
//! Targets (issue 3): filtered out under 10 ns; delivered to an in-memory sink under
//! 1 µs. Run with `cargo bench --bench log_bridge`.

use std::hint::black_box;
use std::sync::Arc;

use backtest_stream::log_bridge::{LogBridge, LogScope};
use backtest_stream::sink::{MemorySink, NoopSink, SharedSink};
use backtest_stream::wire::{BacktestId, Topic};
use criterion::{Criterion, criterion_group, criterion_main};
use log::{LevelFilter, Log};

fn bench(c: &mut Criterion) {
    // One bridge per process: streams `info` and up, but only `warn` and up from
    // `noisy_dep`, with a default sink for records outside runs.
    let default_sink = MemorySink::with_capacity(1024);
    LogBridge::builder()
        .level(LevelFilter::Info)
        .target_level("noisy_dep", LevelFilter::Warn)
        .default_sink(default_sink)
        .build()
        .try_init()
        .expect("the bench installs the only logger");

    let mut group = c.benchmark_group("log_bridge");
    let bar = 42_u64;

    // Below the global max level: `log` itself skips the call (one atomic load).
    group.bench_function("debug_filtered_by_max_level", |b| {
        b.iter(|| log::debug!("bar {} done", black_box(bar)))
    });

    // At an enabled level, but for a target the bridge filters out: the record is built
    // and handed to the bridge, which rejects it by its per-target level.
    group.bench_function("info_filtered_by_target", |b| {
        b.iter(|| log::info!(target: "noisy_dep::io", "bar {} done", black_box(bar)))
    });

    // The bridge's own share of that: a record built once, rejected by a bridge value.
    let value = LogBridge::builder()
        .level(LevelFilter::Info)
        .target_level("noisy_dep", LevelFilter::Warn)
        .build();
    let args = format_args!("bar done");
    let record = log::Record::builder()
        .level(log::Level::Info)
        .target("noisy_dep::io")
        .args(args)
        .build();
    group.bench_function("bridge_value_rejects_by_target", |b| {
        b.iter(|| value.log(black_box(&record)))
    });

    // Delivered inside a run's scope to a bounded in-memory sink (which evicts the
    // oldest event once full, so memory stays flat).
    let memory = MemorySink::with_capacity(1024);
    let shared: SharedSink = Arc::new(memory.clone());
    let id = BacktestId::random();
    group.bench_function("info_delivered_to_memory_sink", |b| {
        let _scope = LogScope::enter(id.clone(), Arc::clone(&shared), Topic::BACKTEST);
        b.iter(|| log::info!("bar {} done", black_box(bar)));
        assert!(!memory.is_empty(), "the records really were delivered");
    });

    // The same, to a sink that drops everything: the bridge's own cost (formatting the
    // record, building the event) without the sink's lock.
    let noop: SharedSink = Arc::new(NoopSink);
    group.bench_function("info_delivered_to_noop_sink", |b| {
        let _scope = LogScope::enter(id.clone(), Arc::clone(&noop), Topic::BACKTEST);
        b.iter(|| log::info!("bar {} done", black_box(bar)))
    });

    // Outside any run, to the default sink on topic `logs`.
    group.bench_function("info_outside_run_to_default_sink", |b| {
        b.iter(|| log::info!("bar {} done", black_box(bar)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
