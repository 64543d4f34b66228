//! The demo's `/ws` with bearer tokens, over real sockets with tokens signed in the test:
//! refused upgrades (401), nothing before a token, a run-limited token that sees only its
//! run (live, replayed with `since`, and in a `snapshot`) while two runs stream, and a
//! start-only token that follows the run it started after refreshing its grants.

mod demo_support;

use std::time::Duration;

use demo_support::tokens::{self, TempDir, claims, hs256};
use demo_support::{Demo, Reply};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn demo(dir: &TempDir) -> Demo {
    let secret = dir.secret_file();
    Demo::start_args(&["--addr", "127.0.0.1:0", "--auth-secret-file", &secret])
}

/// Opens `/ws` (with `?token=` when given): the socket, or the refusal's status and
/// `WWW-Authenticate`.
async fn open(demo: &Demo, token: Option<&str>) -> Result<Ws, (u16, String)> {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    match tokio_tungstenite::connect_async(format!("ws://{}/ws{query}", demo.addr)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            Err((response.status().as_u16(), challenge))
        }
        Err(other) => panic!("unexpected failure: {other}"),
    }
}

/// Opens `/ws` and sends `token` in a first `auth` message.
async fn open_with_auth_message(demo: &Demo, token: &str) -> Ws {
    let mut ws = open(demo, None).await.expect("an upgrade without a token");
    send(&mut ws, json!({"action": "auth", "token": token})).await;
    ws
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// The next text frame as JSON, or `Err(close code)` when the server closed.
async fn next(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s");
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).expect("JSON")),
            Some(Ok(Message::Close(close))) => return Err(close.map_or(1005, |c| c.code.into())),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the connection failed: {e}"),
            None => return Err(1006),
        }
    }
}

async fn reply(ws: &mut Ws) -> Value {
    next(ws).await.expect("a reply, not a close")
}

async fn expect_error(ws: &mut Ws, code: &str) {
    let frame = reply(ws).await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["data"]["code"], code, "{frame}");
}

