//! The RedisSink against a real `redis-server` (each test its own, on a free port):
//! events numbered in Redis, atomically across workers, trimmed, buffered while Redis is
//! away, losses counted and marked in the stream, terminal events never dropped
//! silently, a new epoch when Redis lost its data.
#![cfg(feature = "redis")]

mod broker_support;
mod server_support;

use std::time::Duration;

use backtest_stream::broker::{RedisSink, RedisSinkConfig};
use backtest_stream::sink::{ProgressSink, SinkError};
use backtest_stream::wire::{Envelope, Event, Topic};
use broker_support::{RedisServer, redis_server};
use redis::Commands;
use serde_json::Value;
use server_support::{complete, log, progress, start};

const WAIT: Duration = Duration::from_secs(10);

fn publish(sink: &RedisSink, topic: Topic, event: Event) {
    sink.publish(&Envelope::new(topic, event)).expect("publish");
}

/// The entries of a topic's stream: (id, field, value).
fn entries(server: &RedisServer, topic: &str) -> Vec<(String, String, String)> {
    let key = format!("backtest-stream:{{{topic}}}:stream");
    let reply: redis::streams::StreamRangeReply =
        server.connection().xrange_all(key).expect("xrange");
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let (field, value) = entry.map.into_iter().next().expect("one field");
            let value: String = redis::from_redis_value(value).expect("text");
            (entry.id, field, value)
        })
        .collect()
}

fn wait_for(check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    server.connection().get(key).expect("get")
}

#[test]
fn events_are_numbered_in_redis_per_topic_with_an_epoch() {
    let Some(server) = redis_server() else { return };
    let sink = RedisSink::connect(&server.url()).expect("sink");
    publish(&sink, Topic::BACKTEST, start("r1"));
    publish(&sink, Topic::LOGS, log(Some("r1"), "hello"));
    for bars in 1..=3 {
        publish(&sink, Topic::BACKTEST, progress("r1", bars));
    }
    publish(&sink, Topic::BACKTEST, complete("r1"));
    sink.flush_within(WAIT).expect("flushed");
    let backtest = entries(&server, "backtest");
    let ids: Vec<&str> = backtest.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, ["1-0", "2-0", "3-0", "4-0", "5-0"]);
    let first: Value = serde_json::from_str(&backtest[0].2).expect("JSON");
    assert_eq!(backtest[0].1, "e");
    assert_eq!(first["type"], "backtest_start");
    assert_eq!(backtest[4].2, complete("r1").to_json());
    assert_eq!(entries(&server, "logs")[0].0, "1-0");
    assert_eq!(
        get(&server, "backtest-stream:{backtest}:seq").as_deref(),
        Some("5")
    );
    let epoch = get(&server, "backtest-stream:{backtest}:epoch").expect("an epoch");
    assert_eq!(epoch.len(), 32, "{epoch}");
    let stats = sink.stats();
    assert_eq!((stats.accepted, stats.written, stats.failures), (6, 6, 0));
    assert!(stats.connected);
}

#[test]
fn two_workers_share_one_numbering() {
    let Some(server) = redis_server() else { return };
    let config = RedisSinkConfig::default().batch_size(7);
    let workers: Vec<RedisSink> = (0..2)
        .map(|_| RedisSink::connect_with_config(&server.url(), config.clone()).expect("sink"))
        .collect();
    std::thread::scope(|scope| {
        for (n, sink) in workers.iter().enumerate() {
            scope.spawn(move || {
                let run = format!("worker-{n}");
                for bars in 1..=500 {
                    publish(sink, Topic::BACKTEST, progress(&run, bars));
                }
            });
        }
    });
    for sink in &workers {
        sink.flush_within(WAIT).expect("flushed");
    }
    let ids: Vec<String> = entries(&server, "backtest")
        .into_iter()
        .map(|e| e.0)
        .collect();
    let expected: Vec<String> = (1..=1_000).map(|seq| format!("{seq}-0")).collect();
    assert_eq!(ids, expected, "every seq once, in order");
}

#[test]
fn streams_are_trimmed_to_about_their_length() {
    let Some(server) = redis_server() else { return };
    let config = RedisSinkConfig::default().max_len(100);
    let sink = RedisSink::connect_with_config(&server.url(), config).expect("sink");
    for bars in 1..=5_000 {
        publish(&sink, Topic::BACKTEST, progress("long", bars));
    }
    sink.flush_within(WAIT).expect("flushed");
    let kept = entries(&server, "backtest");
    assert!(kept.len() < 300, "{} entries kept", kept.len());
    assert_eq!(kept.last().map(|e| e.0.as_str()), Some("5000-0"));
}

#[test]
fn events_wait_while_redis_is_away_and_go_out_when_it_is_back() {
    let Some(mut server) = redis_server() else {
        return;
    };
    server.stop();
    let config = RedisSinkConfig::default().max_backoff(Duration::from_millis(200));
    let sink = RedisSink::connect_with_config(&server.url(), config).expect("sink");
    publish(&sink, Topic::BACKTEST, start("patient"));
    publish(&sink, Topic::BACKTEST, complete("patient"));
    std::thread::sleep(Duration::from_millis(500));
    let stats = sink.stats();
    assert!(!stats.connected && stats.failures > 0, "{stats:?}");
    assert!(stats.last_error.is_some(), "{stats:?}");
    server.restart();
    sink.flush_within(WAIT).expect("written once Redis is back");
    assert_eq!(entries(&server, "backtest").len(), 2);
    assert!(sink.stats().connected);
}

