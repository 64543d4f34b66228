//! The demo's REST API over real HTTP: the demo binary on 127.0.0.1:0.

mod demo_support;

use std::time::Duration;

use demo_support::Demo;
use serde_json::{Value, json};

const RUN: &str = "/api/v1/backtest/run";

#[test]
fn a_run_is_accepted_at_once_and_its_results_are_served() {
    let demo = Demo::start();
    let (status, body) = demo.post(
        RUN,
        r#"{"backtest_id":"api-run-1","bars":400,"bar_delay_us":0,"fast":5,"slow":20,"symbol":"GBPUSD"}"#,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["backtest_id"], "api-run-1");

    let done = demo.wait_finished("api-run-1", Duration::from_secs(60));
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["symbol"], "GBPUSD");
    assert_eq!(done["parameters"]["fast"], 5);
    let results = &done["results"];
    assert_eq!(results["backtest_id"], "api-run-1");
    assert_eq!(results["results"]["bars"], 400);
    assert!(results["final_balance"].is_f64(), "{results}");
    assert!(done["error"].is_null());

    let (status, list) = demo.get("/api/v1/backtests");
    assert_eq!(status, 200);
    let runs = list["backtests"].as_array().expect("a list of runs");
    let listed = runs
        .iter()
        .find(|r| r["backtest_id"] == "api-run-1")
        .expect("the run is listed");
    assert_eq!(listed["status"], "complete");
    assert_eq!(listed["final_balance"], results["final_balance"]);

    // The hub's figures as Prometheus text: every sample a name and a number.
    let (status, text) = demo_support::http(demo.addr, "GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    let samples: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name, value.parse().expect("a number"))
        })
        .collect();
    let events = samples
        .iter()
        .find(|(name, _)| *name == "backtest_stream_events_published_total")
        .map(|(_, v)| *v);
    assert!(events.is_some_and(|n| n >= 3.0), "{text}");
}

#[test]
fn an_empty_body_starts_a_run_with_the_defaults() {
    let demo = Demo::start();
    let (status, body) = demo.post(RUN, "");
    assert_eq!(status, 202, "{body}");
    let id = body["backtest_id"]
        .as_str()
        .expect("a generated id")
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let (status, run) = demo.get(&format!("/api/v1/backtest/{id}"));
    assert_eq!(status, 200);
    assert_eq!(run["data"]["bars"], 5_000);
    assert_eq!(run["bar_delay_us"], 3_000);
    assert_eq!(run["timeframe"], "H1");
    // The crate's one set of defaults (the reference module's "Defaults").
    assert_eq!(run["symbol"], "SYNTH");
    let parameters = &run["parameters"];
    assert_eq!(
        (
            &parameters["fast"],
            &parameters["slow"],
            &parameters["size"],
            &parameters["cash"]
        ),
        (&json!(10), &json!(30), &json!(10.0), &json!(10_000.0)),
        "{run}"
    );
}

#[test]
fn numbers_and_timeframes_are_read_as_a_person_means_them() {
    let demo = Demo::start();
    // Out of range, not "not a whole number"; a huge integer is not echoed as a float.
    for (body, field, expected) in [
        (
            r#"{"bars":1e12}"#,
            "bars",
            "must be from 1 to 2000000, not 1000000000000",
        ),
        (
            r#"{"bars":123456789012345678901234567890}"#,
            "bars",
            "must be from 1 to 2000000; the number given is far larger",
        ),
        (
            r#"{"bars":-3}"#,
            "bars",
            "must be from 1 to 2000000, not -3",
        ),
        (
            r#"{"bars":2.5}"#,
            "bars",
            "must be a whole number from 1 to 2000000, not 2.5",
        ),
        (
            r#"{"bars":"ten"}"#,
            "bars",
            "must be a whole number from 1 to 2000000, not a string",
        ),
        (
            r#"{"bars":100,"end_date":"2024-02-01"}"#,
            "end_date",
            "not both",
        ),
    ] {
        let (status, reply) = demo.post(RUN, body);
        assert_eq!(status, 400, "{body} -> {reply}");
        assert_eq!(reply["field"], field, "{body} -> {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(expected),
            "{body}: {expected:?} not in {error:?}"
        );
        assert!(!error.contains("e+"), "{body}: {error}");
    }
    // 100.0 is a whole number, and h4 is H4.
    let body = r#"{"backtest_id":"whole","bars":100.0,"bar_delay_us":0,"timeframe":"h4"}"#;
    let (status, reply) = demo.post(RUN, body);
    assert_eq!(status, 202, "{reply}");
    let done = demo.wait_finished("whole", Duration::from_secs(60));
    assert_eq!(done["data"]["bars"], 100, "{done}");
    assert_eq!(done["data"]["bars_used"], 100, "{done}");
    assert_eq!(done["timeframe"], "H4", "{done}");
    assert_eq!(done["results"]["results"]["bars"], 100, "{done}");
    // An end date alone: the bars that reach it (31 days of H1 bars from 2024-01-01).
    let body = r#"{"backtest_id":"dated","end_date":"2024-02-01","bar_delay_us":0}"#;
    assert_eq!(demo.post(RUN, body).0, 202);
    let done = demo.wait_finished("dated", Duration::from_secs(60));
    assert_eq!(done["data"]["bars"], 31 * 24, "{done}");
    assert_eq!(done["data"]["bars_used"], 31 * 24, "{done}");
}

