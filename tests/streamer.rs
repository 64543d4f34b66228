//! The progress streamer: event order, cadence, throttling, duration, the end of a run.

use std::time::Duration;

use backtest_stream::sink::{MemorySink, SinkError, sink_fn};
use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
use backtest_stream::wire::{BacktestId, Event, EventKind, Topic};

fn kinds(memory: &MemorySink) -> Vec<EventKind> {
    memory.events().iter().map(|e| e.kind()).collect()
}

fn progress_bars(memory: &MemorySink) -> Vec<u64> {
    memory
        .events()
        .iter()
        .filter_map(|e| match &**e {
            Event::BacktestProgress(p) => Some(p.bars_processed),
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_publishes_start_progress_and_complete_in_order() {
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone())
        .with_id(BacktestId::new("run-a").unwrap())
        .start(
            RunInfo::new("spiced", "EURUSD")
                .timeframe("H1")
                .dates("2023-01-01", "2023-12-31"),
            300,
        );
    for bar in 1..=300 {
        run.progress(bar, || ProgressDetails {
            current_date: "2023-06-15".into(),
            trades_count: bar / 10,
            current_pnl: bar as f64,
            status: None,
        });
    }
    let summary = run.complete(RunResults {
        final_balance: 12_500.0,
        total_trades: 45,
        win_rate: 62.5,
        sharpe_ratio: 1.85,
        drawdown: 8.5,
        return_pct: 25.0,
        results: Default::default(),
    });
    use EventKind::*;
    assert_eq!(
        kinds(&memory),
        [
            BacktestStart,
            BacktestProgress,
            BacktestProgress,
            BacktestProgress,
            BacktestComplete
        ]
    );
    assert_eq!(summary.delivery.published, 5);
    assert_eq!(summary.delivery.failed, 0);
    let envelopes = memory.envelopes();
    assert!(envelopes.iter().all(|e| e.topic == Topic::BACKTEST));
    assert!(
        envelopes
            .iter()
            .all(|e| e.event.backtest_id().unwrap() == "run-a")
    );

    let Event::BacktestStart(start) = &*envelopes[0].event else {
        panic!()
    };
    assert_eq!(
        (
            start.variant.as_str(),
            start.symbol.as_str(),
            start.timeframe.as_str()
        ),
        ("spiced", "EURUSD", "H1")
    );
    assert_eq!(
        (start.start_date.as_str(), start.end_date.as_str()),
        ("2023-01-01", "2023-12-31")
    );

    let Event::BacktestProgress(p) = &*envelopes[2].event else {
        panic!()
    };
    assert_eq!(p.bars_processed, 200);
    assert_eq!(p.total_bars, 300);
    assert!((p.progress - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(p.status, "Processing bar 200/300");
    assert_eq!((p.trades_count, p.current_pnl), (20, 200.0));
    assert_eq!(p.current_date, "2023-06-15");

    let Event::BacktestComplete(c) = &*envelopes[4].event else {
        panic!()
    };
    assert_eq!((c.final_balance, c.total_trades), (12_500.0, 45));
    assert!(c.duration_seconds >= 0.0);
}

#[test]
fn progress_is_sent_every_n_bars_and_the_final_update_always() {
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone())
        .progress_every(40)
        .start(RunInfo::default(), 130);
    let mut sent = Vec::new();
    for bar in 0..=130 {
        if run.progress(bar, ProgressDetails::default) {
            sent.push(bar);
        }
    }
    // A repeated final update is not sent twice.
    assert!(!run.progress(130, ProgressDetails::default));
    run.complete(RunResults::default());
    assert_eq!(sent, [40, 80, 120, 130]);
    assert_eq!(progress_bars(&memory), [40, 80, 120, 130]);
}

#[test]
fn default_cadence_is_100_bars_and_skipped_bars_still_trigger() {
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 1_000);
    // An engine reporting irregularly: each crossing of a multiple of 100 sends once.
    for bar in [50, 150, 160, 420, 999, 1_000] {
        run.progress(bar, ProgressDetails::default);
    }
    run.complete(RunResults::default());
    assert_eq!(progress_bars(&memory), [150, 420, 999, 1_000]);
}

#[test]
fn the_minimum_interval_throttles_but_never_the_final_update() {
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone())
        .progress_every(10)
        .min_interval(Duration::from_secs(3_600))
        .chart_points(0)
        .start(RunInfo::default(), 1_000);
    for bar in 1..=1_000 {
        run.progress(bar, ProgressDetails::default);
    }
    run.complete(RunResults::default());
    // The first update goes out, the rest within the hour are held back, the final one is sent.
    assert_eq!(progress_bars(&memory), [10, 1_000]);
    let Event::BacktestProgress(last) = &*memory.events()[2] else {
        panic!()
    };
    assert_eq!(last.progress, 100.0);
}

#[test]
fn the_minimum_interval_lets_updates_through_once_it_has_passed() {
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone())
        .progress_every(1)
        .min_interval(Duration::from_millis(20))
        .chart_points(0)
        .start(RunInfo::default(), 10);
    assert!(run.progress(1, ProgressDetails::default));
    assert!(!run.progress(2, ProgressDetails::default));
    std::thread::sleep(Duration::from_millis(30));
    // Bar 2 came fast after bar 1, so the run may skip bar 3 without reading the clock
    // (never more bars than it made since the last update: one); bar 4 reads it.
    let resumed = (3..=10)
        .find(|&bar| run.progress(bar, ProgressDetails::default))
        .unwrap();
    assert!(resumed <= 4, "resumed at bar {resumed}");
    for bar in resumed + 1..=10 {
        run.progress(bar, ProgressDetails::default);
    }
    run.complete(RunResults::default());
    assert_eq!(progress_bars(&memory), [1, resumed, 10]);
}

