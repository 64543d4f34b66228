//! The log bridge: field mapping, correlation, composition, never-harm guarantees.
//!
//! The `log` crate allows one global logger per process, so this test binary installs
//! one bridge once ([`global`]) and every test that logs through the macros uses its
//! own targets or scopes; the other tests call a bridge value directly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use backtest_stream::log_bridge::{self, BridgeHandle, InstallError, NoInner};
use backtest_stream::log_bridge::{LogBridge, LogScope, RunLogger, setup_backtest_logging};
use backtest_stream::sink::{MemorySink, ProgressSink, SharedSink, SinkError, sink_fn};
use backtest_stream::streamer::{ProgressStreamer, RunInfo};
use backtest_stream::wire::{BacktestId, Envelope, Event, LogEntry, Topic};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// An inner logger that records what it is given (standing in for `env_logger`).
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<(Level, String, String)>>,
}

impl Recorder {
    fn saw(&self, target: &str, message: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, t, m)| t == target && m == message)
    }
}

impl Log for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Debug
    }
    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.lines.lock().unwrap().push((
                record.level(),
                record.target().to_owned(),
                record.args().to_string(),
            ));
        }
    }
    fn flush(&self) {}
}

/// What the console logger (a real `env_logger`) wrote, one `LEVEL target message` line
/// per record.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Console {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether the console logger wrote `message` for `target` at `level`.
fn console_saw(level: &str, target: &str, message: &str) -> bool {
    let text = String::from_utf8(global().console.0.lock().unwrap().clone()).unwrap();
    let line = format!("{level} {target} {message}");
    text.lines().any(|l| l == line)
}

struct Global {
    handle: BridgeHandle,
    default_sink: MemorySink,
    console: Console,
}

/// The one bridge installed in this process: level `info`, target `quiet_dep` at
/// `warn`, wrapping an `env_logger` (which writes `debug` and up to [`Console`]), with
/// a recorded default sink.
fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let default_sink = MemorySink::new();
        let console = Console::default();
        let env_logger = env_logger::Builder::new()
            .filter_level(LevelFilter::Debug)
            .format(|buf, record| {
                use std::io::Write;
                writeln!(
                    buf,
                    "{} {} {}",
                    record.level(),
                    record.target(),
                    record.args()
                )
            })
            .target(env_logger::Target::Pipe(Box::new(console.clone())))
            .build();
        let env_level = env_logger.filter();
        let handle = LogBridge::builder()
            .level(LevelFilter::Info)
            .target_level("quiet_dep", LevelFilter::Warn)
            .default_sink(default_sink.clone())
            .wrap(env_logger, env_level)
            .build()
            .try_init()
            .expect("first installation in this process");
        Global {
            handle,
            default_sink,
            console,
        }
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

/// The default sink's entries whose logger name (the target, outside runs) is `target`.
fn default_entries_for(target: &str) -> Vec<LogEntry> {
    entries(&global().default_sink)
        .into_iter()
        .filter(|(_, e)| e.logger_name == target || e.message.contains(target))
        .map(|(_, e)| e)
        .collect()
}

fn id(text: &str) -> BacktestId {
    BacktestId::new(text).unwrap()
}

fn shared(sink: &MemorySink) -> SharedSink {
    Arc::new(sink.clone())
}

