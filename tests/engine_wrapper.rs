//! The engine wrapper: event sequences for success, engine error, panic and
//! cancellation; progress cadence; streaming off; two runs on two threads.

mod writer_support;

use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use backtest_stream::engine::{BacktestRunner, RunError};
use backtest_stream::log_bridge::LogBridge;
use backtest_stream::reference::{
    BacktestReport, Bar, EngineConfig, ReferenceEngine, SmaCrossover, Strategy, StrategyContext,
    StrategyError, SyntheticBars, run_backtest,
};
use backtest_stream::sink::{MemorySink, channel};
use backtest_stream::wire::{BacktestId, Envelope, Event, EventKind, Topic};

/// Installs the log bridge once for this test binary.
fn install_bridge() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        LogBridge::builder()
            .level(log::LevelFilter::Info)
            .build()
            .try_init()
            .expect("no other logger in this test binary");
    });
}

fn bars(count: usize, seed: u64) -> Vec<Bar> {
    SyntheticBars {
        count,
        seed,
        ..SyntheticBars::default()
    }
    .generate()
    .unwrap()
}

fn config() -> EngineConfig {
    EngineConfig {
        symbol: "SYNTH".into(),
        timeframe: "H1".into(),
        ..EngineConfig::default()
    }
}

fn kinds(events: &[Arc<Event>]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind()).collect()
}

fn without_logs(events: &[Arc<Event>]) -> Vec<Arc<Event>> {
    events
        .iter()
        .filter(|e| e.kind() != EventKind::LogEntry)
        .cloned()
        .collect()
}

fn log_messages(events: &[Arc<Event>]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &**e {
            Event::LogEntry(entry) => Some(entry.message.clone()),
            _ => None,
        })
        .collect()
}

