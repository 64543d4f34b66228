//! The `tracing` layer: correlation through spans across `.await` on a multi-thread
//! runtime, field mapping, precedence, routing.
#![cfg(feature = "tracing")]

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backtest_stream::log_bridge::LogScope;
use backtest_stream::sink::{MemorySink, ProgressSink, SharedSink, sink_fn};
use backtest_stream::tracing_layer::{BacktestLayer, LayerStats, RunRoutes};
use backtest_stream::wire::{BacktestId, Envelope, Event, LogEntry, Topic};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

struct Global {
    hub: MemorySink,
    routes: RunRoutes,
    stats: LayerStats,
}

/// A multi-thread runtime's workers only see the global subscriber, so this test binary
/// installs one, once; tests keep apart by using their own run ids and targets.
fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let hub = MemorySink::new();
        let layer = BacktestLayer::builder()
            .level(tracing::level_filters::LevelFilter::DEBUG)
            .default_sink(hub.clone())
            .build();
        let routes = layer.routes();
        let stats = layer.stats_handle();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("first global subscriber of this test binary");
        Global { hub, routes, stats }
    })
}

fn entries(sink: &MemorySink) -> Vec<(Topic, LogEntry)> {
    sink.envelopes()
        .into_iter()
        .filter_map(|envelope| match &*envelope.event {
            Event::LogEntry(entry) => Some((envelope.topic.clone(), entry.clone())),
            _ => None,
        })
        .collect()
}

fn hub_entries(pred: impl Fn(&LogEntry) -> bool) -> Vec<(Topic, LogEntry)> {
    entries(&global().hub)
        .into_iter()
        .filter(|(_, e)| pred(e))
        .collect()
}

fn id(text: &str) -> BacktestId {
    BacktestId::new(text).unwrap()
}