#[test]
fn field_mapping_for_every_level() {
    let memory = MemorySink::new();
    let bridge = LogBridge::builder()
        .level(LevelFilter::Trace)
        .default_sink(memory.clone())
        .build();
    let run = id("run-fields");
    let _scope = LogScope::enter(run.clone(), shared(&memory), Topic::BACKTEST);
    let levels = [
        (Level::Trace, "TRACE"),
        (Level::Debug, "DEBUG"),
        (Level::Info, "INFO"),
        (Level::Warn, "WARNING"),
        (Level::Error, "ERROR"),
    ];
    let kvs: &[(&str, log::kv::Value<'_>)] = &[
        ("function", log::kv::Value::from("execute_trade")),
        ("lots", log::kv::Value::from(0.1)),
    ];
    for (n, (level, _)) in levels.iter().enumerate() {
        bridge.log(
            &Record::builder()
                .level(*level)
                .target("my_app::engine")
                .module_path(Some("my_app::engine::mode_runner"))
                .line(Some(245 + n as u32))
                .key_values(&kvs)
                .args(format_args!("Trade executed: BUY {} lots EURUSD", n))
                .build(),
        );
    }
    let got = entries(&memory);
    assert_eq!(got.len(), levels.len());
    for (n, ((topic, entry), (_, name))) in got.iter().zip(levels).enumerate() {
        assert_eq!(topic, &Topic::BACKTEST);
        assert_eq!(entry.level.as_str(), name);
        assert_eq!(entry.backtest_id.as_ref(), Some(&run));
        assert_eq!(
            entry.message,
            format!("Trade executed: BUY {n} lots EURUSD lots=0.1")
        );
        assert_eq!(entry.module, "mode_runner");
        assert_eq!(entry.function, "execute_trade");
        assert_eq!(entry.line, 245 + n as u32);
        assert_eq!(entry.logger_name, "backtest.run-fields");
        // The wire form: exactly the seed's fields, in its order.
        let json = Event::LogEntry(entry.clone()).to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&str> = value["data"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "backtest_id",
            "timestamp",
            "level",
            "message",
            "module",
            "function",
            "line",
            "logger_name",
        ];
        expected.sort_unstable();
        assert_eq!(
            keys, expected,
            "serde_json sorts keys without preserve_order"
        );
        assert_eq!(value["data"]["level"], name);
        assert_eq!(value["data"]["line"], 245 + n as u64);
    }
}

#[test]
fn unknown_module_line_and_function_have_documented_defaults() {
    let memory = MemorySink::new();
    let bridge = LogBridge::builder().default_sink(memory.clone()).build();
    bridge.log(
        &Record::builder()
            .level(Level::Info)
            .target("plain_target")
            .args(format_args!("no location"))
            .build(),
    );
    let (topic, entry) = entries(&memory).pop().unwrap();
    assert_eq!(topic, Topic::LOGS);
    assert_eq!(entry.backtest_id, None);
    assert_eq!(entry.module, "plain_target", "falls back to the target");
    assert_eq!(entry.function, "");
    assert_eq!(entry.line, 0);
    assert_eq!(entry.logger_name, "plain_target");
    assert!(
        Event::LogEntry(entry)
            .to_json()
            .contains(r#""backtest_id":null"#)
    );
}

#[test]
fn explicit_backtest_id_key_value_wins_over_the_scope() {
    let scope_sink = MemorySink::new();
    let default_sink = MemorySink::new();
    let bridge = LogBridge::builder()
        .default_sink(default_sink.clone())
        .build();
    let explicit: &[(&str, &str)] = &[("backtest_id", "run-explicit")];
    let log_with_kv = |message: &str| {
        bridge.log(
            &Record::builder()
                .level(Level::Info)
                .target("t")
                .key_values(&explicit)
                .args(format_args!("{message}"))
                .build(),
        )
    };
    {
        let _scope = LogScope::enter(id("run-scope"), shared(&scope_sink), Topic::BACKTEST);
        log_with_kv("inside");
    }
    log_with_kv("outside");
    // An invalid id is kept in the message and does not change the record's id.
    let invalid: &[(&str, &str)] = &[("backtest_id", "")];
    {
        let _scope = LogScope::enter(id("run-scope"), shared(&scope_sink), Topic::BACKTEST);
        bridge.log(
            &Record::builder()
                .level(Level::Info)
                .key_values(&invalid)
                .args(format_args!("bad id"))
                .build(),
        );
    }

    let inside = entries(&scope_sink);
    assert_eq!(inside.len(), 2);
    assert_eq!(inside[0].1.backtest_id, Some(id("run-explicit")));
    assert_eq!(inside[0].1.logger_name, "backtest.run-explicit");
    assert_eq!(inside[0].0, Topic::BACKTEST, "routed by the scope");
    assert_eq!(inside[1].1.backtest_id, Some(id("run-scope")));
    assert_eq!(inside[1].1.message, "bad id backtest_id=");

    let outside = entries(&default_sink);
    assert_eq!(outside.len(), 1);
    assert_eq!(outside[0].0, Topic::LOGS);
    assert_eq!(outside[0].1.backtest_id, Some(id("run-explicit")));
    assert_eq!(outside[0].1.message, "outside");
}

#[test]
fn explicit_backtest_id_key_value_through_the_macros() {
    global();
    let run = id("run-kv-macro");
    log::info!(target: "kv_macro_test", backtest_id = run, function = "on_bar"; "filled {}", 3);
    let got = default_entries_for("backtest.run-kv-macro");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].backtest_id, Some(run));
    assert_eq!(got[0].message, "filled 3");
    assert_eq!(got[0].function, "on_bar");
    assert_eq!(got[0].module, "log_bridge", "this test file's module");
    assert!(got[0].line > 0);
}

