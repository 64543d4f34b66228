//! The wire format: every event has exactly the seed's keys, key order and JSON types.

use backtest_stream::wire::{
    BacktestComplete, BacktestError, BacktestId, BacktestProgress, BacktestStart, Envelope, Event,
    EventKind, LogEntry, LogLevel, Results, Side, Timestamp, Topic, Trade,
};
use serde_json::Value;

fn fixture(kind: EventKind) -> &'static str {
    match kind {
        EventKind::BacktestStart => include_str!("fixtures/seed_backtest_start.json"),
        EventKind::BacktestProgress => include_str!("fixtures/seed_backtest_progress.json"),
        EventKind::LogEntry => include_str!("fixtures/seed_log_entry.json"),
        EventKind::BacktestComplete => include_str!("fixtures/seed_backtest_complete.json"),
        EventKind::BacktestError => include_str!("fixtures/seed_backtest_error.json"),
    }
}

fn ts() -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_123).unwrap()
}

fn id() -> BacktestId {
    BacktestId::new("run-42").unwrap()
}

/// One event of each kind, with values unlike the seed's.
fn sample(kind: EventKind) -> Event {
    match kind {
        EventKind::BacktestStart => Event::BacktestStart(BacktestStart {
            backtest_id: id(),
            variant: "vanilla".into(),
            symbol: "BTCUSD".into(),
            timeframe: "M5".into(),
            start_date: "2022-01-01".into(),
            end_date: "2022-02-01".into(),
            timestamp: ts(),
        }),
        EventKind::BacktestProgress => Event::BacktestProgress(BacktestProgress {
            backtest_id: id(),
            progress: 12.5,
            status: "Processing bar 1/8".into(),
            bars_processed: 1,
            total_bars: 8,
            current_date: "2022-01-01".into(),
            trades_count: 0,
            current_pnl: -3.25,
            timestamp: ts(),
        }),
        EventKind::LogEntry => Event::LogEntry(LogEntry {
            backtest_id: Some(id()),
            timestamp: ts(),
            level: LogLevel::Warning,
            message: "careful \"quoted\"\nnewline".into(),
            module: "engine".into(),
            function: "on_bar".into(),
            line: 12,
            logger_name: "backtest.run-42".into(),
        }),
        EventKind::BacktestComplete => Event::BacktestComplete(BacktestComplete {
            backtest_id: id(),
            final_balance: 9_876.5,
            total_trades: 3,
            win_rate: 33.3,
            sharpe_ratio: -0.4,
            drawdown: 2.0,
            return_pct: -1.2,
            duration_seconds: 0.25,
            timestamp: ts(),
            results: serde_json::json!({"trades": [], "fast": 10})
                .as_object()
                .unwrap()
                .clone()
                .into(),
        }),
        EventKind::BacktestError => Event::BacktestError(BacktestError {
            backtest_id: id(),
            error: "boom".into(),
            error_details: "details".into(),
            timestamp: ts(),
        }),
    }
}

/// The JSON type of a value; integers and non-integers are told apart, as Python does.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `(key path, type)` of every key, recursively through objects.
fn shape(v: &Value, prefix: &str, out: &mut Vec<(String, &'static str)>) {
    if let Value::Object(map) = v {
        for (key, value) in map {
            let path = format!("{prefix}{key}");
            out.push((path.clone(), json_type(value)));
            // `results` is open: only its type is part of the contract.
            if key != "results" {
                shape(value, &format!("{path}."), out);
            }
        }
    }
    out.sort();
}

fn shape_of(v: &Value) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    shape(v, "", &mut out);
    out
}