/// Two runs as async tasks on a multi-thread runtime, each in its span, each awaiting
/// between lines so that it resumes on whichever worker is free: every line lands in
/// its own run's sink, with its own id.
#[test]
fn span_correlation_survives_await_and_thread_hops_on_a_multi_thread_runtime() {
    let g = global();
    const LINES: usize = 200;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let sinks: Vec<(BacktestId, MemorySink)> = ["async-a", "async-b"]
        .into_iter()
        .map(|name| (id(name), MemorySink::new()))
        .collect();
    let _routes: Vec<_> = sinks
        .iter()
        .map(|(run, sink)| {
            let shared: SharedSink = Arc::new(sink.clone());
            g.routes.register(run.clone(), shared, Topic::BACKTEST)
        })
        .collect();
    let threads = Arc::new(Mutex::new(HashSet::new()));
    runtime.block_on(async {
        let tasks: Vec<_> = sinks
            .iter()
            .map(|(run, _)| {
                let threads = Arc::clone(&threads);
                let span = tracing::info_span!("backtest", backtest_id = %run);
                tokio::spawn(
                    async move {
                        for n in 0..LINES {
                            tracing::info!(target: "async_test", "line {n}");
                            threads.lock().unwrap().insert(std::thread::current().id());
                            if n % 10 == 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            } else {
                                tokio::task::yield_now().await;
                            }
                            // Events in a child span belong to the run too.
                            let child = tracing::debug_span!("bar", n);
                            let _entered = child.enter();
                            tracing::debug!(target: "async_test", "child {n}");
                        }
                    }
                    .instrument(span),
                )
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    for (run, sink) in &sinks {
        let logs = entries(sink);
        assert_eq!(
            logs.len(),
            2 * LINES,
            "{run}: its lines, all of them, no others"
        );
        for (n, pair) in logs.chunks(2).enumerate() {
            assert_eq!(pair[0].1.message, format!("line {n}"));
            assert_eq!(pair[1].1.message, format!("child {n}"));
            for (topic, entry) in pair {
                assert_eq!(topic, &Topic::BACKTEST);
                assert_eq!(entry.backtest_id.as_ref(), Some(run));
                assert_eq!(entry.logger_name, format!("backtest.{run}"));
            }
        }
    }
    assert!(
        hub_entries(|e| e.message.starts_with("line ") && e.module == "tracing_layer").is_empty(),
        "routed runs' lines do not reach the default sink"
    );
    // Not a requirement of the test's correctness, but what makes it meaningful.
    eprintln!("tasks ran on {} threads", threads.lock().unwrap().len());
}

#[test]
fn field_mapping_and_event_field_precedence() {
    global();
    let span = tracing::info_span!("backtest", backtest_id = "run-span");
    span.in_scope(|| {
        tracing::warn!(target: "mapping_test", function = "on_bar", lots = 0.5, "filled {}", 3);
        tracing::error!(target: "mapping_test", backtest_id = "run-event", "explicit wins");
        tracing::info!(target: "mapping_test", backtest_id = "", "invalid id kept");
    });
    let got = hub_entries(|e| {
        e.message.contains("filled")
            || e.message.contains("explicit wins")
            || e.message.contains("invalid id kept")
    });
    assert_eq!(got.len(), 3, "{got:?}");
    let (topic, first) = &got[0];
    assert_eq!(topic, &Topic::BACKTEST);
    assert_eq!(first.backtest_id, Some(id("run-span")));
    assert_eq!(first.level.as_str(), "WARNING");
    assert_eq!(first.message, "filled 3 lots=0.5");
    assert_eq!(first.function, "on_bar");
    assert_eq!(first.module, "tracing_layer");
    assert!(first.line > 0);
    assert_eq!(first.logger_name, "backtest.run-span");
    assert_eq!(got[1].1.backtest_id, Some(id("run-event")));
    assert_eq!(got[1].1.level.as_str(), "ERROR");
    assert_eq!(got[2].1.backtest_id, Some(id("run-span")));
    assert_eq!(got[2].1.message, "invalid id kept backtest_id=");
}

#[test]
fn events_outside_any_run_go_to_topic_logs_with_a_null_id() {
    global();
    tracing::info!(target: "outside_test", "no run");
    tracing::trace!(target: "outside_test", "below the layer level");
    let got = hub_entries(|e| e.logger_name == "outside_test");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Topic::LOGS);
    assert_eq!(got[0].1.backtest_id, None);
    assert_eq!(got[0].1.level.as_str(), "INFO");
}

#[test]
fn a_span_id_recorded_late_is_used() {
    global();
    let span = tracing::info_span!("backtest", backtest_id = tracing::field::Empty);
    span.record("backtest_id", "run-late");
    span.in_scope(|| tracing::info!(target: "late_test", "after record"));
    let got = hub_entries(|e| e.message == "after record");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.backtest_id, Some(id("run-late")));
}

#[test]
fn a_thread_log_scope_routes_events_without_a_span() {
    global();
    let memory = MemorySink::new();
    let shared: SharedSink = Arc::new(memory.clone());
    {
        let _scope = LogScope::enter(id("run-scoped"), shared, Topic::TRADING);
        tracing::info!(target: "scope_test", "sync engine line");
        // A span naming another run is more specific than the thread's scope.
        tracing::info_span!("other", backtest_id = "run-other")
            .in_scope(|| tracing::info!(target: "scope_test", "other run line"));
    }
    let logs = entries(&memory);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].0, Topic::TRADING);
    assert_eq!(logs[0].1.backtest_id, Some(id("run-scoped")));
    let other = hub_entries(|e| e.message == "other run line");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].0, Topic::BACKTEST);
    assert_eq!(other[0].1.backtest_id, Some(id("run-other")));
}

#[test]
fn a_sink_that_traces_while_publishing_does_not_recurse() {
    let g = global();
    let before = g.stats.get();
    let memory = MemorySink::new();
    let inner = memory.clone();
    let chatty: SharedSink = Arc::new(sink_fn(move |envelope: &Envelope| {
        tracing::warn!(target: "chatty_tracing_sink", "publishing");
        inner.publish(envelope)
    }));
    let _route = g
        .routes
        .register(id("run-chatty-tracing"), chatty, Topic::BACKTEST);
    let span = tracing::info_span!("backtest", backtest_id = "run-chatty-tracing");
    span.in_scope(|| {
        for n in 0..50 {
            tracing::info!(target: "chatty_tracing_test", "line {n}");
        }
    });
    assert_eq!(entries(&memory).len(), 50);
    assert!(hub_entries(|e| e.logger_name == "chatty_tracing_sink").is_empty());
    let after = g.stats.get();
    assert!(
        after.reentrant >= before.reentrant + 50,
        "{before:?} {after:?}"
    );
}