async fn subscribe_run(ws: &mut Ws, id: &str, extra: Value) {
    let mut request = json!({"action": "subscribe", "topic": "backtest", "backtest_id": id});
    if let (Some(r), Some(e)) = (request.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    send(ws, request).await;
}

/// Frames until `run`'s event of type `kind`; every event on the way must be `run`'s.
async fn only_run_until(ws: &mut Ws, run: &str, kind: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = reply(ws).await;
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

fn start(demo: &Demo, token: &str, id: &str, bars: u64) -> Reply {
    let body = json!({"backtest_id": id, "bars": bars, "bar_delay_us": 5_000});
    demo.call(
        "POST",
        "/api/v1/backtest/run",
        Some(token),
        &body.to_string(),
    )
}

#[tokio::test]
async fn upgrades_need_a_valid_token_and_nothing_comes_before_one() {
    let dir = TempDir::new("ws-refused");
    let demo = demo(&dir);
    for token in [tokens::forged("alice"), tokens::expired("alice")] {
        let (status, challenge) = open(&demo, Some(&token)).await.expect_err("refused");
        assert_eq!(status, 401);
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    // Without a token the upgrade waits for a first `auth` message: nothing until then.
    let mut ws = open(&demo, None).await.expect("upgrade");
    send(&mut ws, json!({"action": "subscribe", "topic": "backtest"})).await;
    expect_error(&mut ws, "unauthorized").await;
    send(
        &mut ws,
        json!({"action": "auth", "token": tokens::expired("alice")}),
    )
    .await;
    assert_eq!(
        next(&mut ws).await.err(),
        Some(4500),
        "an expired first token"
    );
    let mut ws = open(&demo, None).await.expect("upgrade");
    send(
        &mut ws,
        json!({"action": "auth", "token": tokens::forged("alice")}),
    )
    .await;
    assert_eq!(
        next(&mut ws).await.err(),
        Some(4500),
        "a forged first token"
    );
    // The printed token, in the query and in a first message.
    let dev = demo.token.clone().expect("a development token");
    for mut ws in [
        open(&demo, Some(&dev)).await.expect("accepted"),
        open_with_auth_message(&demo, &dev).await,
    ] {
        send(&mut ws, json!({"action": "subscribe", "topic": "backtest"})).await;
        let confirmed = reply(&mut ws).await;
        assert_eq!(confirmed["type"], "subscription_confirmed", "{confirmed}");
    }
}

#[tokio::test]
async fn no_token_within_the_handshake_timeout_closes_with_4500() {
    let dir = TempDir::new("ws-timeout");
    let secret = dir.secret_file();
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--auth-secret-file",
        &secret,
        "--http-timeout",
        "1",
    ];
    let demo = Demo::start_args(&args);
    let mut ws = open(&demo, None).await.expect("upgrade");
    let started = std::time::Instant::now();
    assert_eq!(next(&mut ws).await.err(), Some(4500));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_run_token_sees_only_its_run_live_replayed_and_in_a_snapshot() {
    let dir = TempDir::new("ws-runs");
    let demo = demo(&dir);
    let dev = demo.token.clone().expect("a development token");
    // Two runs of about 3 s stream side by side.
    assert_eq!(start(&demo, &dev, "run-a", 600).status, 202);
    assert_eq!(start(&demo, &dev, "run-b", 600).status, 202);
    let viewer = hs256(&claims("viewer", json!([]), json!(["run-a"]), Value::Null));
    let mut ws = open_with_auth_message(&demo, &viewer).await;
    send(&mut ws, json!({"action": "subscribe", "topic": "backtest"})).await;
    expect_error(&mut ws, "forbidden").await;
    subscribe_run(&mut ws, "run-b", json!({"since": 0})).await;
    expect_error(&mut ws, "forbidden").await;
    // Its own run, replayed from the start, then live while both runs go on.
    subscribe_run(&mut ws, "run-a", json!({"since": 0})).await;
    let confirmed = reply(&mut ws).await;
    assert_eq!(confirmed["type"], "subscription_confirmed", "{confirmed}");
    let head = confirmed["seq"].as_u64().expect("the head seq");
    let frames = only_run_until(&mut ws, "run-a", "backtest_complete").await;
    assert_eq!(
        frames[0]["type"], "backtest_start",
        "replayed from the start"
    );
    let live = frames
        .iter()
        .filter(|f| f["type"] == "backtest_progress" && f["seq"].as_u64() > Some(head))
        .count();
    assert!(live > 0, "no live progress after seq {head}: {frames:?}");
    // run-b was streaming meanwhile: a token with every topic sees it.
    let b = demo.wait_finished_as("run-b", Some(&dev), Duration::from_secs(30));
    assert_eq!(b["status"], "complete", "{b}");
    // A snapshot on another connection (the token in the query): run-a's state only.
    let mut other = open(&demo, Some(&viewer)).await.expect("accepted");
    subscribe_run(&mut other, "run-a", json!({"snapshot": true})).await;
    assert_eq!(reply(&mut other).await["type"], "subscription_confirmed");
    let snapshot = only_run_until(&mut other, "run-a", "backtest_complete").await;
    let kinds: Vec<&str> = snapshot.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["backtest_start", "backtest_progress", "backtest_complete"]
    );
}

#[tokio::test]
async fn a_start_only_token_follows_its_own_run_after_refreshing() {
    let dir = TempDir::new("ws-owner");
    let demo = demo(&dir);
    let dev = demo.token.clone().expect("a development token");
    assert_eq!(start(&demo, &dev, "someone-elses", 400).status, 202);
    let starter = hs256(&claims("starter", Value::Null, Value::Null, json!("start")));
    let mut ws = open(&demo, Some(&starter)).await.expect("accepted");
    assert_eq!(start(&demo, &starter, "mine", 400).status, 202);
    // The grants were read at the upgrade, before the run existed.
    subscribe_run(&mut ws, "mine", json!({"since": 0})).await;
    expect_error(&mut ws, "forbidden").await;
    // The same token again: its grants now include the run it started (no reply).
    send(&mut ws, json!({"action": "auth", "token": starter})).await;
    subscribe_run(&mut ws, "someone-elses", json!({"since": 0})).await;
    expect_error(&mut ws, "forbidden").await;
    subscribe_run(&mut ws, "mine", json!({"since": 0, "snapshot": true})).await;
    assert_eq!(reply(&mut ws).await["type"], "subscription_confirmed");
    let frames = only_run_until(&mut ws, "mine", "backtest_complete").await;
    assert_eq!(frames[0]["type"], "backtest_start", "{frames:?}");
    // Another subject's token is no refresh.
    send(&mut ws, json!({"action": "auth", "token": dev})).await;
    expect_error(&mut ws, "unauthorized").await;
}
