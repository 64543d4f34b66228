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
//! - `engine/runner_off_plus_results`: streaming off, then the results map of
//!   `backtest_complete` built and dropped (the run makes 27,607 trades, each a JSON
//!   object in `results.trades`): the same work as `runner_memory_sink` minus the
//!   streaming itself, so the difference between the two is the cost of streaming;
//! - `results/run_results`: building and dropping that results map alone.

use std::hint::black_box;
use std::time::Duration;

use backtest_stream::{
    BacktestRunner, Bar, EngineConfig, EngineOutput, MemorySink, ReferenceEngine, SmaCrossover,
    SyntheticBars,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BARS: usize = 1_000_000;

fn data() -> Vec<Bar> {
    SyntheticBars {
        count: BARS,
        interval: Duration::from_secs(60),
        ..SyntheticBars::default()
    }
    .generate()
    .expect("valid synthetic settings")
}

fn engine(bars: &[Bar]) -> ReferenceEngine<'_, SmaCrossover> {
    let strategy = SmaCrossover::new(10, 20, 1.0).expect("valid parameters");
    ReferenceEngine::new(
        bars,
        strategy,
        EngineConfig {
            periods_per_year: 365.0,
            ..EngineConfig::default()
        },
    )
}

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
    group.bench_function("runner_off_plus_results", |b| {
        b.iter(|| {
            let report = BacktestRunner::disabled()
                .run(&mut engine(&bars))
                .expect("run");
            black_box(report.run_results());
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
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
