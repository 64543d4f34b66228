//! The wire protocol over real sockets: confirmations, event shapes, isolation, errors.
#![cfg(feature = "server")]

mod server_support;

use backtest_stream::server::ServerConfig;
use backtest_stream::wire::{Envelope, Topic};
use futures::SinkExt;
use serde_json::json;
use server_support::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn subscribe_confirmation_has_the_protocol_shape() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.connect().await;
    let reply = subscribe_topic(&mut client, "backtest").await;
    assert_eq!(
        reply,
        json!({"type": "subscription_confirmed", "topic": "backtest",
               "epoch": server.hub.epoch(), "seq": 0})
    );
    let reply = subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "logs", "backtest_id": "run-1"}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type": "subscription_confirmed", "topic": "logs", "backtest_id": "run-1",
               "epoch": server.hub.epoch(), "seq": 0})
    );
}

#[tokio::test]
async fn every_event_type_arrives_with_the_seed_shape_plus_topic_and_seq() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.connect().await;
    subscribe_topic(&mut client, "backtest").await;
    let events = [
        start("r1"),
        progress("r1", 5000),
        log(Some("r1"), "Trade executed: BUY 0.1 lots EURUSD"),
        complete("r1"),
        error("r2"),
    ];
    for event in &events {
        server.publish(Topic::BACKTEST, event.clone());
    }
    for (i, event) in events.iter().enumerate() {
        let got = recv(&mut client).await;
        assert_eq!(got, expected_frame(event, "backtest", i as u64 + 1));
    }
}

#[tokio::test]
async fn topics_are_isolated() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut backtest = server.connect().await;
    let mut logs = server.connect().await;
    subscribe_topic(&mut backtest, "backtest").await;
    subscribe_topic(&mut logs, "logs").await;
    server.publish(Topic::LOGS, log(None, "only for logs"));
    server.publish(Topic::BACKTEST, start("r1"));
    server.publish(Topic::LOGS, log(None, "marker"));

    let got = recv(&mut backtest).await;
    assert_eq!(got, expected_frame(&start("r1"), "backtest", 1));
    let got = recv(&mut logs).await;
    assert_eq!(got["data"]["message"], "only for logs");
    assert_eq!(got["topic"], "logs");
    let got = recv(&mut logs).await;
    assert_eq!(got["data"]["message"], "marker");
    assert_eq!(got["seq"], 2, "logs numbers its own events");
}

#[tokio::test]
async fn two_concurrent_runs_are_isolated_by_backtest_id() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut one = server.connect().await;
    let mut two = server.connect().await;
    let mut all = server.connect().await;
    subscribe(
        &mut one,
        json!({"action": "subscribe", "topic": "backtest", "backtest_id": "r1"}),
    )
    .await;
    subscribe(
        &mut two,
        json!({"action": "subscribe", "topic": "backtest", "backtest_id": "r2"}),
    )
    .await;
    subscribe_topic(&mut all, "backtest").await;
    for bars in 1..=20 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
        server.publish(Topic::BACKTEST, progress("r2", bars));
    }
    server.publish(Topic::BACKTEST, complete("r1"));
    server.publish(Topic::BACKTEST, error("r2"));
    for (client, run, last) in [
        (&mut one, "r1", "backtest_complete"),
        (&mut two, "r2", "backtest_error"),
    ] {
        for bars in 1..=20 {
            let got = recv(client).await;
            assert_eq!(got["data"]["backtest_id"], run);
            assert_eq!(got["data"]["bars_processed"], bars);
        }
        let got = recv(client).await;
        assert_eq!(got["type"], last);
        assert_eq!(got["data"]["backtest_id"], run);
    }
    for seq in 1..=42 {
        assert_eq!(recv(&mut all).await["seq"], seq);
    }
}

#[tokio::test]
async fn broadcast_reaches_every_connection() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut unsubscribed = server.connect().await;
    let mut logs = server.connect().await;
    subscribe_topic(&mut logs, "logs").await;
    // Both connections are registered once one of them has its confirmation; the other
    // needs a round trip too.
    send(&mut unsubscribed, r#"{"action":"ping"}"#).await;
    assert_eq!(recv(&mut unsubscribed).await, json!({"type": "pong"}));
    server.wait_stats(|s| s.connections == 2).await;
    server
        .hub
        .broadcast(&Envelope::new(Topic::BACKTEST, start("r1")))
        .expect("broadcast");
    for client in [&mut unsubscribed, &mut logs] {
        assert_eq!(
            recv(client).await,
            expected_frame(&start("r1"), "backtest", 1)
        );
    }
}