#[test]
fn records_outside_a_run_stream_on_topic_logs_with_a_null_id() {
    global();
    log::warn!(target: "outside_run_test", "no run here");
    let got: Vec<(Topic, LogEntry)> = entries(&global().default_sink)
        .into_iter()
        .filter(|(_, e)| e.logger_name == "outside_run_test")
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Topic::LOGS);
    assert_eq!(got[0].1.backtest_id, None);
    assert_eq!(got[0].1.level.as_str(), "WARNING");
    assert_eq!(got[0].1.message, "no run here");
}

#[test]
fn records_outside_a_run_without_a_default_sink_are_counted() {
    let bridge = LogBridge::builder().build();
    bridge.log(&Record::builder().args(format_args!("nowhere")).build());
    assert_eq!(bridge.stats().unrouted, 1);
    assert_eq!(bridge.stats().undelivered(), 1);
    assert_eq!(bridge.stats().delivered, 0);
}

#[test]
fn two_concurrent_runs_on_two_threads_each_get_only_their_lines() {
    global();
    const LINES: usize = 300;
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let memory = MemorySink::new();
                let run = ProgressStreamer::new(memory.clone())
                    .with_id(id(&format!("run-{name}")))
                    .start(RunInfo::new(name, "EURUSD"), LINES as u64);
                let scope = LogScope::enter_run(&run);
                barrier.wait();
                for n in 0..LINES {
                    log::info!(target: "concurrency_test", "{name} line {n}");
                    if n % 50 == 0 {
                        std::thread::yield_now();
                    }
                }
                drop(scope);
                log::info!(target: "concurrency_test_after", "{name} after the scope");
                let id = run.id().clone();
                run.complete(Default::default());
                (name, id, memory)
            })
        })
        .collect();
    for worker in workers {
        let (name, run_id, memory) = worker.join().unwrap();
        let logs = entries(&memory);
        assert_eq!(logs.len(), LINES, "{name}: one entry per line, no more");
        for (n, (topic, entry)) in logs.iter().enumerate() {
            assert_eq!(topic, &Topic::BACKTEST);
            assert_eq!(entry.backtest_id.as_ref(), Some(&run_id));
            assert_eq!(entry.message, format!("{name} line {n}"));
            assert_eq!(entry.logger_name, format!("backtest.{run_id}"));
        }
        // After the scope, the thread's records are no longer the run's.
        let after = default_entries_for("concurrency_test_after");
        assert!(
            after
                .iter()
                .any(|e| e.message == format!("{name} after the scope") && e.backtest_id.is_none())
        );
    }
    assert!(
        default_entries_for("concurrency_test")
            .iter()
            .all(|e| e.logger_name != "concurrency_test"),
        "no scoped line leaked to the default sink"
    );
}

#[test]
fn nested_scopes_restore_the_outer_one() {
    let outer_sink = MemorySink::new();
    let inner_sink = MemorySink::new();
    let bridge = LogBridge::builder().build();
    let say = |text: &str| bridge.log(&Record::builder().args(format_args!("{text}")).build());
    let outer = LogScope::enter(id("outer"), shared(&outer_sink), Topic::BACKTEST);
    say("one");
    {
        let _inner = LogScope::enter(id("inner"), shared(&inner_sink), Topic::TRADING);
        assert_eq!(LogScope::current_id(), Some(id("inner")));
        say("two");
    }
    say("three");
    drop(outer);
    say("four"); // no scope, no default sink
    let outer_msgs: Vec<String> = entries(&outer_sink)
        .into_iter()
        .map(|(_, e)| e.message)
        .collect();
    assert_eq!(outer_msgs, ["one", "three"]);
    let inner = entries(&inner_sink);
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].0, Topic::TRADING);
    assert_eq!(bridge.stats().unrouted, 1);
}

#[test]
fn composition_with_an_inner_logger_both_see_the_record() {
    let g = global();
    log::info!(target: "composition_test", "to both");
    // The bridge streams `info`; the inner logger also writes `debug`: it still gets it.
    log::debug!(target: "composition_test", "console only");
    log::trace!(target: "composition_test", "nobody");
    // `quiet_dep` streams only `warn` and up; the inner logger's own filter is separate.
    log::info!(target: "quiet_dep::io", "console only too");
    log::warn!(target: "quiet_dep::io", "quiet dep warning");

    assert!(console_saw("INFO", "composition_test", "to both"));
    assert!(console_saw("DEBUG", "composition_test", "console only"));
    assert!(console_saw("INFO", "quiet_dep::io", "console only too"));
    assert!(console_saw("WARN", "quiet_dep::io", "quiet dep warning"));
    assert!(!console_saw("TRACE", "composition_test", "nobody"));
    let streamed: Vec<String> = entries(&g.default_sink)
        .into_iter()
        .filter(|(_, e)| {
            e.logger_name.starts_with("composition_test") || e.logger_name.starts_with("quiet_dep")
        })
        .map(|(_, e)| e.message)
        .collect();
    assert_eq!(streamed, ["to both", "quiet dep warning"]);
    assert_eq!(
        log::max_level(),
        LevelFilter::Debug,
        "covers bridge and inner"
    );
    assert!(log::logger().enabled(&Metadata::builder().level(Level::Debug).target("x").build()));
    assert!(!log::logger().enabled(&Metadata::builder().level(Level::Trace).target("x").build()));
}

