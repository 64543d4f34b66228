//! Rate limits over real sockets: client messages per connection (`rate_limited`, then
//! 4503), connections per subject (4504), upgrades per address (HTTP 429 with
//! `Retry-After`), and the replay budget (`rate_limited` for a replay once spent).
#![cfg(all(feature = "auth", feature = "hyper"))]

mod auth_support;
mod server_support;

use std::time::Duration;

use auth_support::door::Door;
use auth_support::*;
use backtest_stream::server::{RateLimits, ServerConfig};
use backtest_stream::wire::{CloseCode, Topic};
use serde_json::json;
use server_support::*;

#[tokio::test]
async fn messages_over_the_limit_are_refused_then_the_client_is_closed() {
    let limits = RateLimits::default().messages(1, 5).refused_before_close(3);
    let door = Door::standalone(ServerConfig::default().rate_limits(limits)).await;
    let mut client = door.connect(None).await.expect("connect");
    for _ in 0..5 {
        send(&mut client, r#"{"action":"ping"}"#).await;
    }
    for _ in 0..5 {
        assert_eq!(recv(&mut client).await, json!({"type": "pong"}));
    }
    for _ in 0..3 {
        send(&mut client, r#"{"action":"subscribe","topic":"backtest"}"#).await;
        let reply = recv(&mut client).await;
        assert_eq!(reply["data"]["code"], "rate_limited", "{reply}");
    }
    let stats = door.hub().stats();
    assert!(
        stats.subscriptions.is_empty(),
        "a refused subscribe was acted on"
    );
    send(&mut client, r#"{"action":"ping"}"#).await;
    let close = recv_close(&mut client).await.expect("close frame");
    assert_eq!(u16::from(close.code), CloseCode::RateLimited.code());
    let access = door.hub().stats().access;
    assert_eq!(
        (access.messages_rate_limited, access.closed_rate_limited),
        (3, 1)
    );
}

#[tokio::test]
async fn a_subject_has_at_most_its_connections() {
    let limits = RateLimits::default().connections_per_subject(Some(2));
    let config = ServerConfig::default()
        .authorizer(verifier())
        .rate_limits(limits);
    let door = Door::standalone(config).await;
    let alice = hs256(&claims("alice", json!("*"), json!([])));
    let first = door.client(&alice).await;
    let mut second = door.client(&alice).await;
    subscribe_topic(&mut second, "backtest").await;
    let mut third = door.client(&alice).await;
    let close = recv_close(&mut third).await.expect("close frame");
    assert_eq!(u16::from(close.code), CloseCode::TooManyConnections.code());
    // The same through a first auth message.
    let mut late = door.connect(None).await.expect("upgrade");
    send(
        &mut late,
        &json!({"action": "auth", "token": alice}).to_string(),
    )
    .await;
    let close = recv_close(&mut late).await.expect("close frame");
    assert_eq!(u16::from(close.code), 4504);
    // Another subject is not affected; one of alice's closing makes room.
    let bob = hs256(&claims("bob", json!("*"), json!([])));
    subscribe_topic(&mut door.client(&bob).await, "backtest").await;
    drop(first);
    door.hub().stats();
    let mut again = None;
    for _ in 0..100 {
        let mut client = door.client(&alice).await;
        send(&mut client, r#"{"action":"ping"}"#).await;
        if recv(&mut client).await["type"] == "pong" {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a slot of alice's never came back");
    assert!(door.hub().stats().access.subject_limit >= 2);
}

#[tokio::test]
async fn upgrades_per_address_over_the_limit_get_429_with_retry_after() {
    let limits = RateLimits::default().upgrades_per_minute_per_address(Some(3));
    let door = Door::standalone(ServerConfig::default().rate_limits(limits)).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(door.connect(None).await.expect("within the limit"));
    }
    let url = door.url();
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let retry = response.headers().get("retry-after").expect("Retry-After");
            let seconds: u64 = retry.to_str().expect("text").parse().expect("seconds");
            assert!((1..=60).contains(&seconds), "{seconds}");
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    assert_eq!(door.hub().stats().access.upgrades_rate_limited, 1);
}

#[tokio::test]
async fn replays_past_the_budget_are_refused_until_it_refills() {
    let limits = RateLimits::default().replay_budget(4_000, Duration::from_secs(3_600));
    let door = Door::standalone(ServerConfig::default().rate_limits(limits)).await;
    for bars in 1..=100 {
        door.publish(Topic::BACKTEST, progress("r1", bars));
    }
    let mut client = door.connect(None).await.expect("connect");
    // The first replay starts within the budget and is sent whole.
    subscribe(
        &mut client,
        json!({"action":"subscribe","topic":"backtest","since":0}),
    )
    .await;
    for bars in 1..=100 {
        assert_eq!(recv(&mut client).await["data"]["bars_processed"], bars);
    }
    for request in [
        json!({"action":"subscribe","topic":"backtest","since":50}),
        json!({"action":"subscribe","topic":"backtest","snapshot":true}),
    ] {
        send(&mut client, &request.to_string()).await;
        let reply = recv(&mut client).await;
        assert_eq!(reply["data"]["code"], "rate_limited", "{reply}");
    }
    // A subscribe without replay is still served.
    subscribe_topic(&mut client, "logs").await;
    // Another connection has its own budget.
    let mut other = door.connect(None).await.expect("connect");
    subscribe(
        &mut other,
        json!({"action":"subscribe","topic":"backtest","since":99}),
    )
    .await;
    assert_eq!(recv(&mut other).await["data"]["bars_processed"], 100);
    assert_eq!(door.hub().stats().access.replay_budget_spent, 2);
}
