//! One minute of the soak (`examples/soak.rs`): runs starting and ending on three
//! publishers, 50 clients joining, reading (some slowly), vanishing and resuming with
//! `since` + `epoch`; every frame in order with every gap announced, every terminal event
//! owed delivered, and nothing left on the server once the clients are gone.
#![cfg(feature = "server")]

mod examples_support;

use std::process::Command;

use examples_support::example;
use serde_json::Value;

#[test]
fn a_minute_of_mixed_load_keeps_every_promise() {
    let output = Command::new(example("soak"))
        .args(["--seconds", "60", "--clients", "50", "--publishers", "3"])
        .output()
        .expect("run the soak example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("a JSON summary ({e}): {stdout}\n{stderr}"));
    assert!(output.status.success(), "{summary}\n{stderr}");
    assert_eq!(summary["violations"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["connections_left"], 0, "{summary}");
    assert!(summary["runs_ended"].as_u64() > Some(3), "{summary}");
    assert!(summary["vanished"].as_u64() > Some(0), "{summary}");
    assert!(summary["resumed"].as_u64() > Some(0), "{summary}");
    // Memory sampled every 10 s stays bounded (server and 50 clients in one process).
    let peak = summary["rss_kib_every_10_s"]
        .as_array()
        .and_then(|samples| samples.iter().filter_map(Value::as_u64).max())
        .unwrap_or(u64::MAX);
    assert!(peak < 512 * 1024, "{summary}");
}
