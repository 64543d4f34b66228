//! The demo with `--redis URL` against a real `redis-server` on a free port: a run
//! started over REST is written to Redis, and `/ws` serves it from there with the
//! broker's numbering (each frame's `seq` is its entry's id in the stream). Skipped
//! (saying so) without `redis-server`, unless `BACKTEST_STREAM_REQUIRE_REDIS` is set.

#[path = "../../../tests/broker_support/mod.rs"]
mod broker_support;
mod demo_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use demo_support::Demo;
use futures::{SinkExt, StreamExt};
use redis::Commands as _;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The stream's events: seq → the event (`{"type":...,"data":...}`).
fn stream_events(redis: &broker_support::RedisServer) -> HashMap<u64, Value> {
    let reply: redis::streams::StreamRangeReply = redis
        .connection()
        .xrange_all("backtest-stream:{backtest}:stream")
        .expect("xrange");
    let mut events = HashMap::new();
    for entry in reply.ids {
        let Some(value) = entry.map.get("e") else {
            continue;
        };
        let text: String = redis::from_redis_value(value.clone()).expect("text");
        let seq = entry.id.strip_suffix("-0").and_then(|s| s.parse().ok());
        let seq = seq.unwrap_or_else(|| panic!("an event entry's id is SEQ-0: {}", entry.id));
        events.insert(seq, serde_json::from_str(&text).expect("JSON"));
    }
    events
}

async fn next_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("the connection is open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("a JSON frame");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_run_started_over_rest_reaches_ws_through_the_stream() {
    let Some(redis) = broker_support::redis_server() else {
        return;
    };
    let url = redis.url();
    let demo = Demo::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), &["--redis", &url]);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", demo.addr))
        .await
        .expect("the WebSocket handshake");
    let subscribe = r#"{"action":"subscribe","topic":"backtest","backtest_id":"via-redis"}"#;
    ws.send(Message::text(subscribe)).await.expect("subscribe");
    let confirmed = next_frame(&mut ws).await;
    assert_eq!(confirmed["type"], "subscription_confirmed", "{confirmed}");

    let (status, reply) = demo.post(
        "/api/v1/backtest/run",
        r#"{"backtest_id":"via-redis","bars":600,"bar_delay_us":0}"#,
    );
    assert_eq!(status, 202, "{reply}");
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(&mut ws).await;
        let done = frame["type"] == "backtest_complete" || frame["type"] == "backtest_error";
        frames.push(frame);
        if done {
            break;
        }
    }
    assert_eq!(frames[0]["type"], "backtest_start", "{:?}", frames[0]);
    assert_eq!(frames.last().unwrap()["type"], "backtest_complete");

    // Every frame is an entry of the stream in Redis, under the same seq.
    let stream = stream_events(&redis);
    for frame in &frames {
        let seq = frame["seq"].as_u64().expect("a seq");
        let entry = stream
            .get(&seq)
            .unwrap_or_else(|| panic!("seq {seq} is not in the stream"));
        assert_eq!(entry["type"], frame["type"], "seq {seq}");
        assert_eq!(entry["data"], frame["data"], "seq {seq}");
    }
    let epoch: String = redis
        .connection()
        .get("backtest-stream:{backtest}:epoch")
        .expect("the topic's epoch");
    assert!(!epoch.is_empty());

    // The REST API is unchanged.
    let run = demo.wait_finished("via-redis", Duration::from_secs(30));
    assert_eq!(run["status"], "complete", "{run}");
    assert_eq!(
        run["results"]["final_balance"],
        frames.last().unwrap()["data"]["final_balance"]
    );

    // /metrics has the Redis sink's figures and the gateway's beside the hub's.
    let (status, text) = demo_support::http(demo.addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let sample = |name: &str| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
    };
    let written = sample("backtest_stream_redis_sink_written_total");
    assert!(written >= frames.len() as f64, "{written}");
    assert_eq!(sample("backtest_stream_redis_sink_connected"), 1.0);
    assert_eq!(
        sample(r#"backtest_stream_redis_sink_refused_total{kind="terminal"}"#),
        0.0
    );
    assert!(sample("backtest_stream_gateway_events_total") >= frames.len() as f64);
}

#[test]
fn a_bad_redis_url_is_refused_with_exit_2() {
    let output = std::process::Command::new(demo_support::demo_binary())
        .args(["--addr", "127.0.0.1:0", "--redis", "http://not-redis"])
        .env_remove("BACKTEST_STREAM_REDIS")
        .output()
        .expect("run the demo");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--redis"), "{stderr}");
}