/// A price as the engine's log lines write it: six decimals, trailing zeros trimmed.
fn log_price(price: f64) -> String {
    let text = format!("{price:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The fill log lines a report's trades imply, in order.
fn expected_fill_logs(report: &BacktestReport) -> Vec<String> {
    let mut lines = Vec::new();
    for trade in report.trades.iter() {
        lines.push(format!(
            "Trade executed: BUY {} @ {}",
            trade.size,
            log_price(trade.entry_price)
        ));
        let suffix = if trade.closed_at_end {
            " (closing at the end of the data)"
        } else {
            ""
        };
        lines.push(format!(
            "Trade executed: SELL {} @ {}{suffix}",
            trade.size,
            log_price(trade.exit_price)
        ));
    }
    lines
}

#[test]
fn a_successful_run_streams_start_progress_logs_and_complete() {
    install_bridge();
    let data = bars(1_000, 1);
    let memory = MemorySink::new();
    let mut engine = ReferenceEngine::new(&data, SmaCrossover::new(10, 20, 1.0).unwrap(), config());
    let report = BacktestRunner::new(memory.clone())
        .min_interval(Duration::ZERO)
        .with_id(BacktestId::new("run-ok").unwrap())
        .variant("vanilla")
        .run(&mut engine)
        .unwrap();
    assert!(report.trades.len() >= 5, "the fixture should trade");

    let events = memory.events();
    assert!(events.iter().all(|e| e.backtest_id().unwrap() == "run-ok"));
    let lifecycle = without_logs(&events);
    let mut expected = vec![EventKind::BacktestStart];
    expected.extend([EventKind::BacktestProgress; 10]);
    expected.push(EventKind::BacktestComplete);
    assert_eq!(kinds(&lifecycle), expected);

    let Event::BacktestStart(start) = &*lifecycle[0] else {
        unreachable!()
    };
    assert_eq!(
        (
            start.variant.as_str(),
            start.symbol.as_str(),
            start.timeframe.as_str()
        ),
        ("vanilla", "SYNTH", "H1")
    );
    assert_eq!(start.start_date, data[0].timestamp.date_string());
    assert_eq!(start.end_date, data[999].timestamp.date_string());

    for (k, event) in lifecycle[1..11].iter().enumerate() {
        let Event::BacktestProgress(p) = &**event else {
            unreachable!()
        };
        let n = 100 * (k as u64 + 1);
        assert_eq!((p.bars_processed, p.total_bars), (n, 1_000));
        assert_eq!(p.progress, n as f64 / 10.0);
        let last = data[n as usize - 1].timestamp;
        assert_eq!(p.current_date, last.date_string());
        let closed = report
            .trades
            .iter()
            .filter(|t| !t.closed_at_end && t.exit_time <= last)
            .count() as u64;
        assert_eq!(p.trades_count, closed, "trades so far at bar {n}");
    }
    let Event::BacktestProgress(last) = &*lifecycle[10] else {
        unreachable!()
    };
    // The equity at the last bar is the final balance.
    assert!((last.current_pnl - (report.metrics.final_balance - 10_000.0)).abs() < 1e-9);

    let Event::BacktestComplete(done) = &*lifecycle[11] else {
        unreachable!()
    };
    assert_eq!(done.final_balance, report.metrics.final_balance);
    assert_eq!(done.total_trades, report.trades.len() as u64);
    assert_eq!(done.drawdown, report.metrics.drawdown);
    // The event shares the report's trade list: no copy, no JSON built on this thread.
    let typed = done.results.trades().expect("a typed trade list");
    assert!(std::sync::Arc::ptr_eq(typed, &report.trades));
    let results = done.results.to_value();
    let trades = results["trades"].as_array().unwrap();
    assert_eq!(trades.len(), report.trades.len());
    assert_eq!(trades[0]["entry_price"], report.trades[0].entry_price);
    assert_eq!(
        trades[0]["entry_time"],
        report.trades[0].entry_time.to_string()
    );
    assert_eq!(results["trades_omitted"], 0);
    assert_eq!(results["parameters"]["strategy"], "sma_crossover");
    assert_eq!(results["parameters"]["fast"], 10);
    assert_eq!(results["parameters"]["slow"], 20);

    // The fills are the run's log entries, between its start and its end.
    assert_eq!(log_messages(&events), expected_fill_logs(&report));
    assert_eq!(events[0].kind(), EventKind::BacktestStart);
    assert_eq!(events.last().unwrap().kind(), EventKind::BacktestComplete);
    for event in &events {
        if let Event::LogEntry(entry) = &**event {
            assert_eq!(entry.logger_name, "backtest.run-ok");
        }
    }
}

/// Fails, or panics, at a chosen bar.
struct Faulty {
    at: usize,
    panic: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("indicator buffer exhausted")]
struct Exhausted;

#[derive(Debug, thiserror::Error)]
#[error("cannot compute the signal")]
struct SignalFailed(#[source] Exhausted);

impl Strategy for Faulty {
    fn name(&self) -> &str {
        "faulty"
    }
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        if ctx.index() == self.at {
            if self.panic {
                panic!("boom at bar {}", self.at);
            }
            return Err(Box::new(SignalFailed(Exhausted)));
        }
        Ok(())
    }
}

#[test]
fn an_engine_error_ends_the_run_with_the_error_chain() {
    let data = bars(1_000, 2);
    let memory = MemorySink::new();
    let mut engine = ReferenceEngine::new(
        &data,
        Faulty {
            at: 150,
            panic: false,
        },
        config(),
    );
    let err = BacktestRunner::new(memory.clone())
        .run(&mut engine)
        .unwrap_err();
    assert!(matches!(err, RunError::Engine(_)), "{err}");

    let events = memory.events();
    assert_eq!(
        kinds(&events),
        [
            EventKind::BacktestStart,
            EventKind::BacktestProgress,
            EventKind::BacktestError
        ]
    );
    let Event::BacktestError(e) = &*events[2] else {
        unreachable!()
    };
    let when = data[150].timestamp;
    assert_eq!(
        e.error,
        format!("strategy `faulty` failed at bar 150 ({when})")
    );
    assert_eq!(
        e.error_details,
        format!(
            "strategy `faulty` failed at bar 150 ({when})\n\
             caused by: cannot compute the signal\n\
             caused by: indicator buffer exhausted"
        )
    );
}

#[test]
fn a_panic_is_caught_and_reported_with_message_and_location() {
    let data = bars(1_000, 3);
    let memory = MemorySink::new();
    let mut engine = ReferenceEngine::new(
        &data,
        Faulty {
            at: 250,
            panic: true,
        },
        config(),
    );
    let err = BacktestRunner::new(memory.clone())
        .min_interval(Duration::ZERO)
        .run(&mut engine)
        .unwrap_err();
    let RunError::Panicked { message, location } = &err else {
        panic!("expected a panic, got {err}");
    };
    assert_eq!(message, "boom at bar 250");
    assert!(
        location.starts_with("tests/engine_wrapper.rs:"),
        "{location}"
    );
    let line: u32 = location.split(':').nth(1).unwrap().parse().unwrap();
    let source = include_str!("engine_wrapper.rs");
    let panicking_line = source.lines().nth(line as usize - 1).unwrap();
    assert!(
        panicking_line.contains("panic!(\"boom at bar {}\""),
        "{panicking_line}"
    );

    let events = memory.events();
    assert_eq!(
        kinds(&events),
        [
            EventKind::BacktestStart,
            EventKind::BacktestProgress,
            EventKind::BacktestProgress,
            EventKind::BacktestError
        ]
    );
    let Event::BacktestError(e) = &*events[3] else {
        unreachable!()
    };
    assert_eq!(e.error, "Backtest engine panicked: boom at bar 250");
    assert_eq!(
        e.error_details,
        format!("panicked at {location}: boom at bar 250")
    );
}

/// Sleeps at each bar, so that another thread has time to act.
struct Slow;

impl Strategy for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn on_bar(&mut self, _: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        std::thread::sleep(Duration::from_micros(100));
        Ok(())
    }
}

#[test]
fn a_run_cancelled_from_another_thread_ends_with_an_error_saying_so() {
    let data = bars(100_000, 4);
    let (sink, receiver) = channel(100_000);
    let runner = BacktestRunner::new(sink).progress_every(100);
    let token = runner.cancel_token().clone();
    let watcher = std::thread::spawn(move || {
        let mut seen: Vec<Envelope> = Vec::new();
        while let Ok(envelope) = receiver.recv() {
            let kind = envelope.event.kind();
            seen.push(envelope);
            if kind == EventKind::BacktestProgress {
                token.cancel();
            }
            if kind.is_terminal() {
                break;
            }
        }
        seen
    });
    let mut engine = ReferenceEngine::new(&data, Slow, config());
    let err = runner.run(&mut engine).unwrap_err();
    let RunError::Cancelled {
        bars_processed,
        total_bars,
    } = err
    else {
        panic!("expected a cancellation, got {err}");
    };
    assert_eq!(total_bars, 100_000);
    assert!(
        bars_processed > 100 && bars_processed < 100_000,
        "{bars_processed}"
    );

    let seen = watcher.join().unwrap();
    let last = seen.last().unwrap();
    let Event::BacktestError(e) = &*last.event else {
        panic!("expected backtest_error, got {:?}", last.event.kind());
    };
    assert_eq!(e.error, "Backtest cancelled");
    assert_eq!(
        e.error_details,
        format!("cancelled by the caller after {bars_processed} of 100000 bars")
    );
    assert_eq!(seen[0].event.kind(), EventKind::BacktestStart);
}

#[test]
fn a_run_cancelled_before_it_starts_stops_at_its_first_bar() {
    let data = bars(500, 5);
    let memory = MemorySink::new();
    let runner = BacktestRunner::new(memory.clone());
    runner.cancel_token().cancel();
    let mut engine = ReferenceEngine::new(&data, SmaCrossover::new(3, 5, 1.0).unwrap(), config());
    let err = runner.run(&mut engine).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Cancelled {
                bars_processed: 1,
                total_bars: 500
            }
        ),
        "{err}"
    );
    assert_eq!(
        kinds(&memory.events()),
        [EventKind::BacktestStart, EventKind::BacktestError]
    );
}

