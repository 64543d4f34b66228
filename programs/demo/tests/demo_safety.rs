//! The demo's runs are safe by default (issue 14, the parts without authentication),
//! over real sockets on 127.0.0.1 and real files: cancelling runs, `data_path` confined
//! to `--data-dir` and read only as far as needed, the paced-duration cap. (Its HTTP:
//! `demo_http_safety.rs`.)

mod demo_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use demo_support::Demo;
use serde_json::{Value, json};

const RUN: &str = "/api/v1/backtest/run";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("demo-safety-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CSV file of `rows` hourly bars (at most 600), then `tail` as is.
fn csv_text(rows: usize, tail: &str) -> String {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..rows {
        let price = 1.1 + (i % 17) as f64 * 0.001;
        text.push_str(&format!(
            "2024-01-{:02}T{:02}:00:00Z,{price},{},{},{price},100\n",
            1 + i / 24,
            i % 24,
            price + 0.002,
            price - 0.002
        ));
    }
    text.push_str(tail);
    text
}

fn post_json(demo: &Demo, body: &Value) -> (u16, Value) {
    demo.post(RUN, &body.to_string())
}

fn error_of(reply: &Value) -> &str {
    reply["error"].as_str().unwrap_or_default()
}

// ------------------------------------------------------------------ 1. cancel

#[tokio::test]
async fn a_running_run_is_cancelled_promptly_and_ends_with_its_error_event() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let demo = Demo::start();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", demo.addr))
        .await
        .expect("the WebSocket handshake");
    let subscribe = r#"{"action":"subscribe","topic":"backtest","backtest_id":"to-cancel"}"#;
    ws.send(Message::text(subscribe)).await.expect("subscribe");
    // Subscribed before the run starts: its start event is not missed (the subscribe
    // asks for no snapshot). Server pings are skipped by next_frame, so a start event
    // missed this way hung the test rather than timing out.
    let confirmed = next_frame(&mut ws).await;
    assert_eq!(confirmed["type"], "subscription_confirmed", "{confirmed}");
    // One second per bar: without the cancellation this run takes 16 minutes.
    let body = json!({"backtest_id": "to-cancel", "bars": 1000, "bar_delay_us": 1_000_000});
    let (status, reply) = post_json(&demo, &body);
    assert_eq!(status, 202, "{reply}");
    let mut started = false;
    while !started {
        let frame = next_frame(&mut ws).await;
        started = frame["type"] == "backtest_start";
    }
    // Into its first pause.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    let (status, reply) = demo.delete("/api/v1/backtest/to-cancel");
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["backtest_id"], "to-cancel");
    let terminal = loop {
        let frame = next_frame(&mut ws).await;
        if frame["type"] == "backtest_complete" || frame["type"] == "backtest_error" {
            break frame;
        }
    };
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(terminal["type"], "backtest_error", "{terminal}");
    let message = terminal["data"]["error"].as_str().unwrap_or_default();
    assert!(message.to_lowercase().contains("cancelled"), "{terminal}");

    let run = demo.wait_finished("to-cancel", Duration::from_secs(10));
    assert_eq!(run["status"], "error", "{run}");
    assert_eq!(run["cancelled"], true, "{run}");
    assert!(error_of(&run).contains("cancelled"), "{run}");

    // Finished: 409; unknown: 404; both JSON.
    let (status, reply) = demo.delete("/api/v1/backtest/to-cancel");
    assert_eq!(status, 409, "{reply}");
    assert!(error_of(&reply).contains("finished"), "{reply}");
    let (status, reply) = demo.delete("/api/v1/backtest/never-was");
    assert_eq!(status, 404, "{reply}");
    assert!(error_of(&reply).contains("never-was"), "{reply}");
    // A completed run is not cancelled either, and stays complete.
    let (status, _) = post_json(
        &demo,
        &json!({"backtest_id": "quick", "bars": 50, "bar_delay_us": 0}),
    );
    assert_eq!(status, 202);
    demo.wait_finished("quick", Duration::from_secs(30));
    assert_eq!(demo.delete("/api/v1/backtest/quick").0, 409);
    assert_eq!(demo.get("/api/v1/backtest/quick").1["cancelled"], false);
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_frame(ws: &mut Ws) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

