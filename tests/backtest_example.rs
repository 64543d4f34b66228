//! `examples/backtest` run as a real process: JSON Lines on stdout, help, a clear
//! error for every bad input (exit 2 for the command line, 3 for the data), the run served over WebSocket (`--ws`), and the
//! run written to Redis Streams (`--redis`, against a real `redis-server`).
#![cfg(feature = "csv")]

#[cfg(feature = "redis")]
mod broker_support;
mod examples_support;
mod process_support;

use std::process::{Command, Output};

use backtest_stream::sink::read_json_lines;
use backtest_stream::wire::{Event, EventKind};
use examples_support::example;

fn backtest(args: &[&str]) -> Output {
    Command::new(example("backtest"))
        .args(args)
        .output()
        .expect("run the backtest example")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn streams_a_whole_run_as_json_lines_that_read_back_as_events() {
    let output = backtest(&["--bars", "3000", "--id", "example-run", "--mode", "vanilla"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let envelopes: Vec<_> = read_json_lines(&output.stdout[..])
        .collect::<Result<_, _>>()
        .expect("every stdout line is an event");
    let kinds: Vec<EventKind> = envelopes.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds.first(), Some(&EventKind::BacktestStart));
    assert_eq!(kinds.last(), Some(&EventKind::BacktestComplete));
    assert!(kinds.contains(&EventKind::BacktestProgress));
    assert!(kinds.contains(&EventKind::LogEntry), "the fills are logged");
    for envelope in &envelopes {
        assert_eq!(
            envelope.event.backtest_id().map(|id| id.as_str()),
            Some("example-run")
        );
    }
    let Event::BacktestStart(start) = &*envelopes[0].event else {
        unreachable!()
    };
    assert_eq!(start.variant, "vanilla");
    // The crate's one set of defaults (the reference module's "Defaults").
    assert_eq!(
        (start.symbol.as_str(), start.timeframe.as_str()),
        ("SYNTH", "H1")
    );
    let Event::BacktestComplete(done) = &*envelopes.last().unwrap().event else {
        unreachable!()
    };
    let parameters = done.results.get("parameters").expect("parameters");
    assert_eq!(
        (
            &parameters["fast"],
            &parameters["slow"],
            &parameters["size"]
        ),
        (&10.into(), &30.into(), &10.0.into())
    );
    assert_eq!(parameters["periods_per_year"], 252.0);
    let trades = done.results.read_trades().unwrap().unwrap();
    assert_eq!(trades.len() as u64, done.total_trades);
    assert!(done.total_trades > 0);
    // Each trade's entry and exit fill is one log line.
    let fills = kinds.iter().filter(|k| **k == EventKind::LogEntry).count();
    assert_eq!(fills, 2 * trades.len());
    // The summary goes to stderr, naming the run.
    assert!(
        stderr(&output).contains("example-run"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_prints_the_options_and_exits_zero() {
    let output = backtest(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--data",
        "--fast",
        "--max-result-trades",
        "--ws",
        "--redis",
        "--no-stream",
    ] {
        assert!(text.contains(option), "{option} missing from: {text}");
    }
}

#[test]
fn bad_arguments_are_errors_that_name_the_option() {
    for (args, expected) in [
        (&["--fast", "x"][..], "--fast"),
        (&["--bars"][..], "--bars needs a value"),
        (&["--frobnicate", "1"][..], "unknown option --frobnicate"),
        (&["--linger", "5"][..], "--linger needs --ws"),
        (&["--fast", "0"][..], "fast"),
        (&["--size", "-1"][..], "size"),
        (
            &["--cash", "0"][..],
            "--cash: \"0\" is not a positive number",
        ),
        (&["--slippage", "-0.1"][..], "--slippage"),
        (&["--periods-per-year", "nan"][..], "--periods-per-year"),
        (&["--id", ""][..], "id"),
        (&["--redis-queue", "64"][..], "--redis-queue needs --redis"),
        (
            &["--redis", "redis://127.0.0.1:1", "--redis-queue", "3"][..],
            "--redis-queue: \"3\" is not a count of at least 4",
        ),
    ] {
        let output = backtest(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {expected:?} not in {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?}: no event for a bad run");
    }
}

#[test]
fn a_bad_csv_file_is_an_error_naming_the_file_the_line_and_the_column() {
    let dir = std::env::temp_dir().join(format!("backtest-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bars.csv");
    std::fs::write(
        &path,
        "timestamp,open,high,low,close,volume\n\
         2024-01-01T00:00:00Z,1,2,0.5,1.5,100\n\
         2024-01-01T01:00:00Z,1,2,zero,1.5,100\n",
    )
    .unwrap();
    let output = backtest(&["--data", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("bars.csv"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("low"), "{message}");

    // The path once, not twice.
    let missing = dir.join("missing.csv");
    let output = backtest(&["--data", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        stderr(&output).matches("missing.csv").count(),
        1,
        "{}",
        stderr(&output)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_data_is_refused_with_its_line_and_column_and_a_separator_is_named() {
    let dir = std::env::temp_dir().join(format!("backtest-example-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "negative.csv",
            "timestamp,open,high,low,close,volume\n2024-01-01,1,2,-0.5,1.5,100\n",
            "negative.csv: line 2, column `low`: -0.5 is not a positive price",
        ),
        (
            "inverted.csv",
            "timestamp,open,high,low,close,volume\n2024-01-01,1.5,1,2,1.5,100\n",
            "inverted.csv: line 2, column `high`: 1 is below low 2",
        ),
        (
            "semicolons.csv",
            "timestamp;open;high;low;close;volume\n2024-01-01;1;2;0.5;1.5;100\n",
            "semicolons.csv: line 1: the header is separated by ';', not by commas",
        ),
        (
            "short.csv",
            "timestamp,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5\n",
            "short.csv: line 2: malformed CSV: 5 fields where the header has 6",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = backtest(&["--data", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(3), "{name}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(expected),
            "{name}: {expected:?} not in {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{name}: no event for bad data");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_names_the_run_and_gives_its_timeframe_and_no_figure_reads_minus_zero() {
    let dir = std::env::temp_dir().join(format!("backtest-example-flat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One trade (SMA 1 over 2) that loses 0.0001 on 10,000: a return of -0.000001 %.
    let text = "timestamp,open,high,low,close,volume\n\
                2024-02-01,1.0,1.0,1.0,1.0,10\n\
                2024-02-02,1.0,1.0,1.0,1.0,10\n\
                2024-02-03,1.0,1.1,1.0,1.1,10\n\
                2024-02-04,1.1,1.1,1.0999,1.0999,10\n\
                2024-02-05,1.0999,1.0999,1.0999,1.0999,10\n\
                2024-02-06,1.0999,1.0999,1.0999,1.0999,10\n";
    let path = dir.join("GBPUSD_D1.csv");
    std::fs::write(&path, text).unwrap();
    let args = ["--fast", "1", "--slow", "2", "--size", "1"];
    let output = backtest(&[&["--data", path.to_str().unwrap()][..], &args].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let envelopes: Vec<_> = read_json_lines(&output.stdout[..])
        .collect::<Result<_, _>>()
        .expect("every stdout line is an event");
    let Event::BacktestStart(start) = &*envelopes[0].event else {
        unreachable!()
    };
    assert_eq!(
        (start.symbol.as_str(), start.timeframe.as_str()),
        ("GBPUSD_D1", "D1")
    );
    let summary = stderr(&output);
    assert!(summary.contains(" 1 trade,"), "{summary}");
    assert!(summary.contains("return 0.00 %"), "{summary}");
    assert!(!summary.contains("-0.0"), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_documents_the_exit_statuses() {
    let output = backtest(&["--help"]);
    let text = String::from_utf8_lossy(&output.stdout);
    for line in [
        "0  the run completed",
        "1  the run failed",
        "2  a bad command line",
        "3  the data",
    ] {
        assert!(text.contains(line), "{line:?} missing from: {text}");
    }
}

#[cfg(feature = "server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_ws_streams_the_run_and_keeps_stdout_json_lines() {
    use futures::{SinkExt, StreamExt};
    use std::time::{Duration, Instant};
    use tokio_tungstenite::tungstenite::Message;

    let mut command = Command::new(example("backtest"));
    command.args([
        "--ws",
        "127.0.0.1:0",
        "--linger",
        "5",
        "--bars",
        "1500",
        "--every",
        "50",
        "--bar-delay-us",
        "1000",
        "--id",
        "ws-run",
    ]);
    let mut backtest = process_support::Watched::spawn(command);

    // The first stderr line is the server's URL.
    let deadline = Instant::now() + process_support::WAIT;
    let url = loop {
        if let Some(line) = backtest.stderr().lines().next() {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no URL on stderr");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws"),
        "{url:?}"
    );

    let (mut client, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect to the backtest's server");
    client
        .send(Message::text(
            r#"{"action":"subscribe","topic":"backtest","snapshot":true}"#,
        ))
        .await
        .expect("subscribe");
    let mut received = Vec::new();
    let ws_final = loop {
        let message = tokio::time::timeout(process_support::WAIT, client.next())
            .await
            .expect("an event within the wait")
            .expect("connection open")
            .expect("valid frame");
        let Message::Text(text) = message else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(&text).expect("JSON frame");
        if frame["type"] == "subscription_confirmed" {
            continue;
        }
        let event = Event::from_json(&text).expect("an event frame");
        assert_eq!(event.backtest_id().map(|i| i.as_str()), Some("ws-run"));
        received.push(event.kind());
        if let Event::BacktestComplete(c) = event {
            break c.final_balance;
        }
    };
    assert_eq!(
        received[0],
        backtest_stream::wire::EventKind::BacktestStart,
        "{received:?}"
    );
    assert!(received.contains(&backtest_stream::wire::EventKind::BacktestProgress));

    let status = backtest.wait_exit().await;
    assert!(status.success(), "exit {status}\n{}", backtest.stderr());
    let stdout = backtest.stdout();
    let events: Vec<Event> = stdout
        .lines()
        .map(|line| Event::from_json(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert!(matches!(events.first(), Some(Event::BacktestStart(_))));
    let Some(Event::BacktestComplete(last)) = events.last() else {
        panic!("the last line is not backtest_complete: {stdout}");
    };
    assert_eq!(last.final_balance, ws_final);
    assert!(
        backtest.stderr().contains("serving ws://"),
        "{}",
        backtest.stderr()
    );
}

#[cfg(feature = "redis")]
#[test]
fn backtest_redis_writes_the_whole_run_to_the_stream_before_exiting() {
    use redis::Commands as _;

    let Some(redis) = broker_support::redis_server() else {
        return;
    };
    let url = redis.url();
    let output = backtest(&["--redis", &url, "--id", "redis-run", "--bars", "2000"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = read_json_lines(&output.stdout[..])
        .collect::<Result<Vec<_>, _>>()
        .expect("stdout stays JSON Lines");

    let reply: redis::streams::StreamRangeReply = redis
        .connection()
        .xrange_all("backtest-stream:{backtest}:stream")
        .expect("xrange");
    let mut events = Vec::new();
    for (seq, entry) in reply.ids.iter().enumerate() {
        assert_eq!(entry.id, format!("{}-0", seq + 1), "numbered in Redis");
        let value = entry.map.get("e").expect("an event entry");
        let json: String = redis::from_redis_value(value.clone()).expect("text");
        events.push(Event::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}")));
    }
    assert_eq!(events.len(), lines.len(), "the same events as stdout");
    assert!(matches!(events.first(), Some(Event::BacktestStart(_))));
    assert!(matches!(events.last(), Some(Event::BacktestComplete(_))));
    assert!(events.iter().any(|e| e.kind() == EventKind::LogEntry));
    assert!(
        events
            .iter()
            .all(|e| e.backtest_id().map(|id| id.as_str()) == Some("redis-run"))
    );
    let n = events.len();
    assert!(
        stderr(&output).contains(&format!("redis: {n} of {n} events written")),
        "{}",
        stderr(&output)
    );

    let output = backtest(&["--redis", "http://not-redis"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--redis"), "{}", stderr(&output));
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_while_redis_is_down_runs_through_and_its_end_arrives_later() {
    use redis::Commands as _;

    let Some(mut redis) = broker_support::redis_server() else {
        return;
    };
    redis.stop();
    let url = redis.url();
    let mut command = Command::new(example("backtest"));
    command.args(["--redis", &url, "--id", "offline", "--bars", "5000"]);
    command.args(["--every", "1", "--redis-queue", "64"]);
    let mut worker = process_support::Watched::spawn(command);
    // The whole run reaches stdout while Redis is still down: the backtest never
    // waited on it.
    worker.wait_for("\"backtest_complete\"").await;
    let printed = worker.stdout().lines().count();
    assert!(printed > 64, "more events than the queue holds: {printed}");

    redis.restart();
    let status = worker.wait_exit().await;
    let stderr = worker.stderr();
    assert!(status.success(), "{stderr}");
    // "redis: W of A events written (P progress and O other refused, M loss markers, ...)"
    let numbers: Vec<u64> = stderr
        .lines()
        .find(|line| line.starts_with("redis: "))
        .unwrap_or_else(|| panic!("no report in {stderr}"))
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [
        written,
        accepted,
        progress_refused,
        other_refused,
        markers,
        ..,
    ] = numbers[..]
    else {
        panic!("{stderr}")
    };
    assert_eq!(written, accepted, "{stderr}");
    assert!(
        progress_refused > 0,
        "the full queue dropped progress: {stderr}"
    );
    assert!(markers >= 1, "{stderr}");

    let mut entries = Vec::new();
    for topic in ["backtest", "logs"] {
        let key = format!("backtest-stream:{{{topic}}}:stream");
        let reply: redis::streams::StreamRangeReply =
            redis.connection().xrange_all(key).expect("xrange");
        entries.extend(reply.ids);
    }
    let mut events = Vec::new();
    let mut lost = 0;
    for entry in &entries {
        if let Some(value) = entry.map.get("e") {
            let json: String = redis::from_redis_value(value.clone()).expect("text");
            events.push(Event::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}")));
        } else {
            let value = entry.map.get("m").expect("an event or a loss marker");
            let json: String = redis::from_redis_value(value.clone()).expect("text");
            let marker: serde_json::Value = serde_json::from_str(&json).expect("JSON");
            lost += marker["missed"].as_u64().expect("a missed count");
        }
    }
    let kinds: Vec<EventKind> = events.iter().map(Event::kind).collect();
    assert_eq!(kinds.first(), Some(&EventKind::BacktestStart));
    let ends = kinds.iter().filter(|k| **k == EventKind::BacktestComplete);
    assert_eq!(ends.count(), 1, "the run's end, once");
    assert_eq!(events.len() as u64, written);
    assert_eq!(
        lost,
        progress_refused + other_refused,
        "every drop is announced in the streams: {stderr}"
    );
}

#[cfg(all(feature = "redis", unix))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_ends_its_run_with_an_error_in_redis() {
    use redis::Commands as _;

    let Some(redis) = broker_support::redis_server() else {
        return;
    };
    let url = redis.url();
    let mut command = Command::new(example("backtest"));
    command.args(["--redis", &url, "--id", "stopped", "--bars", "100000"]);
    command.args(["--bar-delay-us", "200"]);
    let mut worker = process_support::Watched::spawn(command);
    worker.wait_for("\"backtest_progress\"").await;
    let killed = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = worker.wait_exit().await;
    let stderr = worker.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("interrupted: cancelling the run"),
        "{stderr}"
    );

    let reply: redis::streams::StreamRangeReply = redis
        .connection()
        .xrange_all("backtest-stream:{backtest}:stream")
        .expect("xrange");
    let last = reply.ids.last().expect("entries");
    let json: String =
        redis::from_redis_value(last.map.get("e").expect("an event").clone()).expect("text");
    let event = Event::from_json(&json).expect("an event");
    assert_eq!(event.kind(), EventKind::BacktestError, "{json}");
    assert!(json.contains("cancel"), "{json}");
}
