//! The gateway run as a real process against a real `redis-server` on a free port:
//! two gateways give identical frames to their clients, `/healthz` follows Redis going
//! away and coming back, `/metrics` counts the events, and the command line's help and
//! errors. Skipped (saying so) without `redis-server`, unless
//! `BACKTEST_STREAM_REQUIRE_REDIS` is set.

// The library's test helpers, shared by path: a redis-server per test, a process whose
// output is collected as it comes, real WebSocket clients and events.
#[path = "../../../tests/broker_support/mod.rs"]
mod broker_support;
#[path = "../../../tests/process_support/mod.rs"]
mod process_support;
#[path = "../../../tests/server_support/mod.rs"]
mod server_support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use backtest_stream::broker::RedisSink;
use backtest_stream::sink::ProgressSink;
use backtest_stream::wire::{Envelope, Event, Topic};
use broker_support::redis_server;
use process_support::{WAIT, Watched};
use serde_json::Value;
use server_support::{Client, complete, progress, recv, start, subscribe_topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway process; killed when dropped.
struct Gateway {
    process: Watched,
    /// `127.0.0.1:PORT`.
    addr: String,
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command.args(args).env("RUST_LOG", "warn");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BACKTEST_STREAM_") {
            command.env_remove(name);
        }
    }
    command
}

/// Starts a gateway on a free port and reads its URL from the first stdout line.
async fn gateway(redis_url: &str, extra: &[&str]) -> Gateway {
    let mut args = vec!["--redis", redis_url, "--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut process = Watched::spawn(command(&args));
    process.wait_for("/ws\n").await;
    let first = process
        .stdout()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let addr = first
        .strip_prefix("ws://")
        .and_then(|rest| rest.strip_suffix("/ws"))
        .unwrap_or_else(|| panic!("the first line is not ws://ADDR/ws: {first:?}"))
        .to_owned();
    Gateway { process, addr }
}

impl Gateway {
    async fn connect(&self) -> Client {
        let (client, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr))
            .await
            .expect("connect to the gateway");
        client
    }

    /// `GET path` with `Host` → (status, body).
    async fn get(&self, path: &str, host: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read");
        let status = reply
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {reply:?}"));
        let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_owned())
    }

    async fn health(&self) -> (u16, Value) {
        let (status, body) = self.get("/healthz", &self.addr).await;
        let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        (status, body)
    }

    /// Waits until `/healthz` answers `status`; its body.
    async fn wait_health(&self, status: u16) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (got, body) = self.health().await;
            if got == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/healthz stayed {got} ({body}), not {status}\n{}",
                self.process.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/metrics`, every sample line parsed: `name{labels}` → value.
    async fn metrics(&self) -> HashMap<String, f64> {
        let (status, body) = self.get("/metrics", &self.addr).await;
        assert_eq!(status, 200, "{body}");
        parse_metrics(&body)
    }
}

/// The Prometheus text format: `# HELP`/`# TYPE` comments and `name{labels} value`
/// lines, every one of which must parse.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "{line:?}"
            );
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        let bare = name.split('{').next().unwrap_or_default();
        assert!(
            !bare.is_empty()
                && bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line:?}"
        );
        samples.insert(name.to_owned(), value);
    }
    samples
}

/// A run of `bars` progress events through a RedisSink, written before it returns.
fn publish_run(sink: &RedisSink, run: &str, bars: u64) {
    let publish = |event: Event| {
        sink.publish(&Envelope::new(Topic::BACKTEST, event))
            .expect("publish")
    };
    publish(start(run));
    for bar in 1..=bars {
        publish(progress(run, bar));
    }
    publish(complete(run));
    sink.flush_within(Duration::from_secs(10)).expect("written");
}

