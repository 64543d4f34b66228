//! The demo's HTTP is safe by default (issue 14, the parts without authentication;
//! issue 12), over real sockets on 127.0.0.1: POST hygiene and JSON errors, the `Host`
//! allow-list and the page's headers, loopback-only binding, a closed stdout, and
//! `--addr localhost:PORT`.

mod demo_support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use demo_support::{Demo, demo_binary, request};

const RUN: &str = "/api/v1/backtest/run";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

// ------------------------------------------------------------------ 4. POST hygiene

#[test]
fn posts_need_json_and_this_origin_and_every_error_is_json() {
    let demo = Demo::start_with(loopback(), &["--max-runs", "1"]);
    let host = demo.addr.to_string();
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("Host", host.as_str())];
        all.extend_from_slice(headers);
        request(demo.addr, "POST", RUN, &all, body.as_bytes())
    };
    let slow = r#"{"bars":100000,"bar_delay_us":10000}"#;

    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("Content-Type", c))
            .into_iter()
            .collect();
        let reply = post(&headers, slow);
        assert_eq!(reply.status, 415, "{content_type:?}: {reply:?}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("application/json")
        );
    }
    let foreign = [
        ("Content-Type", "application/json"),
        ("Origin", "http://evil.example"),
    ];
    let reply = post(&foreign, slow);
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    let other_port = format!("http://127.0.0.1:{}", demo.addr.port() + 1);
    let reply = post(
        &[
            ("Content-Type", "application/json"),
            ("Origin", &other_port),
        ],
        slow,
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = post(
        &[("Content-Type", "application/json"), ("Origin", "null")],
        slow,
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    // A foreign page cannot cancel either.
    let reply = request(
        demo.addr,
        "DELETE",
        "/api/v1/backtest/x",
        &[("Host", &host), ("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(reply.status, 403, "{reply:?}");

    // The page's own origin, with a charset: accepted.
    let own = format!("http://{host}");
    let json_utf8 = ("Content-Type", "application/json; charset=utf-8");
    let reply = post(&[json_utf8, ("Origin", &own)], slow);
    assert_eq!(reply.status, 202, "{reply:?}");
    // 429 says when to come back.
    let reply = post(&[json_utf8], slow);
    assert_eq!(reply.status, 429, "{reply:?}");
    let retry: u64 = reply
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry > 0);
    assert!(reply.json()["error"].is_string());

    // Oversized body: 413, JSON.
    let huge = format!(r#"{{"symbol":"{}"}}"#, "x".repeat(70 * 1024));
    let reply = post(&[json_utf8], &huge);
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.json()["error"].is_string());
    // Unknown paths and methods: JSON too, inside /api and out.
    for (method, path, status) in [
        ("GET", "/nothing-here", 404),
        ("GET", "/api/v1/nothing", 404),
        ("PUT", "/api/v1/backtests", 405),
        ("POST", "/", 405),
        ("DELETE", "/api/v1/backtests", 405),
    ] {
        let reply = request(
            demo.addr,
            method,
            path,
            &[("Host", &host), json_utf8],
            b"{}",
        );
        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
        assert!(
            reply.json()["error"].is_string(),
            "{method} {path}: {reply:?}"
        );
    }
}

// ------------------------------------------------------------------ 5. Host, page headers

#[tokio::test]
async fn only_the_served_host_names_are_answered_and_the_page_has_a_strict_policy() {
    let demo = Demo::start_with(loopback(), &["--allowed-host", "demo.test"]);
    let port = demo.addr.port();
    let get = |path: &str, host: &str| request(demo.addr, "GET", path, &[("Host", host)], b"");
    let rebound = format!("evil.example:{port}");
    for path in ["/", "/api/v1/backtests", "/dashboard.js", "/ws"] {
        let reply = get(path, &rebound);
        assert_eq!(reply.status, 421, "{path}: {reply:?}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("--allowed-host")
        );
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("demo.test:{port}"),
        "demo.test".to_owned(),
    ] {
        assert_eq!(get("/api/v1/backtests", &host).status, 200, "{host}");
    }
    assert_eq!(get("/", &format!("localhost:{}", port + 1)).status, 421);

    // A WebSocket upgrade with a rebound Host is refused before the upgrade.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut upgrade = format!("ws://{}/ws", demo.addr)
        .into_client_request()
        .unwrap();
    upgrade
        .headers_mut()
        .insert("Host", HeaderValue::from_str(&rebound).unwrap());
    match tokio_tungstenite::connect_async(upgrade).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 421)
        }
        other => panic!("the upgrade must be refused with 421: {other:?}"),
    }
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{}/ws", demo.addr))
            .await
            .is_ok()
    );

    // The page: a policy without inline script, no framing; its files from 'self'.
    let page = get("/", &format!("localhost:{port}"));
    assert_eq!(page.status, 200);
    let csp = page.header("Content-Security-Policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(csp.contains(&format!("ws://localhost:{port}")), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
    assert!(
        !page.body.contains("<script>") && !page.body.contains("<style"),
        "no inline code"
    );
    assert!(
        page.body
            .contains(r#"<script type="module" src="/dashboard.js">"#)
    );
    // The entry module and every module beside it (src/dashboard/*.js): JavaScript, no
    // sniffing, the same Host check as the page, each under 600 lines.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboard");
    let mut modules: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".js"))
        .map(|name| format!("/dashboard/{name}"))
        .collect();
    modules.sort();
    assert!(modules.len() >= 4, "the script's parts: {modules:?}");
    for path in std::iter::once("/dashboard.js".to_owned()).chain(modules) {
        let js = get(&path, &format!("localhost:{port}"));
        assert_eq!(js.status, 200, "{path}: {js:?}");
        assert!(
            js.header("Content-Type")
                .unwrap()
                .starts_with("text/javascript"),
            "{path}"
        );
        assert_eq!(
            js.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(js.body.lines().count() <= 600, "{path}: under 600 lines");
        assert_eq!(get(&path, &rebound).status, 421, "{path}");
    }
    let cards = get("/dashboard/cards.js", &format!("localhost:{port}"));
    assert!(cards.body.contains("cancelRun"));
    let css = get("/dashboard.css", &format!("localhost:{port}"));
    assert!(css.header("Content-Type").unwrap().starts_with("text/css"));
}