#[tokio::test]
async fn unsubscribe_stops_the_topic() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.connect().await;
    subscribe_topic(&mut client, "backtest").await;
    subscribe_topic(&mut client, "logs").await;
    send(
        &mut client,
        r#"{"action":"unsubscribe","topic":"backtest"}"#,
    )
    .await;
    assert_eq!(
        recv(&mut client).await,
        json!({"type": "unsubscribed", "topic": "backtest"})
    );
    server.publish(Topic::BACKTEST, start("r1"));
    server.publish(Topic::LOGS, log(None, "marker"));
    let got = recv(&mut client).await;
    assert_eq!(got["data"]["message"], "marker");
    server
        .wait_stats(|s| !s.subscriptions.contains_key("backtest"))
        .await;
}

#[tokio::test]
async fn ping_action_gets_pong() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.connect().await;
    send(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(recv(&mut client).await, json!({"type": "pong"}));
}

#[tokio::test]
async fn every_bad_input_gets_an_error_and_the_connection_keeps_working() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.connect().await;
    let cases: &[(&str, &str)] = &[
        ("not json", "not valid JSON"),
        ("[1,2]", "must be a JSON object"),
        ("\"text\"", "must be a JSON object"),
        (r#"{"topic":"backtest"}"#, "missing \"action\""),
        (r#"{"action":"fly"}"#, "unknown action"),
        (r#"{"action":"subscribe"}"#, "missing or empty \"topic\""),
        (
            r#"{"action":"subscribe","topic":""}"#,
            "missing or empty \"topic\"",
        ),
        (r#"{"action":"unsubscribe"}"#, "missing or empty \"topic\""),
        (r#"{"action":7}"#, "\"action\" must be a string"),
        (
            r#"{"action":"subscribe","topic":["x"]}"#,
            "\"topic\" must be a string",
        ),
        (
            r#"{"action":"subscribe","topic":"t","since":"5"}"#,
            "\"since\" must be a non-negative integer",
        ),
        (
            r#"{"action":"subscribe","topic":"t","snapshot":1}"#,
            "\"snapshot\" must be a boolean",
        ),
        (
            r#"{"action":"subscribe","topic":"t","backtest_id":5}"#,
            "\"backtest_id\" must be a string",
        ),
    ];
    for (input, expected) in cases {
        send(&mut client, input).await;
        let reply = recv(&mut client).await;
        assert_eq!(reply["type"], "error", "{input} -> {reply}");
        assert_eq!(reply["data"]["code"], "bad_request", "{input}");
        let text = reply["data"]["error"].as_str().expect("error text");
        assert!(
            text.contains(expected),
            "{input}: {text:?} should mention {expected:?}"
        );
    }
    client
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send binary");
    let reply = recv(&mut client).await;
    assert_eq!(reply["data"]["code"], "bad_request");
    assert!(
        reply["data"]["error"]
            .as_str()
            .is_some_and(|t| t.contains("binary"))
    );
    // Nothing changed and the connection still works.
    assert!(server.hub.stats().subscriptions.is_empty());
    subscribe_topic(&mut client, "backtest").await;
    server.publish(Topic::BACKTEST, start("r1"));
    assert_eq!(
        recv(&mut client).await,
        expected_frame(&start("r1"), "backtest", 1)
    );
}

#[tokio::test]
async fn unknown_keys_are_ignored() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.connect().await;
    subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "backtest", "client": "ui-2", "v": [1]}),
    )
    .await;
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let server = TestServer::start(ServerConfig::default().max_message_size(1024)).await;
    let mut client = server.connect().await;
    let big = format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(4096));
    send(&mut client, &big).await;
    let frame = recv_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1009);
    server
        .wait_stats(|s| s.connections == 0 && s.connection_events.closed_message_too_big == 1)
        .await;
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let server = TestServer::start(ServerConfig::default().max_subscriptions(2)).await;
    let mut client = server.connect().await;
    subscribe_topic(&mut client, "a").await;
    subscribe_topic(&mut client, "b").await;
    send(&mut client, r#"{"action":"subscribe","topic":"c"}"#).await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["data"]["code"], "bad_request");
    assert!(
        reply["data"]["error"]
            .as_str()
            .is_some_and(|t| t.contains("too many subscriptions")),
        "{reply}"
    );
    // Subscribing again to a topic it has is fine, and so is making room.
    subscribe_topic(&mut client, "a").await;
    send(&mut client, r#"{"action":"unsubscribe","topic":"b"}"#).await;
    assert_eq!(recv(&mut client).await["type"], "unsubscribed");
    subscribe_topic(&mut client, "c").await;
}
