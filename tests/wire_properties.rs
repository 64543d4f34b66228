//! Properties of the wire over random values: the hand-written writer of the hub's hot
//! path writes exactly serde_json's bytes for every event, envelope and frame (any text,
//! any number including NaN, infinities, -0.0 and subnormals, any timestamp, any results
//! object with or without a typed trade list), and every message reads back as itself.

use std::sync::Arc;

use backtest_stream::wire::{
    BacktestComplete, BacktestError, BacktestId, BacktestProgress, BacktestStart, BadRequest,
    ClientMessage, Confirmation, Envelope, ErrorCode, Event, EventFrame, LogEntry, LogLevel,
    Results, ServerMessage, Side, Subscribe, Timestamp, Topic, Trade, Unsubscribed,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any text, control characters, quotes, backslashes and astral planes included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z \"\\\\/\\n\\t\u{1}\u{7f}é€😀\u{2028}]{0,40}",
    ]
}

/// Text valid as an id or a topic: no control characters, 1 to `max` bytes.
fn name(max: usize) -> impl Strategy<Value = String> {
    any::<String>().prop_map(move |s| {
        let mut name: String = s.chars().filter(|c| !c.is_control()).collect();
        while name.len() > max {
            name.pop();
        }
        if name.is_empty() {
            "x".to_owned()
        } else {
            name
        }
    })
}

fn id() -> impl Strategy<Value = BacktestId> {
    name(BacktestId::MAX_LEN).prop_map(|s| BacktestId::new(s).expect("a valid id"))
}

fn topic() -> impl Strategy<Value = Topic> {
    name(Topic::MAX_LEN).prop_map(|s| Topic::new(s).expect("a valid topic"))
}

/// Any f64: NaN, infinities, -0.0, subnormals, and ordinary numbers.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(5e-324),
        -1e6..1e6f64,
    ]
}

/// Any time from year 0 to 9999, and some beyond.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        -62_167_219_200_000i64..253_402_300_800_000,
        -300_000_000_000_000i64..300_000_000_000_000,
    ]
    .prop_filter_map(
        "outside the time crate's range",
        Timestamp::from_unix_millis,
    )
}

fn trade() -> impl Strategy<Value = Trade> {
    (
        any::<bool>(),
        (number(), timestamp(), number(), timestamp()),
        (number(), any::<bool>(), number()),
    )
        .prop_map(
            |(
                closed_at_end,
                (entry_price, entry_time, exit_price, exit_time),
                (pnl, long, size),
            )| {
                Trade {
                    closed_at_end,
                    entry_price,
                    entry_time,
                    exit_price,
                    exit_time,
                    pnl,
                    side: if long { Side::Long } else { Side::Short },
                    size,
                }
            },
        )
}

/// Any JSON value (numbers finite: JSON has no others), a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn results() -> impl Strategy<Value = Results> {
    let keys = prop_oneof![text(), Just("trades".to_owned()), Just("zz".to_owned())];
    (
        prop::collection::btree_map(keys, json(), 0..5),
        prop::option::of(prop::collection::vec(trade(), 0..6)),
    )
        .prop_map(|(fields, trades)| {
            let mut results = Results::from(fields.into_iter().collect::<Map<String, Value>>());
            if let Some(trades) = trades {
                // A typed list hides a `trades` field of the same object.
                results.set_trades(trades);
            }
            results
        })
}

fn level() -> impl Strategy<Value = LogLevel> {
    prop_oneof![
        Just(LogLevel::Trace),
        Just(LogLevel::Debug),
        Just(LogLevel::Info),
        Just(LogLevel::Warning),
        Just(LogLevel::Error),
    ]
}

fn start() -> impl Strategy<Value = Event> {
    (id(), text(), text(), text(), text(), text(), timestamp()).prop_map(
        |(backtest_id, variant, symbol, timeframe, start_date, end_date, timestamp)| {
            Event::BacktestStart(BacktestStart {
                backtest_id,
                variant,
                symbol,
                timeframe,
                start_date,
                end_date,
                timestamp,
            })
        },
    )
}

fn progress() -> impl Strategy<Value = Event> {
    (
        id(),
        (number(), text(), any::<u64>(), any::<u64>()),
        (text(), any::<u64>(), number(), timestamp()),
    )
        .prop_map(
            |(
                backtest_id,
                (progress, status, bars_processed, total_bars),
                (current_date, trades_count, current_pnl, timestamp),
            )| {
                Event::BacktestProgress(BacktestProgress {
                    backtest_id,
                    progress,
                    status,
                    bars_processed,
                    total_bars,
                    current_date,
                    trades_count,
                    current_pnl,
                    timestamp,
                })
            },
        )
}

fn log_entry() -> impl Strategy<Value = Event> {
    (
        prop::option::of(id()),
        (timestamp(), level(), text()),
        (text(), text(), any::<u32>(), text()),
    )
        .prop_map(
            |(backtest_id, (timestamp, level, message), (module, function, line, logger_name))| {
                Event::LogEntry(LogEntry {
                    backtest_id,
                    timestamp,
                    level,
                    message,
                    module,
                    function,
                    line,
                    logger_name,
                })
            },
        )
}