#[test]
fn a_fast_run_held_back_by_the_interval_reads_the_clock_at_few_cadence_points() {
    // An hour's interval and a million cadence points: after the first update, every
    // point is held back. The points at which the run still checks the clock are the
    // ones `is_progress_due` reports: a few dozen, spaced geometrically.
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone())
        .progress_every(1)
        .min_interval(Duration::from_secs(3_600))
        .chart_points(0)
        .start(RunInfo::default(), 1_000_000);
    let mut checked = Vec::new();
    for bar in 1..=1_000_000 {
        if run.is_progress_due(bar) {
            checked.push(bar);
        }
        run.progress(bar, ProgressDetails::default);
    }
    run.complete(RunResults::default());
    assert_eq!(progress_bars(&memory), [1, 1_000_000]);
    assert!(checked.len() < 64, "{} checks: {checked:?}", checked.len());
    assert_eq!(&checked[..4], [1, 2, 4, 8]);
    assert_eq!(checked.last(), Some(&1_000_000));
}

#[test]
fn a_fast_run_still_gets_a_point_per_percent() {
    // The interval holds every update back, but each cadence point that crosses a whole
    // percent goes out: a readable chart whatever the speed.
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone())
        .progress_every(7)
        .min_interval(Duration::from_secs(3_600))
        .start(RunInfo::default(), 10_000);
    for bar in 1..=10_000 {
        run.progress(bar, ProgressDetails::default);
    }
    run.complete(RunResults::default());
    let bars = progress_bars(&memory);
    // The first cadence point, then the first one past each 100 bars, then the end.
    let mut expected = vec![7];
    expected.extend((1..100).map(|p: u64| (p * 100).div_ceil(7) * 7));
    expected.push(10_000);
    assert_eq!(bars, expected);
    // Fewer points asked for: a point per 1/10 of the run.
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone())
        .min_interval(Duration::from_secs(3_600))
        .chart_points(10)
        .start(RunInfo::default(), 10_000);
    for bar in 1..=10_000 {
        run.progress(bar, ProgressDetails::default);
    }
    run.complete(RunResults::default());
    let expected: Vec<u64> = (0..=10).map(|tenth| (tenth * 1_000).max(100)).collect();
    assert_eq!(progress_bars(&memory), expected);
}

