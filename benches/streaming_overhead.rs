//! What streaming costs a backtest: the same run with streaming off and on, in pairs.
//!
//! `cargo bench --bench streaming_overhead` (target ≤ 2 %, issue 4)
//!
//! Both sides run the SMA crossover (10/20) on 1,000,000 synthetic one-minute bars
//! through a [`BacktestRunner`]: `BacktestRunner::disabled()` against
//! `BacktestRunner::new(memory_sink)` with the runner's defaults (progress every 100
//! bars, at most every 10 ms), `backtest_start` and `backtest_complete` with its
//! results (27,607 trades). Everything the backtest's thread does for streaming is
//! inside the timed part.
//!
//! A shared machine drifts by more than 2 % within seconds, so the two sides are not
//! timed one after the other as a criterion benchmark would: the runs alternate (off,
//! on, on, off, ...) and the overhead is the median of the ratios of neighbouring runs.
//!
//! A second part installs the [`LogBridge`] (level INFO) and measures again: then the
//! run's fill log lines (one per fill, 55,214) also become `log_entry` events with streaming on. That
//! figure is the log bridge's cost per line (see `cargo bench --bench log_bridge`) times
//! the lines an engine logs, reported for information.
//!
//! `PAIRS=N` sets the number of pairs (default 40).

use std::hint::black_box;
use std::time::{Duration, Instant};

use backtest_stream::engine::BacktestRunner;
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::reference::Bar;
use backtest_stream::sink::MemorySink;
use backtest_stream::wire::EventKind;

mod support;

use support::{data, engine};

/// One run with streaming off.
fn run_off(bars: &[Bar]) -> Duration {
    let started = Instant::now();
    let report = BacktestRunner::disabled()
        .run(&mut engine(bars))
        .expect("run");
    let elapsed = started.elapsed();
    black_box(report);
    elapsed
}

/// One run streaming to a memory sink; the sink is checked (and dropped) untimed.
fn run_on(bars: &[Bar], expect_logs: bool) -> Duration {
    let memory = MemorySink::with_capacity(1 << 17);
    let started = Instant::now();
    let report = BacktestRunner::new(memory.clone())
        .run(&mut engine(bars))
        .expect("run");
    let elapsed = started.elapsed();
    let events = memory.events();
    assert_eq!(events[0].kind(), EventKind::BacktestStart);
    assert_eq!(
        events.last().map(|e| e.kind()),
        Some(EventKind::BacktestComplete)
    );
    let logs = events
        .iter()
        .filter(|e| e.kind() == EventKind::LogEntry)
        .count();
    assert_eq!(logs > 0, expect_logs, "{logs} log entries");
    black_box(report);
    elapsed
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn measure(label: &str, bars: &[Bar], pairs: usize, logs: bool) {
    // Warm up: caches, the allocator, the CPU's clock.
    for _ in 0..3 {
        run_off(bars);
        run_on(bars, logs);
    }
    let mut off = Vec::with_capacity(pairs);
    let mut on = Vec::with_capacity(pairs);
    let mut ratios = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (a, b) = if i % 2 == 0 {
            let a = run_off(bars);
            (a, run_on(bars, logs))
        } else {
            let b = run_on(bars, logs);
            (run_off(bars), b)
        };
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        off.push(a * 1e3);
        on.push(b * 1e3);
        ratios.push(b / a);
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let quartile = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: off {:.2} ms, on {:.2} ms (medians of {pairs}); overhead {:+.2} % \
         (median of pair ratios; quartiles {:+.2} % .. {:+.2} %)",
        median(&mut off),
        median(&mut on),
        (median(&mut ratios) - 1.0) * 100.0,
        (quartile(0.25) - 1.0) * 100.0,
        (quartile(0.75) - 1.0) * 100.0,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run once.
    let benching = std::env::args().any(|a| a == "--bench");
    let pairs = match std::env::var("PAIRS") {
        Ok(text) => text.parse().expect("PAIRS is a number of pairs"),
        Err(_) if benching => 40,
        Err(_) => 1,
    };
    let bars = data();
    measure("streaming (start, progress, complete)", &bars, pairs, false);
    LogBridge::builder()
        .level(log::LevelFilter::Info)
        .build()
        .try_init()
        .expect("the only logger of this process");
    measure(
        "streaming with the log bridge (fill lines as log_entry events)",
        &bars,
        pairs,
        true,
    );
}