// ------------------------------------------------------------------ 6. loopback only

#[test]
fn a_non_loopback_address_needs_insecure() {
    let output = Command::new(demo_binary())
        .args(["--addr", "0.0.0.0:0"])
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--insecure") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing served");

    let demo = Demo::start_args(&["--addr", "0.0.0.0:0", "--insecure"]);
    let reply = request(
        demo.addr,
        "GET",
        "/api/v1/backtests",
        &[("Host", &format!("localhost:{}", demo.addr.port()))],
        b"",
    );
    assert_eq!(reply.status, 200, "{reply:?}");
}

// ------------------------------------------------------------------ 7. stdout, --addr names

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    // A free port, then the demo on it with its stdout closed before it writes.
    let port = std::net::TcpListener::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(demo_binary())
        .args(["--addr", &addr.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the demo never listened");
        assert!(child.try_wait().unwrap().is_none(), "the demo exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = addr.to_string();
    let headers = [
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = br#"{"backtest_id":"piped","bars":300,"bar_delay_us":0}"#;
    assert_eq!(request(addr, "POST", RUN, &headers, body).status, 202);
    std::thread::sleep(Duration::from_millis(500));
    let reply = request(addr, "GET", "/api/v1/backtest/piped", &headers, b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the demo is still serving"
    );
    let _ = child.kill();
    let output = child.wait_with_output().expect("the demo's stderr");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `demo --help | head -1` too.
    let mut help = Command::new(demo_binary())
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo --help");
    drop(help.stdout.take());
    let output = help.wait_with_output().expect("demo --help");
    assert!(output.status.success(), "{output:?}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

#[test]
fn addr_accepts_a_host_name() {
    let demo = Demo::start_args(&["--addr", "localhost:0"]);
    assert!(demo.addr.ip().is_loopback(), "{}", demo.addr);
    let host = format!("localhost:{}", demo.addr.port());
    let reply = request(
        demo.addr,
        "GET",
        "/api/v1/backtests",
        &[("Host", &host)],
        b"",
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    // A name that does not resolve: a clear error, no panic.
    let output = Command::new(demo_binary())
        .args(["--addr", "no-such-host.invalid:8000"])
        .output()
        .expect("run the demo");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot resolve") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