#[test]
fn progress_follows_the_cadence_and_always_ends_at_100_percent() {
    let data = bars(1_001, 6);
    let memory = MemorySink::new();
    let mut engine = ReferenceEngine::new(&data, SmaCrossover::new(3, 5, 1.0).unwrap(), config());
    BacktestRunner::new(memory.clone())
        .progress_every(250)
        .min_interval(Duration::ZERO)
        .topic(Topic::TRADING)
        .run(&mut engine)
        .unwrap();
    let envelopes = memory.envelopes();
    assert!(envelopes.iter().all(|e| e.topic == Topic::TRADING));
    let processed: Vec<u64> = envelopes
        .iter()
        .filter_map(|e| match &*e.event {
            Event::BacktestProgress(p) => Some(p.bars_processed),
            _ => None,
        })
        .collect();
    assert_eq!(processed, [250, 500, 750, 1000, 1001]);
}

#[test]
fn progress_is_throttled_by_time_as_well_as_by_bars() {
    assert_eq!(
        BacktestRunner::disabled().streamer_config().min_interval,
        Some(Duration::from_millis(10))
    );
    /// Sleeps this many milliseconds per bar.
    struct Millis(u64);
    impl Strategy for Millis {
        fn name(&self) -> &str {
            "millis"
        }
        fn on_bar(&mut self, _: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
            std::thread::sleep(Duration::from_millis(self.0));
            Ok(())
        }
    }
    let data = bars(300, 8);
    // Slow bars (about 100 ms between due updates): the default 10 ms throttle lets
    // every due update (100, 200, 300) through.
    let memory = MemorySink::new();
    BacktestRunner::new(memory.clone())
        .run(&mut ReferenceEngine::new(&data, Millis(1), config()))
        .unwrap();
    assert_eq!(progress_counts(&memory), [100, 200, 300]);
    // Fast bars under a long throttle: the throttle holds back updates, except at a
    // cadence point that crosses a whole percent (here every one: a step is 33 %), so
    // a fast run's chart still gets its points.
    let memory = MemorySink::new();
    BacktestRunner::new(memory.clone())
        .min_interval(Duration::from_secs(3_600))
        .run(&mut ReferenceEngine::new(&data, Millis(0), config()))
        .unwrap();
    assert_eq!(progress_counts(&memory), [100, 200, 300]);
    // A long run at full speed: one point per whole percent at most from that rule
    // (1 % = 1,000 bars = ten cadence steps), not one per cadence step.
    let long = bars(100_000, 8);
    let memory = MemorySink::new();
    BacktestRunner::new(memory.clone())
        .min_interval(Duration::from_secs(3_600))
        .run(&mut ReferenceEngine::new(&long, Millis(0), config()))
        .unwrap();
    // The first cadence point, then one per percent to the end.
    let counts = progress_counts(&memory);
    assert_eq!(counts.len(), 101, "{counts:?}");
    assert_eq!(counts[..2], [100, 1_000]);
    assert!(
        counts[1..].windows(2).all(|w| w[1] - w[0] == 1_000),
        "{counts:?}"
    );
}