#[test]
fn installing_twice_is_a_typed_error() {
    global();
    let again = LogBridge::builder().build().try_init();
    assert_eq!(again.unwrap_err(), InstallError::AlreadyInstalled);
    assert_eq!(
        log_bridge::init(MemorySink::new()).unwrap_err(),
        InstallError::AlreadyInstalled
    );
    assert!(log_bridge::installed().is_some());
}

/// A sink that logs while publishing (as a WebSocket library might) must not hang,
/// recurse without bound or overflow the stack.
#[test]
fn a_sink_that_logs_while_publishing_does_not_recurse() {
    let g = global();
    let memory = MemorySink::new();
    let inner = memory.clone();
    let chatty: SharedSink = Arc::new(sink_fn(move |envelope: &Envelope| {
        log::warn!(target: "chatty_sink", "publishing {}", envelope.event.kind());
        inner.publish(envelope)
    }));
    let before = g.handle.stats();
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let worker = std::thread::spawn(move || {
        let _scope = LogScope::enter(id("run-chatty"), chatty, Topic::BACKTEST);
        for n in 0..100 {
            log::info!(target: "chatty_test", "line {n}");
        }
        flag.store(true, Ordering::SeqCst);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "logging from a sink hung");
        std::thread::sleep(Duration::from_millis(5));
    }
    worker.join().unwrap();
    let logs = entries(&memory);
    assert_eq!(
        logs.len(),
        100,
        "exactly the outer lines, not the sink's own"
    );
    assert!(
        logs.iter()
            .all(|(_, e)| e.logger_name == "backtest.run-chatty")
    );
    let after = g.handle.stats();
    assert!(
        after.reentrant >= before.reentrant + 100,
        "{before:?} {after:?}"
    );
    // The inner (console) logger still got the sink's records.
    assert!(console_saw("WARN", "chatty_sink", "publishing log_entry"));
}

#[test]
fn a_failing_or_panicking_sink_is_counted_and_never_reaches_the_caller() {
    let bridge = LogBridge::builder().build();
    let say = || bridge.log(&Record::builder().args(format_args!("x")).build());
    {
        let failing: SharedSink = Arc::new(sink_fn(|_| Err(SinkError::Closed)));
        let _scope = LogScope::enter(id("run-fail"), failing, Topic::BACKTEST);
        say();
    }
    {
        let panicking: SharedSink = Arc::new(sink_fn(|_| panic!("sink bug")));
        let _scope = LogScope::enter(id("run-panic"), panicking, Topic::BACKTEST);
        say();
        // The thread's guard was released: the next record is published again.
        say();
    }
    let stats = bridge.stats();
    assert_eq!(stats.failed, 3);
    assert_eq!(stats.reentrant, 0);
}

#[test]
fn suppressed_threads_do_not_stream_but_still_reach_the_inner_logger() {
    let memory = MemorySink::new();
    let inner = Recorder::default();
    let bridge = LogBridge::builder()
        .default_sink(memory.clone())
        .wrap(&inner, LevelFilter::Debug)
        .build();
    let say = |text: &str| {
        bridge.log(
            &Record::builder()
                .level(Level::Info)
                .target("worker")
                .args(format_args!("{text}"))
                .build(),
        )
    };
    {
        let _quiet = log_bridge::suppress();
        say("quiet");
    }
    say("loud");
    let streamed: Vec<String> = entries(&memory)
        .into_iter()
        .map(|(_, e)| e.message)
        .collect();
    assert_eq!(streamed, ["loud"]);
    assert!(inner.saw("worker", "quiet"));
    assert_eq!(bridge.stats().suppressed, 1);
}