fn complete() -> impl Strategy<Value = Event> {
    (
        id(),
        (number(), any::<u64>(), number(), number()),
        (number(), number(), number(), timestamp()),
        results(),
    )
        .prop_map(
            |(
                backtest_id,
                (final_balance, total_trades, win_rate, sharpe_ratio),
                (drawdown, return_pct, duration_seconds, timestamp),
                results,
            )| {
                Event::BacktestComplete(BacktestComplete {
                    backtest_id,
                    final_balance,
                    total_trades,
                    win_rate,
                    sharpe_ratio,
                    drawdown,
                    return_pct,
                    duration_seconds,
                    timestamp,
                    results,
                })
            },
        )
}

fn error() -> impl Strategy<Value = Event> {
    (id(), text(), text(), timestamp()).prop_map(
        |(backtest_id, error, error_details, timestamp)| {
            Event::BacktestError(BacktestError {
                backtest_id,
                error,
                error_details,
                timestamp,
            })
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![start(), progress(), log_entry(), complete(), error()]
}

fn hand(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    write(&mut out);
    String::from_utf8(out).expect("the writer writes UTF-8")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_hand_writer_writes_serdes_bytes(event in event(), topic in topic(), seq in any::<u64>()) {
        prop_assert_eq!(hand(|out| event.write_json(out)), serde_json::to_string(&event).unwrap());
        let envelope = Envelope::new(topic, event);
        prop_assert_eq!(hand(|out| envelope.write_json(out)), serde_json::to_string(&envelope).unwrap());
        let frame = EventFrame::new(envelope, seq);
        prop_assert_eq!(hand(|out| frame.write_json(out)), serde_json::to_string(&frame).unwrap());
    }

    #[test]
    fn every_frame_reads_back_and_writes_the_same_text(event in event(), topic in topic(), seq in any::<u64>()) {
        // Compared as text: a number that is not finite is written `null` and reads back
        // as NaN, which is not equal to itself.
        let text = EventFrame::new(Envelope::new(topic, Arc::new(event)), seq).to_json();
        let message = ServerMessage::from_json(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert!(matches!(message, ServerMessage::Event(_)), "{:?}", message);
        prop_assert_eq!(message.to_json(), text.clone());
        let envelope = Envelope::from_json(&text).unwrap();
        prop_assert_eq!(Event::from_json(&envelope.event.to_json()).unwrap().to_json(), envelope.event.to_json());
    }

    #[test]
    fn subscribes_read_back_as_themselves(
        topic in topic(),
        run in prop::option::of(id()),
        since in prop::option::of((any::<u64>(), prop::option::of(text()))),
        snapshot in any::<bool>(),
    ) {
        let subscribe = Subscribe {
            topic,
            backtest_id: run,
            since: since.as_ref().map(|(seq, _)| *seq),
            epoch: since.and_then(|(_, epoch)| epoch),
            snapshot,
        };
        let message = ClientMessage::from(subscribe);
        prop_assert_eq!(ClientMessage::parse(&message.to_json()), Ok(message.clone()));
        let via_serde: ClientMessage = serde_json::from_str(&message.to_json()).unwrap();
        prop_assert_eq!(via_serde, message);
    }

    #[test]
    fn any_json_a_client_sends_gets_an_answer_not_a_panic(value in json(), action in text()) {
        let _ = ClientMessage::parse(&value.to_string());
        let mut object = Map::new();
        object.insert("action".into(), Value::from(action));
        object.insert("topic".into(), value.clone());
        object.insert("since".into(), value.clone());
        object.insert("backtest_id".into(), value);
        let parsed = ClientMessage::parse(&Value::Object(object).to_string());
        if let Err(error) = parsed {
            // Every refusal says what is wrong, in words a person reads.
            prop_assert!(!error.to_string().is_empty());
            prop_assert!(!matches!(error, BadRequest::NotJson(_)));
        }
    }

    #[test]
    fn any_text_a_client_sends_gets_an_answer_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(error) = ClientMessage::parse(&text) {
            prop_assert!(!error.to_string().is_empty());
        }
        let _ = ServerMessage::from_json(&text);
    }

    #[test]
    fn replies_read_back_as_themselves(
        topic in topic(),
        run in prop::option::of(id()),
        epoch in prop::option::of(text()),
        seq in prop::option::of(any::<u64>()),
        recovered in prop::option::of(any::<bool>()),
        reason in text(),
        missed in any::<u64>(),
    ) {
        let replies = [
            ServerMessage::SubscriptionConfirmed(Confirmation { topic: topic.clone(), backtest_id: run, epoch, seq, recovered }),
            ServerMessage::Unsubscribed(Unsubscribed { topic: topic.clone() }),
            ServerMessage::Pong,
            ServerMessage::error(ErrorCode::BadRequest, reason.clone()),
            ServerMessage::error(ErrorCode::Forbidden, reason),
            ServerMessage::lagged(topic, missed),
        ];
        for reply in replies {
            prop_assert_eq!(ServerMessage::from_json(&reply.to_json()).unwrap(), reply);
        }
    }
}
