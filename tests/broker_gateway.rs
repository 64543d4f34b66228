//! Gateways over a real `redis-server`: workers publish with a RedisSink, gateways
//! (hubs fed by the broker) serve WebSocket clients. Several gateways give identical
//! streams; a client resumes on another gateway without gap or duplicate; a gateway
//! started late rebuilds its state; one cut from Redis says so and catches up; loss
//! markers reach clients as `lagged`; a Redis that lost its data starts a new epoch; a
//! subscribe is confirmed only with the epoch the broker's events carry.
#![cfg(all(feature = "redis", feature = "server"))]

mod broker_support;
mod server_support;

use std::time::Duration;

use backtest_stream::broker::{Gateway, GatewayConfig, RedisSink, RedisSinkConfig};
use backtest_stream::server::ServerConfig;
use backtest_stream::sink::ProgressSink;
use backtest_stream::wire::{Envelope, Event, Topic};
use broker_support::{RedisServer, redis_server};
use futures::SinkExt;
use serde_json::{Value, json};
use server_support::*;

fn publish(sink: &RedisSink, event: Event) {
    sink.publish(&Envelope::new(Topic::BACKTEST, event))
        .expect("publish");
}

/// A gateway on its own WebSocket server.
struct TestGateway {
    server: TestServer,
    gateway: Gateway,
}

async fn gateway(redis: &RedisServer) -> TestGateway {
    let server = TestServer::start(ServerConfig::default()).await;
    let config = GatewayConfig::default()
        .topics([Topic::BACKTEST])
        .block(Duration::from_millis(200))
        .max_backoff(Duration::from_millis(200));
    let gateway = Gateway::start(&server.hub, &redis.url(), config).expect("gateway");
    TestGateway { server, gateway }
}

