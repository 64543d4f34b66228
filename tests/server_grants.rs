//! What a token lets a client see, over real sockets with tokens signed in the test:
//! nothing before a token (a first `auth` message), only the granted runs live, in a
//! `since` replay and in a `snapshot` while two runs stream, refresh, and 4004 at
//! expiry; on the standalone server and on an axum route.
#![cfg(all(feature = "auth", feature = "hyper"))]

mod auth_support;
mod server_support;

use std::time::Duration;

use auth_support::door::Door;
use auth_support::*;
use backtest_stream::server::ServerConfig;
use backtest_stream::wire::{CloseCode, Topic};
use serde_json::{Value, json};
use server_support::*;

fn config() -> ServerConfig {
    ServerConfig::default().authorizer(verifier())
}

async fn expect_error(client: &mut Client, code: &str) -> Value {
    let reply = recv(client).await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["data"]["code"], code, "{reply}");
    reply
}

async fn nothing_before_a_token_then_an_auth_message(door: Door) {
    let mut client = door.connect(None).await.expect("upgrade without a token");
    send(&mut client, r#"{"action":"subscribe","topic":"backtest"}"#).await;
    expect_error(&mut client, "unauthorized").await;
    send(&mut client, r#"{"action":"ping"}"#).await;
    expect_error(&mut client, "unauthorized").await;
    // An event for every connection does not reach it either.
    door.hub()
        .broadcast(&backtest_stream::wire::Envelope::new(
            Topic::LOGS,
            log(None, "all"),
        ))
        .expect("broadcast");
    let token = hs256(&claims("alice", json!(["backtest"]), json!([])));
    send(
        &mut client,
        &json!({"action": "auth", "token": token}).to_string(),
    )
    .await;
    subscribe_topic(&mut client, "backtest").await;
    door.publish(Topic::BACKTEST, progress("r1", 1));
    let frame = recv(&mut client).await;
    assert_eq!(
        frame["type"], "backtest_progress",
        "the broadcast never came: {frame}"
    );
    // A first auth message with a bad token closes with 4500.
    let mut bad = door.connect(None).await.expect("upgrade");
    send(&mut bad, r#"{"action":"auth","token":"forged.token.here"}"#).await;
    let close = recv_close(&mut bad).await.expect("close frame");
    assert_eq!(u16::from(close.code), CloseCode::InvalidToken.code());
    assert!(close.reason.contains("invalid token"), "{}", close.reason);
}

#[tokio::test]
async fn nothing_before_a_token_standalone() {
    nothing_before_a_token_then_an_auth_message(Door::standalone(config()).await).await;
}

#[tokio::test]
async fn nothing_before_a_token_embedded() {
    nothing_before_a_token_then_an_auth_message(Door::embedded(config()).await).await;
}

#[tokio::test]
async fn no_token_within_the_handshake_timeout_closes_with_4500() {
    let config = config().handshake_timeout(Duration::from_millis(300));
    let door = Door::standalone(config).await;
    let mut client = door.connect(None).await.expect("upgrade");
    let close = recv_close(&mut client).await.expect("close frame");
    assert_eq!(u16::from(close.code), 4500);
    assert_eq!(close.reason, "no token within the handshake timeout");
    assert_eq!(door.hub().stats().access.auth_timeout, 1);
}

/// Events of runs `a` and `b` interleaved on `backtest`: start, `n` progress each.
fn stream_two_runs(door: &Door, from: u64, to: u64) {
    for bars in from..=to {
        if bars == 1 {
            door.publish(Topic::BACKTEST, start("run-a"));
            door.publish(Topic::BACKTEST, start("run-b"));
        }
        door.publish(Topic::BACKTEST, progress("run-a", bars));
        door.publish(Topic::BACKTEST, progress("run-b", bars));
    }
}

/// Reads frames until `type` arrives; every event frame on the way must be of `run`.
async fn only_run_until(client: &mut Client, run: &str, kind: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = recv(client).await;
        if let Some(id) = frame["data"].get("backtest_id") {
            assert_eq!(id, run, "another run's event leaked: {frame}");
        }
        let done = frame["type"] == kind;
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

async fn a_run_token_sees_its_run_only(door: Door) {
    stream_two_runs(&door, 1, 5);
    let token = hs256(&claims("viewer", json!([]), json!(["run-a"])));
    let mut client = door.client(&token).await;
    send(&mut client, r#"{"action":"subscribe","topic":"backtest"}"#).await;
    let refused = expect_error(&mut client, "forbidden").await;
    assert!(
        refused["data"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("backtest")
    );
    send(
        &mut client,
        r#"{"action":"subscribe","topic":"backtest","backtest_id":"run-b","since":0}"#,
    )
    .await;
    expect_error(&mut client, "forbidden").await;
    // The connection stays open: its own run, replayed from the start.
    let request = json!({"action":"subscribe","topic":"backtest","backtest_id":"run-a","since":0});
    subscribe(&mut client, request).await;
    let replayed = only_run_until(&mut client, "run-a", "backtest_progress").await;
    assert_eq!(replayed[0]["type"], "backtest_start");
    // Live: both runs go on; only run-a arrives, up to its completion.
    stream_two_runs(&door, 6, 8);
    door.publish(Topic::BACKTEST, complete("run-b"));
    door.publish(Topic::BACKTEST, complete("run-a"));
    let live = only_run_until(&mut client, "run-a", "backtest_complete").await;
    assert!(live.len() >= 4, "{live:?}");
    // A snapshot on another connection with the same token: run-a's state only.
    let mut other = door.client(&token).await;
    let request =
        json!({"action":"subscribe","topic":"backtest","backtest_id":"run-a","snapshot":true});
    subscribe(&mut other, request).await;
    let snapshot = only_run_until(&mut other, "run-a", "backtest_complete").await;
    assert_eq!(
        snapshot.len(),
        3,
        "start, latest progress, complete: {snapshot:?}"
    );
    assert_eq!(door.hub().stats().access.forbidden, 2);
}

#[tokio::test]
async fn a_run_token_sees_its_run_only_standalone() {
    a_run_token_sees_its_run_only(Door::standalone(config()).await).await;
}

#[tokio::test]
async fn a_run_token_sees_its_run_only_embedded() {
    a_run_token_sees_its_run_only(Door::embedded(config()).await).await;
}

#[tokio::test]
async fn a_refresh_narrows_the_grants_and_expiry_closes_with_4004() {
    let verifier = verifier().leeway(Duration::ZERO);
    let door = Door::standalone(ServerConfig::default().authorizer(verifier)).await;
    let first = hs256(&claims("alice", json!(["backtest", "logs"]), json!([])));
    let mut client = door.client(&first).await;
    subscribe_topic(&mut client, "backtest").await;
    subscribe_topic(&mut client, "logs").await;
    // Another subject's token, and a forged one, are refused; the old token stays.
    let bob = hs256(&claims("bob", json!("*"), json!([])));
    send(
        &mut client,
        &json!({"action": "auth", "token": bob}).to_string(),
    )
    .await;
    expect_error(&mut client, "unauthorized").await;
    send(&mut client, r#"{"action":"auth","token":"x.y.z"}"#).await;
    expect_error(&mut client, "unauthorized").await;
    // A narrower token, ending in two seconds: the backtest subscription ends.
    let mut narrow = claims("alice", json!(["logs"]), json!([]));
    narrow["exp"] = json!(now() + 2);
    send(
        &mut client,
        &json!({"action": "auth", "token": hs256(&narrow)}).to_string(),
    )
    .await;
    let reply = recv(&mut client).await;
    assert_eq!(reply, json!({"type": "unsubscribed", "topic": "backtest"}));
    door.publish(Topic::BACKTEST, progress("r1", 1));
    door.publish(Topic::LOGS, log(Some("r1"), "still granted"));
    let frame = recv(&mut client).await;
    assert_eq!(frame["type"], "log_entry", "{frame}");
    send(&mut client, r#"{"action":"subscribe","topic":"backtest"}"#).await;
    expect_error(&mut client, "forbidden").await;
    let close = recv_close(&mut client).await.expect("close frame");
    assert_eq!(u16::from(close.code), CloseCode::TokenExpired.code());
    let access = door.hub().stats().access;
    assert_eq!((access.tokens_refreshed, access.token_expired), (1, 1));
}