#[test]
fn a_full_queue_drops_progress_first_marks_the_loss_and_keeps_the_terminal_event() {
    let Some(mut server) = redis_server() else {
        return;
    };
    server.stop();
    // Batches of one: the writer holds one event while Redis is away, the queue the rest.
    let config = RedisSinkConfig::default()
        .queue_capacity(16)
        .terminal_reserve(0)
        .batch_size(1)
        .terminal_wait(Duration::from_secs(20))
        .max_backoff(Duration::from_millis(100));
    let sink = RedisSink::connect_with_config(&server.url(), config).expect("sink");
    publish(&sink, Topic::BACKTEST, start("flood"));
    wait_for(|| sink.stats().failures > 0);
    let refused = (1..=100)
        .filter(|bars| {
            let envelope = Envelope::new(Topic::BACKTEST, progress("flood", *bars));
            matches!(sink.publish(&envelope), Err(SinkError::Full { .. }))
        })
        .count();
    // Progress gives way at three quarters of the queue: 12 places.
    assert_eq!(refused, 88);
    for n in 0..4 {
        publish(
            &sink,
            Topic::BACKTEST,
            log(Some("flood"), &format!("line {n}")),
        );
    }
    let log_refused = sink.publish(&Envelope::new(Topic::BACKTEST, log(Some("flood"), "x")));
    assert!(matches!(log_refused, Err(SinkError::Full { .. })));
    // The terminal event finds the queue full: it waits for Redis to come back.
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
        server
    });
    publish(&sink, Topic::BACKTEST, complete("flood"));
    let server = restarter.join().expect("restart");
    sink.flush_within(WAIT).expect("flushed");
    let stream = entries(&server, "backtest");
    let marker = stream.iter().find(|e| e.1 == "m").expect("a loss marker");
    let marker: Value = serde_json::from_str(&marker.2).expect("JSON");
    assert_eq!(
        marker,
        serde_json::json!({"missed": 89, "backtest_id": "flood"})
    );
    let last = stream.last().expect("entries");
    assert_eq!(last.2, complete("flood").to_json());
    assert_eq!(stream.iter().filter(|e| e.1 == "e").count(), 1 + 12 + 4 + 1);
    let stats = sink.stats();
    assert_eq!(
        (
            stats.refused_progress,
            stats.refused_other,
            stats.loss_markers
        ),
        (88, 1, 1)
    );
    assert_eq!(stats.terminal_refused, 0);
}

#[test]
fn a_terminal_event_that_cannot_be_placed_fails_its_publish() {
    let Some(mut server) = redis_server() else {
        return;
    };
    server.stop();
    let config = RedisSinkConfig::default()
        .queue_capacity(4)
        .terminal_reserve(1)
        .batch_size(1)
        .terminal_wait(Duration::from_millis(200));
    let sink = RedisSink::connect_with_config(&server.url(), config).expect("sink");
    // The writer takes one event and holds it while Redis is away; fill the room left.
    publish(&sink, Topic::BACKTEST, log(Some("stuck"), "held"));
    wait_for(|| sink.stats().failures > 0);
    let mut n = 0;
    while sink
        .publish(&Envelope::new(
            Topic::BACKTEST,
            log(Some("stuck"), &format!("{n}")),
        ))
        .is_ok()
    {
        n += 1;
        assert!(n < 10, "the queue never filled");
    }
    // The reserve takes one terminal event; the next waits, then fails its publish.
    publish(&sink, Topic::BACKTEST, complete("stuck"));
    let refused = sink.publish(&Envelope::new(Topic::BACKTEST, complete("stuck-2")));
    assert!(
        matches!(refused, Err(SinkError::Full { .. })),
        "{refused:?}"
    );
    assert_eq!(sink.stats().terminal_refused, 1);
}

#[test]
fn redis_that_lost_its_data_starts_a_new_epoch() {
    let Some(mut server) = redis_server() else {
        return;
    };
    let sink = RedisSink::connect(&server.url()).expect("sink");
    publish(&sink, Topic::BACKTEST, start("before"));
    sink.flush_within(WAIT).expect("flushed");
    let before = get(&server, "backtest-stream:{backtest}:epoch").expect("epoch");
    server.restart(); // no persistence: everything is gone
    publish(&sink, Topic::BACKTEST, start("after"));
    sink.flush_within(WAIT).expect("flushed after the restart");
    let after = get(&server, "backtest-stream:{backtest}:epoch").expect("epoch");
    assert_ne!(before, after);
    assert_eq!(entries(&server, "backtest")[0].0, "1-0");
}

#[test]
fn redis_with_persistence_keeps_the_numbering_across_a_restart() {
    if redis_server().is_none() {
        return;
    }
    let mut server = RedisServer::start(true);
    let sink = RedisSink::connect(&server.url()).expect("sink");
    publish(&sink, Topic::BACKTEST, start("kept"));
    sink.flush_within(WAIT).expect("flushed");
    let before = get(&server, "backtest-stream:{backtest}:epoch").expect("epoch");
    server.restart();
    publish(&sink, Topic::BACKTEST, complete("kept"));
    sink.flush_within(WAIT).expect("flushed after the restart");
    let after = get(&server, "backtest-stream:{backtest}:epoch").expect("epoch");
    assert_eq!(before, after);
    let ids: Vec<String> = entries(&server, "backtest")
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(ids, ["1-0", "2-0"]);
}