/// Event frames up to `backtest_complete` (inclusive).
async fn frames_until_complete(client: &mut Client) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = recv(client).await;
        let done = frame["type"] == "backtest_complete";
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_give_their_clients_identical_frames_and_count_them() {
    let Some(redis) = redis_server() else { return };
    let url = redis.url();
    let (one, two) = (gateway(&url, &[]).await, gateway(&url, &[]).await);
    one.wait_health(200).await;
    two.wait_health(200).await;
    let (mut a, mut b) = (one.connect().await, two.connect().await);
    subscribe_topic(&mut a, "backtest").await;
    subscribe_topic(&mut b, "backtest").await;

    let sink = RedisSink::connect(&url).expect("sink");
    publish_run(&sink, "through-redis", 30);
    let from_a = frames_until_complete(&mut a).await;
    let from_b = frames_until_complete(&mut b).await;
    assert_eq!(from_a, from_b, "the same frames, seqs and epoch on both");
    let seqs: Vec<u64> = from_a.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=32).collect::<Vec<_>>());
    assert_eq!(from_a[0]["type"], "backtest_start");

    for gateway in [&one, &two] {
        let metrics = gateway.metrics().await;
        let get = |name: &str| metrics.get(name).copied().unwrap_or(-1.0);
        assert_eq!(
            get("backtest_stream_gateway_events_total"),
            32.0,
            "{metrics:?}"
        );
        assert_eq!(get("backtest_stream_events_published_total"), 32.0);
        assert_eq!(
            get(r#"backtest_stream_gateway_last_seq{topic="backtest"}"#),
            32.0
        );
        assert_eq!(get("backtest_stream_gateway_connected"), 1.0);
        assert_eq!(get("backtest_stream_connections"), 1.0);
        assert_eq!(
            get(r#"backtest_stream_subscriptions{topic="backtest"}"#),
            1.0
        );
        assert_eq!(
            get(r#"backtest_stream_dropped_total{reason="lagged"}"#),
            0.0
        );
        assert_eq!(get("backtest_stream_gateway_reconnects_total"), 0.0);
        assert_eq!(get(r#"backtest_stream_replays_total{source="redis"}"#), 0.0);
    }
    // The broker lag falls to 0 once the gateway has read everything (it looks at the
    // counters after a read that found nothing, 1 s at most after the run).
    let lag = r#"backtest_stream_gateway_behind{topic="backtest"}"#;
    for _ in 0..100 {
        if one.metrics().await.get(lag) == Some(&0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(one.metrics().await.get(lag), Some(&0.0));

    // A gateway started after the run rebuilds it from the stream's tail.
    let three = gateway(&url, &[]).await;
    three.wait_health(200).await;
    let mut c = three.connect().await;
    let confirmed = server_support::subscribe(
        &mut c,
        serde_json::json!({"action":"subscribe","topic":"backtest","since":0}),
    )
    .await;
    assert_eq!(confirmed["seq"], 32, "{confirmed}");
    assert_eq!(frames_until_complete(&mut c).await, from_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_gateway_resumes_on_the_other_with_every_event_once() {
    let Some(redis) = redis_server() else { return };
    let url = redis.url();
    let (one, two) = (gateway(&url, &[]).await, gateway(&url, &[]).await);
    let mut client = one.connect().await;
    let confirmed = subscribe_topic(&mut client, "backtest").await;
    let epoch = confirmed["epoch"].as_str().expect("an epoch").to_owned();

    // Two workers, their runs interleaved in the topic.
    let workers = [RedisSink::connect(&url), RedisSink::connect(&url)].map(|s| s.expect("sink"));
    let publish = |worker: usize, event: Event| {
        workers[worker]
            .publish(&Envelope::new(Topic::BACKTEST, event))
            .expect("publish")
    };
    for (worker, run) in [(0, "killed-a"), (1, "killed-b")] {
        publish(worker, start(run));
    }
    for bar in 1..=20 {
        publish(0, progress("killed-a", bar));
        publish(1, progress("killed-b", bar));
    }
    workers
        .iter()
        .for_each(|w| w.flush_within(WAIT).expect("written"));
    let mut seen = Vec::new();
    while seen.len() < 30 {
        seen.push(recv(&mut client).await["seq"].as_u64().expect("seq"));
    }
    drop(one); // kill -9 of its gateway, mid-run
    for bar in 21..=40 {
        publish(0, progress("killed-a", bar));
        publish(1, progress("killed-b", bar));
    }
    publish(0, complete("killed-a"));
    publish(1, complete("killed-b"));
    workers
        .iter()
        .for_each(|w| w.flush_within(WAIT).expect("written"));

    let mut client = two.connect().await;
    let last = *seen.last().expect("seen");
    let request = serde_json::json!(
        {"action":"subscribe","topic":"backtest","since":last,"epoch":epoch}
    );
    let confirmed = server_support::subscribe(&mut client, request).await;
    assert_eq!(confirmed["recovered"], true, "{confirmed}");
    let mut ends = 0;
    while ends < 2 {
        let frame = recv(&mut client).await;
        ends += usize::from(frame["type"] == "backtest_complete");
        seen.push(frame["seq"].as_u64().expect("seq"));
    }
    assert_eq!(
        seen,
        (1..=84).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_follows_redis_going_away_and_coming_back() {
    let Some(mut redis) = redis_server() else {
        return;
    };
    let gateway = gateway(&redis.url(), &[]).await;
    let body = gateway.wait_health(200).await;
    assert_eq!(body, serde_json::json!({"status":"ok","redis":"connected"}));

    redis.stop();
    let body = gateway.wait_health(503).await;
    assert_eq!(body["redis"], "disconnected", "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(metrics["backtest_stream_gateway_connected"], 0.0);
    assert!(metrics["backtest_stream_gateway_failures_total"] >= 1.0);

    redis.restart();
    gateway.wait_health(200).await;
    // And it serves what is written after the restart.
    let mut client = gateway.connect().await;
    subscribe_topic(&mut client, "backtest").await;
    let sink = RedisSink::connect(&redis.url()).expect("sink");
    publish_run(&sink, "after-restart", 3);
    let frames = frames_until_complete(&mut client).await;
    assert_eq!(frames.len(), 5);
    let metrics = gateway.metrics().await;
    assert!(metrics["backtest_stream_gateway_reconnects_total"] >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_answers_only_its_own_host_names() {
    let Some(redis) = redis_server() else { return };
    let gateway = gateway(&redis.url(), &[]).await;
    let (status, body) = gateway.get("/ws", "evil.example:80").await;
    assert_eq!(status, 421, "{body}");
    // Probes and scrapers reach /healthz and /metrics by any name.
    let (status, _) = gateway.get("/metrics", "10.0.0.7:8001").await;
    assert_eq!(status, 200);
    let (status, body) = gateway.get("/nowhere", &gateway.addr).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn help_lists_the_options_and_bad_command_lines_exit_2() {
    let output = command(&["--help"]).output().expect("run the gateway");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--redis",
        "--addr",
        "--topics",
        "--max-connections",
        "--queue",
        "--history",
        "--ping-secs",
        "--auth-secret-file",
        "--auth-public-key",
        "--insecure",
        "BACKTEST_STREAM_REDIS",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
    for (args, expected) in [
        (&["--frobnicate"][..], "unknown option --frobnicate"),
        (&[][..], "--redis URL is required"),
        (&["--redis", "http://x"][..], "not a Redis URL"),
        (&["--redis", "redis://127.0.0.1:port"][..], "--redis"),
        (&["--redis", "redis://x", "--queue", "0"][..], "--queue"),
        (&["--redis", "redis://x", "--topics", ","][..], "--topics"),
        (&["--redis", "redis://x", "--addr", "nowhere"][..], "--addr"),
        (
            &["--redis", "redis://x", "--addr", "0.0.0.0:0"][..],
            "not a loopback address",
        ),
    ] {
        let output = command(args).output().expect("run the gateway");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {expected:?} not in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    // The environment variable stands for the flag.
    let output = command(&["--queue", "0"])
        .env("BACKTEST_STREAM_REDIS", "redis://127.0.0.1:1")
        .output()
        .expect("run the gateway");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--queue"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_secret_every_websocket_needs_a_token() {
    let Some(redis) = redis_server() else { return };
    let dir = std::env::temp_dir().join(format!("gateway-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let secret = "a-test-secret-of-at-least-32-bytes!!";
    let path = dir.join("secret");
    std::fs::write(&path, format!("{secret}\n")).expect("write the secret");
    let path = path.to_str().expect("a UTF-8 path").to_owned();
    let gateway = gateway(&redis.url(), &["--auth-secret-file", &path]).await;

    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws?token=bad", gateway.addr));
    match refused.await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
        }
        other => panic!("a bad token was not refused: {:?}", other.map(|_| ())),
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let claims = serde_json::json!({"sub": "tester", "exp": now + 600, "topics": "*"});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("sign");
    let (mut client, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", gateway.addr))
            .await
            .expect("a valid token is accepted");
    subscribe_topic(&mut client, "backtest").await;
    let sink = RedisSink::connect(&redis.url()).expect("sink");
    publish_run(&sink, "authorized", 2);
    assert_eq!(frames_until_complete(&mut client).await.len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}