// ------------------------------------------------------------------ 2. data_path

#[test]
fn data_path_is_refused_without_a_data_dir() {
    let dir = TempDir::new("no-dir");
    let file = dir.path().join("bars.csv");
    std::fs::write(&file, csv_text(50, "")).expect("write the file");
    let demo = Demo::start();
    for path in [file.to_str().unwrap(), "bars.csv"] {
        let (status, reply) = post_json(&demo, &json!({ "data_path": path }));
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["field"], "data_path");
        assert!(error_of(&reply).contains("--data-dir"), "{reply}");
    }
}

#[test]
#[cfg(unix)]
fn data_path_is_read_only_below_the_data_dir() {
    let root = TempDir::new("confined");
    let data = root.path().join("data");
    std::fs::create_dir_all(data.join("fx")).expect("mkdir");
    std::fs::write(data.join("fx/eurusd.csv"), csv_text(60, "")).expect("write");
    std::fs::write(root.path().join("secret.csv"), csv_text(60, "")).expect("write");
    std::os::unix::fs::symlink(root.path().join("secret.csv"), data.join("leak.csv"))
        .expect("a symbolic link out");
    std::os::unix::fs::symlink(root.path(), data.join("up")).expect("a directory link out");
    std::os::unix::fs::symlink(data.join("fx/eurusd.csv"), data.join("alias.csv"))
        .expect("a link inside");
    let data_arg = data.to_str().unwrap().to_owned();
    let demo = Demo::start_with(loopback(), &["--data-dir", &data_arg]);

    let inside_absolute = data.join("fx/eurusd.csv");
    let accepted = [
        "fx/eurusd.csv",
        "./fx/../fx/eurusd.csv",
        "alias.csv",
        inside_absolute.to_str().unwrap(),
    ];
    for (i, path) in accepted.iter().enumerate() {
        let id = format!("inside-{i}");
        let body = json!({ "backtest_id": id, "data_path": path, "bar_delay_us": 0 });
        let (status, reply) = post_json(&demo, &body);
        assert_eq!(status, 202, "{path}: {reply}");
        let done = demo.wait_finished(&id, Duration::from_secs(30));
        assert_eq!(done["status"], "complete", "{path}: {done}");
        assert_eq!(done["results"]["results"]["bars"], 60, "{path}: {done}");
    }

    let outside_absolute = root.path().join("secret.csv");
    let refused = [
        "../secret.csv",
        "../missing.csv",
        "fx/../../secret.csv",
        "leak.csv",
        "up/secret.csv",
        "fx",
        "/etc/passwd",
        outside_absolute.to_str().unwrap(),
    ];
    let mut messages = Vec::new();
    for path in refused {
        let (status, reply) = post_json(&demo, &json!({ "data_path": path }));
        assert_eq!(status, 400, "{path}: {reply}");
        assert_eq!(reply["field"], "data_path", "{path}: {reply}");
        // The same words whether the file exists or not: only the path differs.
        messages.push(error_of(&reply).replace(path, "PATH"));
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    // Nothing outside was started.
    let (_, list) = demo.get("/api/v1/backtests");
    assert_eq!(
        list["backtests"].as_array().map(Vec::len),
        Some(accepted.len())
    );
}

#[test]
fn a_csv_is_read_only_as_far_as_the_run_needs_and_its_size_is_capped() {
    let dir = TempDir::new("partial");
    // 40 good bars, then a line that is not a bar: a run of 10 never reads it.
    std::fs::write(dir.path().join("tail.csv"), csv_text(40, "garbage\n")).expect("write");
    let big = csv_text(600, "");
    std::fs::write(dir.path().join("big.csv"), &big).expect("write");
    let cap = (big.len() - 1).to_string();
    let demo = Demo::start_with(
        loopback(),
        &["--data-dir", dir.arg(), "--max-data-bytes", &cap],
    );

    let body =
        json!({"backtest_id": "ten", "data_path": "tail.csv", "bars": 10, "bar_delay_us": 0});
    assert_eq!(post_json(&demo, &body).0, 202);
    let done = demo.wait_finished("ten", Duration::from_secs(30));
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["results"]["results"]["bars"], 10);
    // A file's run is named after the file, its timeframe read from its bars' spacing,
    // and the bars it used are shown.
    assert_eq!(done["symbol"], "tail", "{done}");
    assert_eq!(done["timeframe"], "H1", "{done}");
    assert_eq!(done["data"]["bars_used"], 10, "{done}");
    // The whole file: its bad line is read, and named.
    let body = json!({"backtest_id": "all", "data_path": "tail.csv", "bar_delay_us": 0});
    assert_eq!(post_json(&demo, &body).0, 202);
    let done = demo.wait_finished("all", Duration::from_secs(30));
    assert_eq!(done["status"], "error", "{done}");
    assert!(error_of(&done).contains("line 42"), "{done}");

    // One byte over the cap: 400, naming the option.
    let (status, reply) = post_json(&demo, &json!({"data_path": "big.csv", "bars": 5}));
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["field"], "data_path");
    assert!(error_of(&reply).contains("--max-data-bytes"), "{reply}");
}