/// Keys of an object in the order they appear in the text.
fn key_order(text: &str, keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut found: Vec<(usize, String)> = keys
        .into_iter()
        .map(|k| (text.find(&format!("\"{k}\":")).expect("key present"), k))
        .collect();
    found.sort();
    found.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn every_event_has_the_seed_keys_and_types() {
    for kind in EventKind::ALL {
        let seed: Value = serde_json::from_str(fixture(kind)).unwrap();
        let ours: Value = serde_json::from_str(&sample(kind).to_json()).unwrap();
        assert_eq!(shape_of(&ours), shape_of(&seed), "{kind}");
        assert_eq!(seed["type"], kind.as_str());
    }
}

#[test]
fn every_event_keeps_the_seed_key_order() {
    for kind in EventKind::ALL {
        let seed_text = fixture(kind);
        let seed: Value = serde_json::from_str(seed_text).unwrap();
        let keys: Vec<String> = seed["data"].as_object().unwrap().keys().cloned().collect();
        let ours = sample(kind).to_json();
        assert_eq!(
            key_order(&ours, keys.clone()),
            key_order(seed_text, keys),
            "{kind}"
        );
        assert!(
            ours.starts_with(&format!("{{\"type\":\"{kind}\",\"data\":{{")),
            "{ours}"
        );
    }
}

#[test]
fn every_event_round_trips() {
    for kind in EventKind::ALL {
        let event = sample(kind);
        let text = event.to_json();
        assert_eq!(Event::from_json(&text).unwrap(), event, "{kind}");
        assert_eq!(event.kind(), kind);
        assert_eq!(event.backtest_id().unwrap(), "run-42");
        assert_eq!(event.timestamp(), ts());
    }
}

#[test]
fn the_seed_samples_are_read_and_rewritten_with_the_same_shape() {
    for kind in EventKind::ALL {
        let event = Event::from_json(fixture(kind)).unwrap();
        assert_eq!(event.kind(), kind);
        let seed: Value = serde_json::from_str(fixture(kind)).unwrap();
        let again: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(shape_of(&again), shape_of(&seed), "{kind}");
        // Values survive too (the seed's timestamps already have milliseconds and Z).
        assert_eq!(again, seed, "{kind}");
    }
}

#[test]
fn timestamps_are_utc_rfc3339_with_milliseconds_and_z() {
    let event = sample(EventKind::BacktestError);
    let v: Value = serde_json::from_str(&event.to_json()).unwrap();
    assert_eq!(v["data"]["timestamp"], "2023-11-14T22:13:20.123Z");
    let now = Timestamp::now().to_string();
    let bytes = now.as_bytes();
    assert_eq!(bytes.len(), 24, "{now}");
    assert_eq!(
        (bytes[4], bytes[10], bytes[19], bytes[23]),
        (b'-', b'T', b'.', b'Z')
    );
}

#[test]
fn non_finite_numbers_are_null_and_read_back_as_nan() {
    let Event::BacktestComplete(mut complete) = sample(EventKind::BacktestComplete) else {
        unreachable!()
    };
    complete.win_rate = f64::NAN;
    complete.sharpe_ratio = f64::INFINITY;
    complete.drawdown = f64::NEG_INFINITY;
    let text = Event::BacktestComplete(complete).to_json();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"]["win_rate"], Value::Null);
    assert_eq!(v["data"]["sharpe_ratio"], Value::Null);
    assert_eq!(v["data"]["drawdown"], Value::Null);
    assert_eq!(v["data"]["final_balance"], 9_876.5);
    let Event::BacktestComplete(back) = Event::from_json(&text).unwrap() else {
        panic!("kind changed")
    };
    assert!(back.win_rate.is_nan() && back.sharpe_ratio.is_nan() && back.drawdown.is_nan());

    let Event::BacktestProgress(mut progress) = sample(EventKind::BacktestProgress) else {
        unreachable!()
    };
    progress.current_pnl = f64::NAN;
    let v: Value = serde_json::from_str(&Event::BacktestProgress(progress).to_json()).unwrap();
    assert_eq!(v["data"]["current_pnl"], Value::Null);
}

#[test]
fn custom_ids_and_id_validation() {
    let text = fixture(EventKind::BacktestStart).replace("uuid-string", "my-custom-id");
    let event = Event::from_json(&text).unwrap();
    assert_eq!(event.backtest_id().unwrap(), "my-custom-id");

    let empty = fixture(EventKind::BacktestStart).replace("\"uuid-string\"", "\"\"");
    let err = Event::from_json(&empty).unwrap_err();
    assert!(err.to_string().contains("backtest id is empty"), "{err}");

    let long = fixture(EventKind::BacktestError).replace("uuid-string", &"x".repeat(500));
    let err = Event::from_json(&long).unwrap_err();
    assert!(err.to_string().contains("500 bytes long"), "{err}");
}

#[test]
fn log_entries_outside_a_run_have_a_null_id_and_levels_use_the_seed_names() {
    let Event::LogEntry(mut entry) = sample(EventKind::LogEntry) else {
        unreachable!()
    };
    entry.backtest_id = None;
    let mut names = Vec::new();
    for level in [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
    ] {
        entry.level = level;
        let v: Value = serde_json::from_str(&Event::LogEntry(entry.clone()).to_json()).unwrap();
        assert_eq!(v["data"]["backtest_id"], Value::Null);
        names.push(v["data"]["level"].as_str().unwrap().to_owned());
    }
    assert_eq!(names, ["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"]);
    assert_eq!(LogLevel::from(log::Level::Warn), LogLevel::Warning);
}

#[test]
fn frames_with_topic_and_seq_are_read_as_events_and_envelopes() {
    let event = sample(EventKind::BacktestProgress);
    let mut text = event.to_json();
    text.pop();
    text.push_str(r#","topic":"trading","seq":17}"#);
    assert_eq!(Event::from_json(&text).unwrap(), event);
    let envelope = Envelope::from_json(&text).unwrap();
    assert_eq!(envelope.topic, Topic::TRADING);
    assert_eq!(*envelope.event, event);
}

#[test]
fn malformed_events_are_errors_not_panics() {
    for bad in [
        "",
        "[]",
        "{}",
        r#"{"type":"backtest_start"}"#,
        r#"{"type":"nope","data":{}}"#,
        r#"{"type":"backtest_error","data":{"backtest_id":"a","error":1,"error_details":"","timestamp":"2024-01-15T10:30:45.000Z"}}"#,
        r#"{"type":"backtest_error","data":{"backtest_id":"a","error":"","error_details":"","timestamp":"yesterday"}}"#,
    ] {
        assert!(Event::from_json(bad).is_err(), "{bad}");
    }
}

/// Strings that need every kind of escape serde_json does, and some that need none.
const TRICKY: [&str; 8] = [
    "",
    "plain",
    "quote \" and backslash \\ in a string longer than sixteen bytes",
    "controls \u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f} and DEL \u{7f}",
    "unicode é € 😀 \u{2028}\u{2029} \u{10ffff}",
    "0123456789abcde\"",
    "0123456789abcdef\\",
    "</script>",
];

fn tricky_events(text: &str) -> Vec<Event> {
    let run = BacktestId::new(text).unwrap_or_else(|_| id());
    vec![
        Event::BacktestStart(BacktestStart {
            backtest_id: run.clone(),
            variant: text.into(),
            symbol: text.into(),
            timeframe: text.into(),
            start_date: text.into(),
            end_date: text.into(),
            timestamp: ts(),
        }),
        Event::BacktestProgress(BacktestProgress {
            backtest_id: run.clone(),
            progress: 33.333333333333336,
            status: text.into(),
            bars_processed: u64::MAX,
            total_bars: 0,
            current_date: text.into(),
            trades_count: 7,
            current_pnl: -1.5e-7,
            timestamp: Timestamp::from_unix_millis(-62_135_596_800_000).unwrap(),
        }),
        Event::BacktestProgress(BacktestProgress {
            backtest_id: run.clone(),
            progress: f64::NAN,
            status: text.into(),
            bars_processed: 1,
            total_bars: 2,
            current_date: String::new(),
            trades_count: 0,
            current_pnl: f64::NEG_INFINITY,
            timestamp: Timestamp::from_unix_millis(253_402_300_799_999).unwrap(),
        }),
        Event::LogEntry(LogEntry {
            backtest_id: Some(run.clone()),
            timestamp: ts(),
            level: LogLevel::Warning,
            message: text.into(),
            module: text.into(),
            function: text.into(),
            line: u32::MAX,
            logger_name: text.into(),
        }),
        Event::LogEntry(LogEntry {
            backtest_id: None,
            timestamp: ts(),
            level: LogLevel::Trace,
            message: text.into(),
            module: String::new(),
            function: String::new(),
            line: 0,
            logger_name: text.into(),
        }),
        Event::BacktestComplete(BacktestComplete {
            backtest_id: run.clone(),
            final_balance: 10_000.123456789,
            total_trades: 3,
            win_rate: f64::NAN,
            sharpe_ratio: -0.0,
            drawdown: 1e-300,
            return_pct: f64::INFINITY,
            duration_seconds: 1e21,
            timestamp: ts(),
            results: serde_json::json!({
                text: text,
                "trades": [{"side": text, "pnl": -1.25, "n": null, "ok": true}],
                "nested": {"deep": [1, 2.5, "x"]},
            })
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into(),
        }),
        Event::BacktestComplete(BacktestComplete {
            backtest_id: run.clone(),
            final_balance: 1.0,
            total_trades: 3,
            win_rate: 50.0,
            sharpe_ratio: f64::NAN,
            drawdown: 0.0,
            return_pct: 0.0,
            duration_seconds: 0.001,
            timestamp: ts(),
            results: typed_results(text),
        }),
        Event::BacktestError(BacktestError {
            backtest_id: run,
            error: text.into(),
            error_details: text.into(),
            timestamp: ts(),
        }),
    ]
}

/// Results with a typed trade list (odd numbers included) and other keys, one of them a
/// `"trades"` field that the typed list hides.
fn typed_results(text: &str) -> Results {
    let trade = |side, size, entry_price, exit_price, pnl, closed_at_end| Trade {
        side,
        size,
        entry_time: Timestamp::from_unix_millis(-62_135_596_800_000).unwrap(),
        entry_price,
        exit_time: Timestamp::from_unix_millis(253_402_300_799_999).unwrap(),
        exit_price,
        pnl,
        closed_at_end,
    };
    let trades = vec![
        trade(Side::Long, 1.0, 179.13, 180.0, 0.87, false),
        trade(Side::Short, 0.1, -1e-300, 1e21, f64::NAN, true),
        trade(Side::Long, 1e300, 0.1 + 0.2, f64::INFINITY, -0.0, false),
    ];
    let mut results = Results::new();
    results.insert(text, text);
    results.insert("trades", "hidden by the typed list");
    results.set_trades(trades);
    results
        .fields_mut()
        .insert("trades".into(), "still hidden".into());
    results.insert("nested", serde_json::json!({"deep": [1, 2.5, "x"]}));
    results
}

#[test]
fn typed_trade_lists_are_written_as_json_objects_and_read_back_equal() {
    let results = typed_results("key");
    assert_eq!(results.len(), 3);
    assert!(results.get("trades").is_none());
    assert_eq!(results.get("key"), Some(&"key".into()));
    let text = serde_json::to_string(&results).unwrap();
    assert!(
        text.starts_with(r#"{"key":"key","nested":{"deep":[1,2.5,"x"]},"trades":[{"closed_at_end":false,"entry_price":179.13,"entry_time":"0001-01-01T00:00:00.000Z","exit_price":180.0,"exit_time":"9999-12-31T23:59:59.999Z","pnl":0.87,"side":"long","size":1.0},{"closed_at_end":true,"#),
        "{text}"
    );
    assert!(
        text.contains(r#""pnl":null,"side":"short","size":0.1}"#),
        "{text}"
    );
    assert!(
        text.ends_with(r#""pnl":-0.0,"side":"long","size":1e+300}]}"#),
        "{text}"
    );
    // Read back and written again: the same text.
    let again: Results = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), text);
    assert!(!text.contains("hidden"), "{text}");
    // The same object as JSON values.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value, results.to_value());
    assert_eq!(value["trades"].as_array().unwrap().len(), 3);
    assert_eq!(value["trades"][1]["side"], "short");
    assert_eq!(value["trades"][2]["exit_price"], serde_json::Value::Null);
    // Read back: plain JSON, equal to the typed form, trades readable as `Trade`s.
    let parsed: Results = serde_json::from_str(&text).unwrap();
    assert!(parsed.trades().is_none());
    assert_eq!(parsed, results);
    assert_eq!(results, parsed);
    let read = parsed.read_trades().unwrap().unwrap();
    assert_eq!(read[0], results.trades().unwrap()[0]);
    assert!(read[1].pnl.is_nan());
    // Infinity is written as null, read back as NaN.
    assert!(read[2].exit_price.is_nan());
    // A trade list of another shape is kept as it came, and reported as not `Trade`s.
    let other: Results = serde_json::from_str(r#"{"trades":[{"id":1}],"x":2}"#).unwrap();
    assert!(other.read_trades().unwrap().is_err());
    assert_eq!(other.get("trades").unwrap()[0]["id"], 1);
    assert!(Results::new().read_trades().is_none());
    // Inserting a "trades" key replaces the typed list; removing gives its JSON.
    let mut replaced = typed_results("k");
    let removed = replaced.remove("trades").unwrap();
    assert_eq!(removed, value["trades"]);
    assert!(replaced.trades().is_none());
    let mut replaced = typed_results("k");
    replaced.insert("trades", 5);
    assert!(replaced.trades().is_none());
    assert_eq!(serde_json::to_value(&replaced).unwrap()["trades"], 5);
}

#[test]
fn json_text_matches_serde_json_byte_for_byte() {
    let mut events: Vec<Event> = TRICKY.iter().flat_map(|t| tricky_events(t)).collect();
    events.extend(
        [
            EventKind::BacktestStart,
            EventKind::BacktestProgress,
            EventKind::LogEntry,
            EventKind::BacktestComplete,
            EventKind::BacktestError,
        ]
        .map(sample),
    );
    for level in [LogLevel::Debug, LogLevel::Info, LogLevel::Error] {
        if let Event::LogEntry(mut entry) = sample(EventKind::LogEntry) {
            entry.level = level;
            events.push(Event::LogEntry(entry));
        }
    }
    for event in events {
        let expected = serde_json::to_string(&event).unwrap();
        assert_eq!(event.to_json(), expected);
        let mut out = Vec::new();
        event.write_json(&mut out);
        assert_eq!(out, expected.as_bytes());
        // Appending after existing bytes keeps them.
        let mut out = b"prefix ".to_vec();
        event.write_json(&mut out);
        assert_eq!(out, format!("prefix {expected}").into_bytes());
        for topic in [
            Topic::BACKTEST,
            Topic::new("quote\"topic").unwrap_or(Topic::LOGS),
        ] {
            let envelope = Envelope::new(topic.clone(), event.clone());
            let topic_json = serde_json::to_string(topic.as_str()).unwrap();
            let with_topic = format!(
                "{},\"topic\":{topic_json}}}",
                &expected[..expected.len() - 1]
            );
            assert_eq!(envelope.to_json(), with_topic);
            let mut out = Vec::new();
            envelope.write_json(&mut out);
            assert_eq!(out, with_topic.as_bytes());
        }
    }
}