/// Reads event frames until one of type `until` (inclusive).
async fn frames_until(client: &mut Client, until: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = recv(client).await;
        let done = frame["type"] == until;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Reads event frames until `ends` runs have completed.
async fn frames_until_ends(client: &mut Client, ends: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames
        .iter()
        .filter(|f: &&Value| f["type"] == "backtest_complete")
        .count()
        < ends
    {
        frames.push(recv(client).await);
    }
    frames
}

fn run(sink: &RedisSink, id: &str, bars: u64) {
    publish(sink, start(id));
    for bar in 1..=bars {
        publish(sink, progress(id, bar));
    }
    publish(sink, complete(id));
    sink.flush_within(WAIT).expect("written");
}

async fn wait_until(check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_give_identical_streams() {
    let Some(redis) = redis_server() else { return };
    let (one, two) = (gateway(&redis).await, gateway(&redis).await);
    let mut a = one.server.connect().await;
    let mut b = two.server.connect().await;
    let confirmed_a = subscribe_topic(&mut a, "backtest").await;
    let confirmed_b = subscribe_topic(&mut b, "backtest").await;
    // Two workers at once, their runs interleaved in the topic.
    let url = redis.url();
    let workers = ["shared-1", "shared-2"].map(|id| {
        let url = url.clone();
        std::thread::spawn(move || run(&RedisSink::connect(&url).expect("sink"), id, 20))
    });
    for worker in workers {
        worker.join().expect("worker");
    }
    let (from_a, from_b) = (
        frames_until_ends(&mut a, 2).await,
        frames_until_ends(&mut b, 2).await,
    );
    assert_eq!(from_a, from_b, "the same frames, the same seqs");
    let seqs: Vec<u64> = from_a.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=44).collect::<Vec<_>>());
    // The epoch is the broker's, the same on both (taken once the topic had events).
    let epoch = redis::Commands::get::<_, String>(
        &mut redis.connection(),
        "backtest-stream:{backtest}:epoch",
    );
    let mut c = two.server.connect().await;
    let confirmed = subscribe_topic(&mut c, "backtest").await;
    assert_eq!(confirmed["epoch"].as_str(), epoch.ok().as_deref());
    assert_eq!(confirmed["seq"], 44);
    let _ = (confirmed_a, confirmed_b);
    assert_eq!(one.gateway.stats().events, 44);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_gateway_without_gap_or_duplicate() {
    let Some(redis) = redis_server() else { return };
    let sink = RedisSink::connect(&redis.url()).expect("sink");
    publish(&sink, start("moving"));
    sink.flush_within(WAIT).expect("written");
    let (one, two) = (gateway(&redis).await, gateway(&redis).await);
    wait_until(|| one.gateway.stats().events == 1 && two.gateway.stats().events == 1).await;
    let mut client = one.server.connect().await;
    let confirmed = subscribe(
        &mut client,
        json!({"action":"subscribe","topic":"backtest","since":0}),
    )
    .await;
    let epoch = confirmed["epoch"].as_str().expect("epoch").to_owned();
    for bar in 1..=10 {
        publish(&sink, progress("moving", bar));
    }
    sink.flush_within(WAIT).expect("written");
    let mut last = 0;
    while last < 6 {
        last = recv(&mut client).await["seq"].as_u64().expect("seq");
    }
    drop(client); // its gateway is gone, as far as it knows
    for bar in 11..=20 {
        publish(&sink, progress("moving", bar));
    }
    publish(&sink, complete("moving"));
    sink.flush_within(WAIT).expect("written");
    let mut client = two.server.connect().await;
    let request = json!({"action":"subscribe","topic":"backtest","since":last,"epoch":epoch});
    let confirmed = subscribe(&mut client, request).await;
    assert_eq!(confirmed["recovered"], true, "{confirmed}");
    let rest = frames_until(&mut client, "backtest_complete").await;
    let seqs: Vec<u64> = rest.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        ((last + 1)..=22).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_came_before_any_event_resumes_on_another_gateway() {
    let Some(redis) = redis_server() else { return };
    // Both gateways start on an empty Redis, and the client subscribes before any
    // worker wrote: the epoch it is given is the one the events will carry.
    let (one, two) = (gateway(&redis).await, gateway(&redis).await);
    let mut client = one.server.connect().await;
    let confirmed = subscribe_topic(&mut client, "backtest").await;
    let epoch = confirmed["epoch"].as_str().expect("epoch").to_owned();
    let mut other = two.server.connect().await;
    let on_two = subscribe_topic(&mut other, "backtest").await;
    assert_eq!(
        on_two["epoch"],
        epoch.as_str(),
        "one epoch on both gateways"
    );

    let sink = RedisSink::connect(&redis.url()).expect("sink");
    publish(&sink, start("early"));
    sink.flush_within(WAIT).expect("written");
    assert_eq!(recv(&mut client).await["seq"], 1);
    drop(client);
    run(&sink, "early-2", 3);
    let mut client = two.server.connect().await;
    let request = json!({"action":"subscribe","topic":"backtest","since":1,"epoch":epoch});
    let confirmed = subscribe(&mut client, request).await;
    assert_eq!(confirmed["recovered"], true, "{confirmed}");
    let rest = frames_until(&mut client, "backtest_complete").await;
    let seqs: Vec<u64> = rest.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, (2..=6).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_waits_while_the_gateway_cannot_learn_the_epoch() {
    if redis_server().is_none() {
        return;
    }
    let mut redis = RedisServer::start(true);
    redis.stop();
    let gateway = gateway(&redis).await;
    let mut client = gateway.server.connect().await;
    client
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"action":"subscribe","topic":"backtest"}).to_string(),
        ))
        .await
        .expect("send");
    // No confirmation while Redis is away: it could only carry a made-up epoch.
    let early = tokio::time::timeout(Duration::from_millis(500), recv(&mut client)).await;
    assert!(early.is_err(), "confirmed without an epoch: {early:?}");
    redis.restart();
    let confirmed = recv(&mut client).await;
    assert_eq!(confirmed["type"], "subscription_confirmed", "{confirmed}");
    let epoch: String =
        redis::Commands::get(&mut redis.connection(), "backtest-stream:{backtest}:epoch")
            .expect("the epoch in Redis");
    assert_eq!(confirmed["epoch"], epoch.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_late_rebuilds_history_and_snapshot() {
    let Some(redis) = redis_server() else { return };
    let sink = RedisSink::connect(&redis.url()).expect("sink");
    run(&sink, "earlier", 5);
    publish(&sink, start("running"));
    publish(&sink, progress("running", 3));
    sink.flush_within(WAIT).expect("written");
    let late = gateway(&redis).await;
    wait_until(|| late.gateway.stats().events == 9).await;
    let mut client = late.server.connect().await;
    let request = json!({"action":"subscribe","topic":"backtest","snapshot":true});
    let confirmed = subscribe(&mut client, request).await;
    assert_eq!(confirmed["seq"], 9);
    let mut snapshot = Vec::new();
    for _ in 0..5 {
        let frame = recv(&mut client).await;
        snapshot.push((frame["type"].clone(), frame["data"]["backtest_id"].clone()));
    }
    assert_eq!(
        snapshot,
        [
            (json!("backtest_start"), json!("earlier")),
            (json!("backtest_progress"), json!("earlier")),
            (json!("backtest_complete"), json!("earlier")),
            (json!("backtest_start"), json!("running")),
            (json!("backtest_progress"), json!("running")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cut_from_redis_says_so_and_catches_up() {
    if redis_server().is_none() {
        return;
    }
    let mut redis = RedisServer::start(true);
    let config = RedisSinkConfig::default().max_backoff(Duration::from_millis(100));
    let sink = RedisSink::connect_with_config(&redis.url(), config).expect("sink");
    publish(&sink, start("through"));
    sink.flush_within(WAIT).expect("written");
    let gateway = gateway(&redis).await;
    wait_until(|| gateway.gateway.stats().events == 1).await;
    let mut client = gateway.server.connect().await;
    let confirmed = subscribe(
        &mut client,
        json!({"action":"subscribe","topic":"backtest","since":0}),
    )
    .await;
    assert_eq!(recv(&mut client).await["seq"], 1);
    redis.stop();
    wait_until(|| !gateway.gateway.stats().connected).await;
    for bar in 1..=30 {
        publish(&sink, progress("through", bar));
    }
    publish(&sink, complete("through"));
    redis.restart(); // append-only file: nothing lost
    sink.flush_within(WAIT).expect("written once Redis is back");
    let rest = frames_until(&mut client, "backtest_complete").await;
    let seqs: Vec<u64> = rest.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, (2..=32).collect::<Vec<_>>());
    let stats = gateway.gateway.stats();
    assert!(
        stats.connected && stats.failures > 0 && stats.epoch_changes == 0,
        "{stats:?}"
    );
    let _ = confirmed;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_markers_reach_clients_as_lagged_before_the_next_event() {
    if redis_server().is_none() {
        return;
    }
    // Persistent: the restart below keeps the topic's epoch (the client's stays valid).
    let mut redis = RedisServer::start(true);
    let gateway = gateway(&redis).await;
    let mut client = gateway.server.connect().await;
    subscribe_topic(&mut client, "backtest").await;
    redis.stop();
    let config = RedisSinkConfig::default()
        .queue_capacity(8)
        .batch_size(1)
        .max_backoff(Duration::from_millis(100));
    let sink = RedisSink::connect_with_config(&redis.url(), config).expect("sink");
    publish(&sink, start("lossy"));
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stats().failures == 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    for bar in 1..=50 {
        let _ = sink.publish(&Envelope::new(Topic::BACKTEST, progress("lossy", bar)));
    }
    let refused = sink.stats().refused_progress;
    assert!(refused > 0);
    publish(&sink, complete("lossy"));
    redis.restart();
    sink.flush_within(WAIT).expect("written");
    let frames = frames_until(&mut client, "backtest_complete").await;
    let lagged: Vec<&Value> = frames.iter().filter(|f| f["type"] == "lagged").collect();
    assert_eq!(lagged.len(), 1, "{frames:?}");
    assert_eq!(lagged[0]["data"]["missed"], refused);
    let position = frames
        .iter()
        .position(|f| f["type"] == "lagged")
        .expect("lagged");
    assert!(
        position < frames.len() - 1,
        "announced before the next event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_starts_a_new_epoch_for_clients() {
    let Some(mut redis) = redis_server() else {
        return;
    };
    let sink = RedisSink::connect(&redis.url()).expect("sink");
    run(&sink, "before-loss", 3);
    let gateway = gateway(&redis).await;
    wait_until(|| gateway.gateway.stats().events == 5).await;
    let mut client = gateway.server.connect().await;
    let confirmed = subscribe(
        &mut client,
        json!({"action":"subscribe","topic":"backtest","since":0}),
    )
    .await;
    let old_epoch = confirmed["epoch"].as_str().expect("epoch").to_owned();
    frames_until(&mut client, "backtest_complete").await;
    redis.restart(); // no persistence: the streams, counters and epochs are gone
    run(&sink, "after-loss", 2);
    // The gateway asks its subscribers to reconnect (1001)...
    let close = recv_close(&mut client).await.expect("close frame");
    assert_eq!(u16::from(close.code), 1001);
    wait_until(|| gateway.gateway.stats().epoch_changes == 1).await;
    // ...and a resume with the old epoch cannot be honoured: reload with a snapshot.
    let mut client = gateway.server.connect().await;
    let request = json!({"action":"subscribe","topic":"backtest","since":5,"epoch":old_epoch});
    let confirmed = subscribe(&mut client, request).await;
    assert_eq!(confirmed["recovered"], false, "{confirmed}");
    assert_ne!(confirmed["epoch"], old_epoch.as_str());
    wait_until(|| gateway.gateway.stats().last_seq.get(&Topic::BACKTEST) == Some(&4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_older_than_the_gateways_history_is_served_from_redis() {
    let Some(redis) = redis_server() else { return };
    // A gateway whose own history keeps 16 events, on a stream that keeps them all.
    let server = TestServer::start(ServerConfig::default().history_size(16)).await;
    let config = GatewayConfig::default()
        .topics([Topic::BACKTEST])
        .tail(16)
        .block(Duration::from_millis(200));
    let gateway = Gateway::start(&server.hub, &redis.url(), config).expect("gateway");
    let sink = RedisSink::connect(&redis.url()).expect("sink");
    run(&sink, "deep", 98); // seqs 1..=100
    wait_until(|| gateway.stats().last_seq.get(&Topic::BACKTEST) == Some(&100)).await;
    let mut client = server.connect().await;
    let request = json!({"action":"subscribe","topic":"backtest","since":10});
    let confirmed = subscribe(&mut client, request).await;
    assert_eq!(confirmed["recovered"], true, "{confirmed}");
    let frames = frames_until(&mut client, "backtest_complete").await;
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (11..=100).collect::<Vec<_>>(),
        "from Redis, then the history"
    );
    let replays = server.hub.stats().replays;
    assert_eq!((replays.from_archive, replays.from_history), (1, 0));
    // A since the history holds is answered from it alone.
    let mut recent = server.connect().await;
    subscribe(
        &mut recent,
        json!({"action":"subscribe","topic":"backtest","since":95}),
    )
    .await;
    assert_eq!(recv(&mut recent).await["seq"], 96);
    assert_eq!(server.hub.stats().replays.from_history, 1);
    // A run filter is applied to what comes from Redis too.
    let mut filtered = server.connect().await;
    let request = json!({"action":"subscribe","topic":"backtest","backtest_id":"deep","since":0});
    subscribe(&mut filtered, request).await;
    assert_eq!(recv(&mut filtered).await["seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_older_than_redis_keeps_is_announced_as_lagged() {
    let Some(redis) = redis_server() else { return };
    let server = TestServer::start(ServerConfig::default().history_size(8)).await;
    let config = GatewayConfig::default()
        .topics([Topic::BACKTEST])
        .tail(8)
        .block(Duration::from_millis(200));
    let gateway = Gateway::start(&server.hub, &redis.url(), config).expect("gateway");
    let sink_config = RedisSinkConfig::default().max_len(20).batch_size(10);
    let sink = RedisSink::connect_with_config(&redis.url(), sink_config).expect("sink");
    run(&sink, "trimmed", 498); // seqs 1..=500; Redis keeps only the last few dozen
    wait_until(|| gateway.stats().last_seq.get(&Topic::BACKTEST) == Some(&500)).await;
    let mut client = server.connect().await;
    let confirmed = subscribe(
        &mut client,
        json!({"action":"subscribe","topic":"backtest","since":0}),
    )
    .await;
    assert_eq!(confirmed["recovered"], false, "{confirmed}");
    let lagged = recv(&mut client).await;
    assert_eq!(lagged["type"], "lagged", "{lagged}");
    let missed = lagged["data"]["missed"].as_u64().expect("missed");
    let first = recv(&mut client).await["seq"].as_u64().expect("seq");
    assert_eq!(missed + 1, first, "the gap is exactly what was announced");
    assert!(
        first < 493,
        "older than the gateway's own 8 came from Redis: {first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_a_new_topic_reaches_a_live_client_whole() {
    let Some(redis) = redis_server() else { return };
    let gateway = gateway(&redis).await;
    let mut client = gateway.server.connect().await;
    subscribe_topic(&mut client, "backtest").await;
    let sink = RedisSink::connect(&redis.url()).expect("sink");
    run(&sink, "burst", 5_000);
    let frames = frames_until(&mut client, "backtest_complete").await;
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=5_002).collect::<Vec<_>>());
}