/// The existing behaviour, now below the data directory: a file that cannot be parsed
/// ends the run with an error that says so.
#[test]
fn a_csv_that_cannot_be_parsed_ends_the_run_with_an_error() {
    let dir = TempDir::new("bad");
    std::fs::write(dir.path().join("bad.csv"), "this,is\nnot,bars\n").expect("write");
    let demo = Demo::start_with(loopback(), &["--data-dir", dir.arg()]);
    let body = json!({ "backtest_id": "bad-csv", "data_path": "bad.csv" });
    let (status, reply) = post_json(&demo, &body);
    assert_eq!(status, 202, "{reply}");
    let done = demo.wait_finished("bad-csv", Duration::from_secs(30));
    assert_eq!(done["status"], "error", "{done}");
    assert!(error_of(&done).contains("could not load"), "{done}");
}

// ------------------------------------------------------------------ 3. duration cap

#[test]
fn paced_runs_longer_than_the_cap_are_refused_naming_bar_delay_us() {
    let dir = TempDir::new("paced");
    std::fs::write(dir.path().join("bars.csv"), csv_text(100, "")).expect("write");
    let demo = Demo::start_with(
        loopback(),
        &["--max-run-seconds", "10", "--data-dir", dir.arg()],
    );
    // 100 bars × 0.2 s = 20 s > 10 s.
    let (status, reply) = post_json(&demo, &json!({"bars": 100, "bar_delay_us": 200_000}));
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["field"], "bar_delay_us");
    assert!(error_of(&reply).contains("--max-run-seconds"), "{reply}");
    // The default run (5,000 bars × 3 ms = 15 s) is over 10 s too.
    assert_eq!(demo.post(RUN, "{}").0, 400);
    // 100 × 0.1 s = 10 s: allowed (and cancelled, not waited for).
    let body = json!({"backtest_id": "ten-s", "bars": 100, "bar_delay_us": 100_000});
    assert_eq!(post_json(&demo, &body).0, 202);
    assert_eq!(demo.delete("/api/v1/backtest/ten-s").0, 202);
    // Full speed has no cap.
    let body = json!({"bars": 1_000_000, "bar_delay_us": 0, "backtest_id": "fast"});
    assert_eq!(post_json(&demo, &body).0, 202);
    assert_eq!(demo.delete("/api/v1/backtest/fast").0, 202);
    // A CSV run without `bars` is checked when its file is read: 100 × 0.5 s > 10 s.
    let body = json!({"backtest_id": "csv-slow", "data_path": "bars.csv", "bar_delay_us": 500_000});
    assert_eq!(post_json(&demo, &body).0, 202);
    let done = demo.wait_finished("csv-slow", Duration::from_secs(30));
    assert_eq!(done["status"], "error", "{done}");
    assert!(error_of(&done).contains("--max-run-seconds"), "{done}");
}