fn progress_counts(memory: &MemorySink) -> Vec<u64> {
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
fn streaming_off_runs_the_same_engine_and_publishes_nothing() {
    let data = bars(2_000, 7);
    let strategy = || SmaCrossover::new(5, 12, 3.0).unwrap();
    let memory = MemorySink::new();
    let streamed = BacktestRunner::new(memory.clone())
        .run(&mut ReferenceEngine::new(&data, strategy(), config()))
        .unwrap();
    let silent = BacktestRunner::disabled()
        .run(&mut ReferenceEngine::new(&data, strategy(), config()))
        .unwrap();
    assert_eq!(streamed, silent);
    let silent_too = run_backtest("vanilla", &data, strategy(), None, None).unwrap();
    assert_eq!(silent_too.trades, silent.trades);
    assert!(!memory.is_empty());
}

#[test]
fn metrics_that_cannot_be_computed_are_null_on_the_wire() {
    // All bars on one date and no trades: no win rate, no Sharpe ratio.
    let data = SyntheticBars {
        count: 50,
        interval: Duration::from_secs(60),
        ..SyntheticBars::default()
    }
    .generate()
    .unwrap();
    let memory = MemorySink::new();
    let mut engine =
        ReferenceEngine::new(&data, SmaCrossover::new(100, 200, 1.0).unwrap(), config());
    BacktestRunner::new(memory.clone())
        .run(&mut engine)
        .unwrap();
    let json = memory.events().last().unwrap().to_json();
    assert!(
        json.contains(r#""win_rate":null,"sharpe_ratio":null"#),
        "{json}"
    );
    assert!(json.contains(r#""total_trades":0"#), "{json}");
}

#[test]
fn two_runs_on_two_threads_each_stream_only_their_own_events_and_logs() {
    install_bridge();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = [("run-a", 11u64), ("run-b", 12u64)]
        .into_iter()
        .map(|(id, seed)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let data = bars(20_000, seed);
                let memory = MemorySink::new();
                let mut engine =
                    ReferenceEngine::new(&data, SmaCrossover::new(5, 10, 1.0).unwrap(), config());
                let runner = BacktestRunner::new(memory.clone())
                    .min_interval(Duration::ZERO)
                    .with_id(BacktestId::new(id).unwrap());
                barrier.wait();
                let report = runner.run(&mut engine).unwrap();
                (id, report, memory.events())
            })
        })
        .collect();
    for handle in handles {
        let (id, report, events) = handle.join().unwrap();
        assert!(
            report.trades.len() > 100,
            "{id}: the runs should overlap in logging"
        );
        assert!(
            events.iter().all(|e| e.backtest_id().unwrap() == id),
            "{id} received another run's event"
        );
        assert_eq!(log_messages(&events), expected_fill_logs(&report), "{id}");
        let lifecycle = without_logs(&events);
        assert_eq!(lifecycle.len(), 1 + 200 + 1, "{id}");
        assert_eq!(
            lifecycle.last().unwrap().kind(),
            EventKind::BacktestComplete
        );
    }
}

#[test]
fn a_panic_while_building_the_results_is_reported_too() {
    use backtest_stream::engine::{BacktestEngine, Cancelled, EngineOutput, RunMonitor};
    use backtest_stream::streamer::{RunInfo, RunResults};
    struct Broken;
    impl EngineOutput for Broken {
        fn run_results(&self) -> RunResults {
            panic!("results unavailable")
        }
    }
    struct Engine;
    impl BacktestEngine for Engine {
        type Output = Broken;
        type Error = Cancelled;
        fn run_info(&self) -> RunInfo {
            RunInfo::new("broken", "TEST")
        }
        fn total_bars(&self) -> u64 {
            10
        }
        fn run(&mut self, monitor: &mut RunMonitor<'_>) -> Result<Broken, Cancelled> {
            for bar in 1..=10 {
                monitor.bar(bar, Default::default)?;
            }
            Ok(Broken)
        }
    }
    let memory = MemorySink::new();
    let err = BacktestRunner::new(memory.clone())
        .run(&mut Engine)
        .err()
        .expect("the run fails");
    assert!(matches!(&err, RunError::Panicked { message, .. } if message == "results unavailable"));
    assert_eq!(
        kinds(&memory.events()),
        [
            EventKind::BacktestStart,
            EventKind::BacktestProgress,
            EventKind::BacktestError
        ]
    );
    // Streaming off: the results are never built, so nothing panics.
    assert!(BacktestRunner::disabled().run(&mut Engine).is_ok());
}

#[test]
fn the_trade_list_of_the_results_can_be_limited_to_the_last_trades() {
    use backtest_stream::engine::EngineOutput;
    let data = bars(3_000, 9);
    let config = EngineConfig {
        max_result_trades: Some(3),
        ..config()
    };
    let report = ReferenceEngine::new(&data, SmaCrossover::new(5, 10, 1.0).unwrap(), config)
        .run_detached()
        .unwrap();
    let n = report.trades.len();
    assert!(n > 3);
    let results = report.run_results().results;
    assert_eq!(results.trades().unwrap()[..], report.trades[n - 3..]);
    let results = results.to_value();
    let listed: Vec<serde_json::Value> = report.trades[n - 3..]
        .iter()
        .map(|t| serde_json::to_value(t).expect("a trade is JSON"))
        .collect();
    assert_eq!(results["trades"].as_array().unwrap(), &listed);
    assert_eq!(results["trades_omitted"], n - 3);
}

#[test]
fn an_engine_that_checks_the_token_itself_is_reported_as_cancelled() {
    use backtest_stream::engine::{BacktestEngine, RunMonitor};
    use backtest_stream::streamer::{RunInfo, RunResults};
    #[derive(Debug, thiserror::Error)]
    #[error("stopped on request")]
    struct Stopped;
    struct Polling;
    impl BacktestEngine for Polling {
        type Output = RunResults;
        type Error = Stopped;
        fn run_info(&self) -> RunInfo {
            RunInfo::new("polling", "TEST")
        }
        fn total_bars(&self) -> u64 {
            1_000
        }
        fn run(&mut self, monitor: &mut RunMonitor<'_>) -> Result<RunResults, Stopped> {
            for bar in 1..=1_000 {
                if bar == 301 {
                    // Cancelled from elsewhere while the engine works.
                    std::thread::scope(|s| {
                        s.spawn(|| CANCEL.get().unwrap().cancel());
                    });
                }
                if monitor.is_cancelled() {
                    return Err(Stopped);
                }
                let _ = monitor.bar(bar, Default::default);
            }
            Ok(RunResults::default())
        }
    }
    static CANCEL: OnceLock<backtest_stream::engine::CancelToken> = OnceLock::new();
    let runner = BacktestRunner::disabled();
    CANCEL.set(runner.cancel_token().clone()).unwrap();
    let err = runner.run(&mut Polling).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Cancelled {
                bars_processed: 300,
                total_bars: 1_000
            }
        ),
        "{err}"
    );
}

