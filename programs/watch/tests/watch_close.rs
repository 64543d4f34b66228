//! The watcher and the protocol's close codes, tokens, an unknown run, and its output
//! filters; run as a real process against real servers on 127.0.0.1.

#[path = "../../../tests/process_support/mod.rs"]
mod process_support;
#[path = "../../../tests/server_support/mod.rs"]
mod server_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backtest_stream::auth::JwtVerifier;
use backtest_stream::server::ServerConfig;
use backtest_stream::wire::{LogEntry, LogLevel, Topic};
use futures::{SinkExt, StreamExt};
use process_support::Watched;
use server_support::{TestServer, complete, id, progress, start, ts};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

fn watcher(url: &str, extra: &[&str]) -> Watched {
    let mut command = Command::new(env!("CARGO_BIN_EXE_watch"));
    command
        .arg(url)
        .args(extra)
        .env_remove("BACKTEST_STREAM_TOKEN");
    Watched::spawn(command)
}

/// A WebSocket server that closes every connection with `code` once the client has
/// sent its first message; the count of connections it took.
async fn closing_server(code: u16) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let _ = ws.next().await;
                let frame = CloseFrame {
                    code: code.into(),
                    reason: "closed by the test".into(),
                };
                let _ = ws.send(Message::Close(Some(frame))).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    (url, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_that_say_resume_reconnect() {
    for code in [4001, 4002, 4003] {
        let (url, connections) = closing_server(code).await;
        let mut watch = watcher(&url, &[]);
        watch.wait_for("reconnected").await;
        watch.wait_for("reconnected").await;
        assert!(connections.load(Ordering::SeqCst) >= 2, "{code}");
        assert!(
            watch
                .stdout()
                .contains(&format!("({code} closed by the test)")),
            "{code}: {}",
            watch.stdout()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_that_say_stop_end_the_watcher() {
    for (code, says) in [
        (4004, "the token expired"),
        (4500, "not retrying"),
        (4504, "not retrying"),
        (1008, "not retrying"),
    ] {
        let (url, connections) = closing_server(code).await;
        let mut watch = watcher(&url, &[]);
        let status = watch.wait_exit().await;
        assert!(!status.success(), "{code}: exit {status}");
        let stderr = watch.stderr();
        assert!(stderr.contains(says), "{code}: {stderr}");
        assert!(stderr.contains(&code.to_string()), "{code}: {stderr}");
        assert_eq!(connections.load(Ordering::SeqCst), 1, "{code}: no retry");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_watcher_backs_off_before_reconnecting() {
    let (url, _connections) = closing_server(4503).await;
    let mut watch = watcher(&url, &[]);
    watch.wait_for("reconnecting in 5.00 s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_run_ends_the_watcher_with_a_clear_error() {
    let server = TestServer::start(ServerConfig::default()).await;
    server.publish(Topic::BACKTEST, start("known"));
    let mut watch = watcher(
        &server.url(),
        &[
            "--backtest-id",
            "nobody-knows",
            "--exit-after-complete",
            "1",
        ],
    );
    let status = watch.wait_exit().await;
    assert!(!status.success(), "exit {status}");
    assert_eq!(
        watch.stderr().trim_end(),
        format!("error: run nobody-knows is not known to {}", server.url())
    );
    // A known run is followed as before.
    let mut watch = watcher(
        &server.url(),
        &["--backtest-id", "known", "--exit-after-complete", "0.3"],
    );
    watch.wait_for("started known").await;
    server.publish(Topic::BACKTEST, complete("known"));
    assert!(watch.wait_exit().await.success(), "{}", watch.stderr());
}

fn token(secret: &[u8], sub: &str, seconds: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = serde_json::json!({"sub": sub, "exp": now + seconds, "topics": ["backtest"]});
    let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("key");
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("signed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lets_the_watcher_in_until_it_expires() {
    let secret = b"the watcher's test secret, long enough";
    let verifier = JwtVerifier::new()
        .secret(secret)
        .expect("verifier")
        .leeway(Duration::ZERO);
    let server = TestServer::start(ServerConfig::default().authorizer(verifier)).await;
    // Without a token: refused, with the server's reason.
    let mut watch = watcher(&server.url(), &[]);
    assert!(!watch.wait_exit().await.success());
    assert!(
        watch.stderr().contains("unauthorized"),
        "{}",
        watch.stderr()
    );
    // With one (from the environment), it follows runs until the token expires.
    let mut command = Command::new(env!("CARGO_BIN_EXE_watch"));
    command
        .arg(server.url())
        .env("BACKTEST_STREAM_TOKEN", token(secret, "watcher", 2));
    let mut watch = Watched::spawn(command);
    server
        .wait_stats(|s| s.subscriptions.get(&Topic::BACKTEST) == Some(&1))
        .await;
    server.publish(Topic::BACKTEST, start("with-token"));
    server.publish(Topic::BACKTEST, progress("with-token", 10));
    watch.wait_for("started with-token").await;
    let status = watch.wait_exit().await;
    assert!(!status.success(), "exit {status}");
    assert!(
        watch.stderr().contains("the token expired"),
        "{}",
        watch.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_and_quiet_filter_the_log_lines() {
    let server = TestServer::start(ServerConfig::default()).await;
    let log = |level, message: &str| {
        backtest_stream::wire::Event::LogEntry(LogEntry {
            backtest_id: Some(id("quiet-run")),
            timestamp: ts(),
            level,
            message: message.into(),
            module: "m".into(),
            function: "f".into(),
            line: 1,
            logger_name: "backtest".into(),
        })
    };
    let mut warning = watcher(
        &server.url(),
        &["--level", "warning", "--exit-after-complete", "0.3"],
    );
    let mut quiet = watcher(&server.url(), &["--quiet", "--exit-after-complete", "0.3"]);
    server
        .wait_stats(|s| s.subscriptions.get(&Topic::BACKTEST) == Some(&2))
        .await;
    server.publish(Topic::BACKTEST, start("quiet-run"));
    server.publish(Topic::BACKTEST, log(LogLevel::Info, "a trade line"));
    server.publish(Topic::BACKTEST, log(LogLevel::Warning, "a warning line"));
    server.publish(Topic::BACKTEST, complete("quiet-run"));
    assert!(warning.wait_exit().await.success());
    assert!(quiet.wait_exit().await.success());
    let (warning, quiet) = (warning.stdout(), quiet.stdout());
    assert!(
        warning.contains("a warning line") && !warning.contains("a trade line"),
        "{warning}"
    );
    assert!(!quiet.contains("line"), "{quiet}");
    assert!(!quiet.contains("Sharpe"), "no table when quiet: {quiet}");
    for out in [&warning, &quiet] {
        let result = out
            .lines()
            .find(|l| l.contains("complete quiet-run"))
            .expect("a one-line result");
        assert!(result.contains("balance"), "{result}");
    }
    let mut bad = watcher(&server.url(), &["--level", "loud"]);
    assert_eq!(bad.wait_exit().await.code(), Some(2));
    assert!(bad.stderr().contains("--level"), "{}", bad.stderr());
}