#[test]
fn bad_requests_get_400_naming_the_field() {
    let demo = Demo::start();
    let cases: &[(&str, Option<&str>)] = &[
        (r#"{"bars":0}"#, Some("bars")),
        (r#"{"bars":"many"}"#, Some("bars")),
        (r#"{"bar_delay_us":-1}"#, Some("bar_delay_us")),
        (r#"{"fast":30,"slow":10}"#, Some("slow")),
        (r#"{"size":0}"#, Some("size")),
        (r#"{"cash":"lots"}"#, Some("cash")),
        (r#"{"timeframe":"W7"}"#, Some("timeframe")),
        (r#"{"start_date":"2024-13-01"}"#, Some("start_date")),
        (
            r#"{"start_date":"2024-02-01","end_date":"2024-01-01"}"#,
            Some("end_date"),
        ),
        (r#"{"backtest_id":"has space"}"#, Some("backtest_id")),
        (r#"{"symbol":42}"#, Some("symbol")),
        (r#"{"colour":"red"}"#, Some("colour")),
        (
            r#"{"data_path":"/definitely/not/here.csv"}"#,
            Some("data_path"),
        ),
        (r#"{"bars": 10"#, None),
        (r#"[1,2]"#, None),
    ];
    for (body, field) in cases {
        let (status, reply) = demo.post(RUN, body);
        assert_eq!(status, 400, "{body} -> {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{body}: no error message in {reply}");
        match field {
            Some(field) => assert_eq!(reply["field"], *field, "{body} -> {reply}"),
            None => assert!(reply.get("field").is_none(), "{body} -> {reply}"),
        }
    }
    let (_, reply) = demo.post(RUN, r#"{"bars": 10"#);
    assert!(
        reply["error"].as_str().unwrap_or_default().contains("JSON"),
        "{reply}"
    );
    let (_, reply) = demo.post(RUN, r#"{"colour":"red","flavour":1}"#);
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("colour") && error.contains("flavour"),
        "{reply}"
    );
    // Nothing was started.
    let (_, list) = demo.get("/api/v1/backtests");
    assert_eq!(list["backtests"], Value::Array(vec![]));
}

#[test]
fn a_duplicate_id_gets_409_and_an_unknown_id_404() {
    let demo = Demo::start();
    let body = r#"{"backtest_id":"twice","bars":200,"bar_delay_us":0}"#;
    assert_eq!(demo.post(RUN, body).0, 202);
    let (status, reply) = demo.post(RUN, body);
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["field"], "backtest_id");
    // Still refused once the first has finished.
    demo.wait_finished("twice", Duration::from_secs(60));
    assert_eq!(demo.post(RUN, body).0, 409);

    let (status, reply) = demo.get("/api/v1/backtest/never-started");
    assert_eq!(status, 404);
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("never-started")
    );
    let (status, _) = demo.get("/api/v1/nothing-here");
    assert_eq!(status, 404);
}

#[test]
fn runs_beyond_the_limit_get_429() {
    let demo = Demo::start();
    // The default limit is 8 concurrent runs; these take a minute each.
    let slow =
        |i: usize| format!(r#"{{"backtest_id":"slow-{i}","bars":60000,"bar_delay_us":1000}}"#);
    for i in 0..8 {
        let (status, reply) = demo.post(RUN, &slow(i));
        assert_eq!(status, 202, "run {i}: {reply}");
    }
    let (status, reply) = demo.post(RUN, &slow(8));
    assert_eq!(status, 429, "{reply}");
    assert!(reply["error"].as_str().unwrap_or_default().contains("8"));
    let (status, _) = demo.get("/api/v1/backtest/slow-8");
    assert_eq!(status, 404, "a refused run is not registered");
}

#[test]
fn the_dashboard_and_the_websocket_route_are_served() {
    let demo = Demo::start();
    let (status, page) = demo_support::http(demo.addr, "GET", "/", None);
    assert_eq!(status, 200);
    assert!(page.contains("id=\"run-form\""), "the dashboard page");
    // A plain GET on /ws is not a WebSocket handshake.
    let (status, _) = demo_support::http(demo.addr, "GET", "/ws", None);
    assert_eq!(status, 400);
    // The wrong method on an API path: JSON too.
    let (status, body) = demo.get("/api/v1/backtest/run");
    assert_eq!(status, 405, "{body}");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn a_page_of_another_site_cannot_open_the_stream() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    let demo = Demo::start();
    let url = format!("ws://{}/ws", demo.addr);
    let mut request = url.as_str().into_client_request().expect("a request");
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_static("http://evil.example"));
    // PROTOCOL.md, "Closing": refused by the origin check, the connection is closed
    // with 1008 before anything is read or sent (a page can read a close code, not an
    // HTTP status).
    let (mut refused, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade completes, then the close says why");
    match tokio::time::timeout(Duration::from_secs(10), refused.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            assert_eq!(u16::from(frame.code), 1008);
            assert_eq!(frame.reason.as_str(), "origin not allowed");
        }
        other => panic!("a cross-origin connection must be closed with 1008, got {other:?}"),
    }
    // The page's own origin is welcome.
    let mut request = url.as_str().into_client_request().expect("a request");
    let origin = HeaderValue::from_str(&demo.base).expect("an origin");
    request.headers_mut().insert("Origin", origin);
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn the_ws_route_streams_a_run_with_its_own_log_lines() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let demo = Demo::start();
    let url = format!("ws://{}/ws", demo.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the WebSocket handshake on /ws");
    ws.send(Message::text(
        r#"{"action":"subscribe","topic":"backtest"}"#,
    ))
    .await
    .expect("subscribe");
    let confirmed = next(&mut ws).await;
    assert_eq!(confirmed["type"], "subscription_confirmed", "{confirmed}");

    let (status, _) = demo.post(
        RUN,
        r#"{"backtest_id":"ws-run","bars":1500,"bar_delay_us":0}"#,
    );
    assert_eq!(status, 202);
    let mut kinds = Vec::new();
    let mut trade_lines = 0;
    loop {
        let frame = next(&mut ws).await;
        let kind = frame["type"].as_str().unwrap_or_default().to_owned();
        if kind == "log_entry" && frame["data"]["backtest_id"] == "ws-run" {
            if frame["data"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Trade executed")
            {
                trade_lines += 1;
            }
        } else if kind.starts_with("backtest_") {
            assert_eq!(frame["data"]["backtest_id"], "ws-run", "{frame}");
        }
        kinds.push(kind.clone());
        if kind == "backtest_complete" || kind == "backtest_error" {
            assert_eq!(kind, "backtest_complete", "{frame}");
            break;
        }
    }
    assert_eq!(
        kinds
            .iter()
            .find(|k| k.starts_with("backtest_"))
            .map(String::as_str),
        Some("backtest_start")
    );
    assert!(kinds.iter().any(|k| k == "backtest_progress"));
    assert!(
        trade_lines > 0,
        "the run's Trade executed lines arrive as its log entries: {kinds:?}"
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame, as JSON.
async fn next(ws: &mut Ws) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str::<Value>(&text).expect("JSON");
        }
    }
}

#[test]
fn stalled_and_slow_clients_are_cut_at_the_http_timeout_and_capped() {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    let demo = Demo::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &["--http-timeout", "1", "--max-connections", "16"],
    );
    // A slow body: the head is complete, the body never is.
    let mut slow = TcpStream::connect(demo.addr).expect("connect");
    let head = format!(
        "POST /api/v1/backtest/run HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"bars\":",
        demo.addr
    );
    slow.write_all(head.as_bytes()).expect("a partial body");
    // Half-sent request heads: more than the cap.
    let mut stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut stream = TcpStream::connect(demo.addr).expect("connect");
            stream
                .write_all(b"GET /api/v1/backtests HTTP/1.1\r\nHost: x\r\nAcc")
                .expect("a partial head");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2_500));
    // Every stalled connection was closed: refused over the cap, or cut at the timeout.
    for stream in &mut stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reply = String::new();
    let _ = slow.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // And the API serves again.
    let (status, body) = demo.get("/api/v1/backtests");
    assert_eq!(status, 200, "{body}");
}