#[test]
fn the_trade_list_is_written_as_json_by_the_transport_and_reads_back_typed() {
    use backtest_stream::sink::{JsonLinesSink, ProgressSink, read_json_lines};
    use writer_support::SharedBuffer;
    let data = bars(3_000, 4);
    let buffer = SharedBuffer::default();
    let jsonl = Arc::new(JsonLinesSink::new(buffer.clone()));
    let memory = MemorySink::new();
    let report = BacktestRunner::new((Arc::clone(&jsonl), memory.clone()))
        .run(&mut ReferenceEngine::new(
            &data,
            SmaCrossover::new(5, 10, 1.0).unwrap(),
            config(),
        ))
        .unwrap();
    assert!(report.trades.len() > 10);
    jsonl.flush().unwrap();
    let text = buffer.text();
    let line = text.lines().last().unwrap();
    assert!(
        line.starts_with(r#"{"type":"backtest_complete","data":{"#),
        "{line}"
    );
    assert!(line.contains(r#""results":{"bars":3000,"parameters":{"#));
    assert!(
        line.contains(r#""rejected_orders":0,"trades":[{"closed_at_end":false,"entry_price":"#)
    );
    assert!(line.ends_with(r#"}],"trades_omitted":0,"unfilled_orders":0}},"topic":"backtest"}"#));

    // The line is the event the memory sink holds, written out.
    let held = memory.events().pop().unwrap();
    let mut expected = held.to_json();
    expected.pop();
    assert_eq!(line, format!(r#"{expected},"topic":"backtest"}}"#));

    // Read back: the same event, and the same trades once parsed.
    let envelopes: Vec<_> = read_json_lines(text.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let read = envelopes.last().unwrap();
    // Written again, the same text (compared as text: the held event's timestamp has
    // sub-millisecond digits).
    assert_eq!(read.event.to_json(), held.to_json());
    let Event::BacktestComplete(done) = &*read.event else {
        panic!("{:?}", read.event.kind())
    };
    assert!(done.results.trades().is_none(), "read back as plain JSON");
    let trades = done.results.read_trades().unwrap().unwrap();
    assert_eq!(trades[..], report.trades[..]);
    assert_eq!(done.results.get("trades_omitted"), Some(&0.into()));
}