#[test]
fn details_are_built_only_for_updates_that_are_sent() {
    let mut built = 0;
    let mut run = ProgressStreamer::new(MemorySink::new()).start(RunInfo::default(), 10_000);
    for bar in 1..=10_000 {
        run.progress(bar, || {
            built += 1;
            ProgressDetails::default()
        });
    }
    run.complete(RunResults::default());
    assert_eq!(built, 100);
}

#[test]
fn duration_is_measured_from_start_to_end() {
    let memory = MemorySink::new();
    let run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 1);
    std::thread::sleep(Duration::from_millis(50));
    let summary = run.complete(RunResults::default());
    let Event::BacktestComplete(c) = &*memory.events()[1] else {
        panic!()
    };
    assert!(c.duration_seconds >= 0.05, "{}", c.duration_seconds);
    assert!(summary.duration >= Duration::from_millis(50));
    assert!((c.duration_seconds - summary.duration.as_secs_f64()).abs() < 1e-9);
}

#[test]
fn an_error_ends_the_run_with_backtest_error() {
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 500);
    run.progress(100, ProgressDetails::default);
    run.error(
        "Strategy execution failed",
        "ZeroDivisionError: division by zero",
    );
    use EventKind::*;
    assert_eq!(
        kinds(&memory),
        [BacktestStart, BacktestProgress, BacktestError]
    );
    let Event::BacktestError(e) = &*memory.events()[2] else {
        panic!()
    };
    assert_eq!(e.error, "Strategy execution failed");
    assert_eq!(e.error_details, "ZeroDivisionError: division by zero");
}

#[test]
fn a_run_dropped_or_panicking_before_its_end_reports_an_error() {
    let memory = MemorySink::new();
    let run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 5);
    drop(run);
    let sink = memory.clone();
    let joined = std::thread::spawn(move || {
        let _run = ProgressStreamer::new(sink).start(RunInfo::default(), 5);
        panic!("strategy bug");
    })
    .join();
    assert!(joined.is_err());
    let errors: Vec<String> = memory
        .events()
        .iter()
        .filter_map(|e| match &**e {
            Event::BacktestError(e) => Some(e.error_details.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("dropped"), "{errors:?}");
    assert!(errors[1].contains("panicked"), "{errors:?}");
    // Every run ended with exactly one terminal event.
    assert_eq!(
        memory.events().iter().filter(|e| e.is_terminal()).count(),
        2
    );
}

#[test]
fn a_failing_sink_never_aborts_the_run_and_is_counted_and_reported() {
    let reported = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = reported.clone();
    let mut run = ProgressStreamer::new(sink_fn(|_| Err(SinkError::Closed)))
        .on_sink_error(move |_, _| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .start(RunInfo::default(), 200);
    for bar in 1..=200 {
        run.progress(bar, ProgressDetails::default);
    }
    assert_eq!(run.delivery().failed, 3);
    let summary = run.complete(RunResults::default());
    assert_eq!(summary.delivery.failed, 4);
    assert_eq!(summary.delivery.published, 0);
    assert_eq!(
        summary.delivery.last_error.as_deref(),
        Some("sink is closed")
    );
    assert_eq!(reported.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[test]
fn a_run_can_publish_on_another_topic() {
    let memory = MemorySink::new();
    let run = ProgressStreamer::new(memory.clone())
        .topic(Topic::new("fx").unwrap())
        .start(RunInfo::default(), 0);
    run.complete(RunResults::default());
    assert!(memory.envelopes().iter().all(|e| e.topic == "fx"));
}

#[test]
fn a_zero_bar_run_reports_100_percent_once() {
    let memory = MemorySink::new();
    let mut run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 0);
    assert!(run.progress(0, ProgressDetails::default));
    assert!(!run.progress(0, ProgressDetails::default));
    run.complete(RunResults::default());
    let Event::BacktestProgress(p) = &*memory.events()[1] else {
        panic!()
    };
    assert_eq!(p.progress, 100.0);
}