#[test]
fn run_logger_and_setup_backtest_logging_correlate_with_the_streamer() {
    let memory = MemorySink::new();
    let logging = setup_backtest_logging(memory.clone(), Some(id("run-setup")));
    let run = logging.streamer.start(RunInfo::new("spiced", "EURUSD"), 10);
    logging.logger.info("Trade executed");
    logging.logger.warn(format_args!("margin at {}%", 80));
    // The logger can also be used as a `log::Log` value.
    logging.logger.log(
        &Record::builder()
            .level(Level::Error)
            .module_path(Some("engine::fills"))
            .args(format_args!("fill rejected"))
            .build(),
    );
    let quiet = RunLogger::for_run(&run).with_level(LevelFilter::Warn);
    quiet.info("dropped by the level");
    run.complete(Default::default());

    let logs = entries(&memory);
    let summary: Vec<(&str, &str, &str)> = logs
        .iter()
        .map(|(_, e)| (e.level.as_str(), e.message.as_str(), e.module.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("INFO", "Trade executed", "log_bridge"),
            ("WARNING", "margin at 80%", "log_bridge"),
            ("ERROR", "fill rejected", "fills"),
        ]
    );
    for (topic, entry) in &logs {
        assert_eq!(topic, &Topic::BACKTEST);
        assert_eq!(entry.backtest_id, Some(id("run-setup")));
        assert_eq!(entry.logger_name, "backtest.run-setup");
    }
    assert_eq!(logging.logger.stats().delivered, 3);
    // Every event of the run (start, logs, complete) carries the same id.
    assert!(
        memory
            .events()
            .iter()
            .all(|e| e.backtest_id() == Some(&id("run-setup")))
    );
}

#[test]
fn the_run_logger_scope_routes_log_macros_to_the_run() {
    global();
    let memory = MemorySink::new();
    let logging = setup_backtest_logging(memory.clone(), Some(id("run-logger-scope")));
    {
        let _scope = logging.logger.scope();
        log::info!(target: "run_logger_scope_test", "via the macros");
    }
    // The macros also take the run logger directly, in or out of a scope.
    log::warn!(logger: logging.logger, function = "on_bar"; "direct {}", 1);
    let logs = entries(&memory);
    assert_eq!(logs.len(), 2);
    assert!(
        logs.iter()
            .all(|(_, e)| e.backtest_id == Some(id("run-logger-scope")))
    );
    assert_eq!(logs[1].1.message, "direct 1");
    assert_eq!(logs[1].1.function, "on_bar");
    assert_eq!(logs[1].1.level.as_str(), "WARNING");
    // A record given to the run logger directly does not go through the global bridge.
    assert!(!console_saw("WARN", "log_bridge", "direct 1"));
}

#[test]
fn a_bridge_value_without_inner_logger_is_usable_directly() {
    let bridge: LogBridge<NoInner> = LogBridge::builder().level(LevelFilter::Warn).build();
    let meta = |level| Metadata::builder().level(level).target("t").build();
    assert!(bridge.enabled(&meta(Level::Warn)));
    assert!(!bridge.enabled(&meta(Level::Info)));
    assert_eq!(bridge.max_level(), LevelFilter::Warn);
    let bad = LogBridge::builder()
        .parse_filters("info,x=shouty")
        .unwrap_err();
    assert_eq!(bad.item, 2);
}

/// A sink that hands events to a worker thread (as a network sink does), whose code
/// logs per event: with `suppress()` on the worker, those lines reach the console only,
/// so the stream cannot feed itself.
#[test]
fn a_sink_worker_thread_that_logs_is_kept_out_of_the_stream_with_suppress() {
    let g = global();
    let (tx, rx) = backtest_stream::sink::channel(64);
    let delivered = MemorySink::new();
    let out = delivered.clone();
    let worker = std::thread::spawn(move || {
        let _quiet = log_bridge::suppress();
        for envelope in rx.iter() {
            log::info!(target: "sink_worker_test", "forwarding {}", envelope.event.kind());
            let _ = out.publish(&envelope);
        }
    });
    let before = g.handle.stats();
    {
        let _scope = LogScope::enter(id("run-worker"), Arc::new(tx), Topic::BACKTEST);
        for n in 0..20 {
            log::info!(target: "sink_worker_test_main", "line {n}");
        }
    } // the scope held the only sender: the worker's loop ends
    worker.join().unwrap();
    let logs = entries(&delivered);
    assert_eq!(logs.len(), 20);
    assert!(
        logs.iter()
            .all(|(_, e)| e.backtest_id == Some(id("run-worker")))
    );
    assert!(
        default_entries_for("sink_worker_test")
            .iter()
            .all(|e| e.logger_name != "sink_worker_test"),
        "the worker's own lines were not streamed"
    );
    assert!(g.handle.stats().suppressed >= before.suppressed + 20);
    assert!(console_saw(
        "INFO",
        "sink_worker_test",
        "forwarding log_entry"
    ));
}
