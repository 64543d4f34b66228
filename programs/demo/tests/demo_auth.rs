//! The demo with bearer tokens (issue 14, item 5), over real sockets with tokens signed
//! in the test and real secret and key files: the REST rules (401, 403, ownership, the
//! filtered listing, the CSRF rules still in force), the printed development token,
//! the start-up errors of `--auth-secret-file`, and a non-loopback address with
//! authentication. (The WebSocket: `demo_auth_ws.rs`.)

mod demo_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use demo_support::tokens::{self, TempDir, admin, claims, hs256};
use demo_support::{Demo, Reply, demo_binary, request};
use serde_json::{Value, json};

const RUN: &str = "/api/v1/backtest/run";
const LIST: &str = "/api/v1/backtests";

/// The demo on 127.0.0.1:0 with the tests' secret (and more arguments).
fn demo_with_secret(dir: &TempDir, more: &[&str]) -> Demo {
    let secret = dir.secret_file();
    let mut args = vec!["--addr", "127.0.0.1:0", "--auth-secret-file", &secret];
    args.extend_from_slice(more);
    Demo::start_args(&args)
}

fn error_of(reply: &Reply) -> String {
    reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A run of about `seconds` (paced), started with `token`.
fn start_slow(demo: &Demo, token: &str, id: &str, seconds: u64) -> Reply {
    let body = json!({"backtest_id": id, "bars": seconds * 200, "bar_delay_us": 5_000});
    demo.call("POST", RUN, Some(token), &body.to_string())
}

fn listed(demo: &Demo, token: &str) -> Vec<String> {
    let reply = demo.call("GET", LIST, Some(token), "");
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["backtests"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["backtest_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn without_a_valid_token_every_call_gets_401_with_a_bearer_challenge() {
    let dir = TempDir::new("401");
    let demo = demo_with_secret(&dir, &[]);
    let calls = [
        ("GET", LIST),
        ("GET", "/api/v1/backtest/x"),
        ("DELETE", "/api/v1/backtest/x"),
        ("POST", RUN),
    ];
    let expired = tokens::expired("alice");
    let forged = tokens::forged("alice");
    let cases: [(Option<&str>, &str, &str); 4] = [
        (None, "requires a token", "Bearer"),
        (Some(&forged), "bad signature", "invalid_token"),
        (Some(&expired), "token expired", "invalid_token"),
        (Some("not-a-jwt"), "invalid token", "invalid_token"),
    ];
    for (method, path) in calls {
        for (token, message, challenge) in cases {
            let reply = demo.call(method, path, token, "{}");
            assert_eq!(reply.status, 401, "{method} {path} {token:?}: {reply:?}");
            assert!(error_of(&reply).contains(message), "{reply:?}");
            let header = reply.header("www-authenticate").unwrap_or_default();
            assert!(
                header.starts_with("Bearer") && header.contains(challenge),
                "{method} {path} {token:?}: {header}"
            );
        }
    }
    // Another scheme is no bearer token.
    let host = demo.addr.to_string();
    let basic = [("Host", host.as_str()), ("Authorization", "Basic YTpi")];
    let reply = request(demo.addr, "GET", LIST, &basic, b"");
    assert_eq!(reply.status, 401, "{reply:?}");
    // The page and its files need no token (the token is in the URL's fragment).
    assert_eq!(demo.call("GET", "/", None, "").status, 200);
    assert_eq!(demo.call("GET", "/dashboard.js", None, "").status, 200);
}

#[test]
fn scopes_and_owners_decide_who_starts_sees_and_cancels() {
    let dir = TempDir::new("owners");
    let demo = demo_with_secret(&dir, &[]);
    let alice = hs256(&claims("alice", Value::Null, Value::Null, json!("start")));
    let alice_cancel = hs256(&claims("alice", Value::Null, Value::Null, json!("cancel")));
    let bob = hs256(&claims(
        "bob",
        Value::Null,
        Value::Null,
        json!("start cancel"),
    ));
    let viewer = hs256(&claims("viewer", json!([]), json!([]), Value::Null));
    let ops = admin("ops");
    // Starting needs scope `start`.
    let reply = start_slow(&demo, &viewer, "v1", 1);
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(error_of(&reply).contains("`start`"), "{reply:?}");
    assert!(reply.header("www-authenticate").is_none());
    assert_eq!(start_slow(&demo, &alice, "alice-run", 60).status, 202);
    assert_eq!(start_slow(&demo, &bob, "bob-run", 60).status, 202);
    // Each sees its own run only; a token with every topic sees both.
    assert_eq!(listed(&demo, &alice), ["alice-run"]);
    assert_eq!(listed(&demo, &bob), ["bob-run"]);
    assert!(listed(&demo, &viewer).is_empty());
    assert_eq!(listed(&demo, &ops), ["alice-run", "bob-run"]);
    let get = |token: &str, id: &str| {
        demo.call("GET", &format!("/api/v1/backtest/{id}"), Some(token), "")
    };
    assert_eq!(get(&alice, "alice-run").status, 200);
    let refused = get(&bob, "alice-run");
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(error_of(&refused).contains("alice-run"), "{refused:?}");
    // Unknown ids: 404 for a token that sees every run, 403 for the others (which
    // cannot tell an unknown run from another subject's).
    assert_eq!(get(&ops, "nobody").status, 404);
    assert_eq!(get(&alice, "nobody").status, 403);
    // Cancelling needs scope `cancel` and the run visible.
    let delete = |token: &str, id: &str| {
        demo.call("DELETE", &format!("/api/v1/backtest/{id}"), Some(token), "")
    };
    let reply = delete(&alice, "alice-run");
    assert_eq!(reply.status, 403, "no cancel scope: {reply:?}");
    assert!(error_of(&reply).contains("`cancel`"), "{reply:?}");
    let reply = delete(&bob, "alice-run");
    assert_eq!(reply.status, 403, "another subject's run: {reply:?}");
    // The owner (another token of the same sub) may cancel it.
    assert_eq!(delete(&alice_cancel, "alice-run").status, 202);
    let done = demo.wait_finished_as("alice-run", Some(&alice), Duration::from_secs(30));
    assert_eq!(done["cancelled"], true, "{done}");
    // A token naming the run in `runs` sees it (and may cancel it with the scope).
    let carol = hs256(&claims(
        "carol",
        Value::Null,
        json!(["bob-run"]),
        json!("cancel"),
    ));
    assert_eq!(listed(&demo, &carol), ["bob-run"]);
    assert_eq!(get(&carol, "bob-run").status, 200);
    assert_eq!(delete(&carol, "bob-run").status, 202);
    // Finished: 409 for whoever may see it.
    demo.wait_finished_as("bob-run", Some(&ops), Duration::from_secs(30));
    assert_eq!(delete(&ops, "bob-run").status, 409);
}

#[test]
fn the_csrf_rules_still_hold_with_a_valid_token() {
    let dir = TempDir::new("csrf");
    let demo = demo_with_secret(&dir, &[]);
    let token = admin("alice");
    let bearer = format!("Bearer {token}");
    let host = demo.addr.to_string();
    let body = br#"{"bars":100,"bar_delay_us":0}"#;
    let base = [("Host", host.as_str()), ("Authorization", bearer.as_str())];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut headers = base.to_vec();
        headers.extend_from_slice(extra);
        request(demo.addr, "POST", RUN, &headers, body)
    };
    let foreign = with(&[
        ("Content-Type", "application/json"),
        ("Origin", "http://evil.example"),
    ]);
    assert_eq!(foreign.status, 403, "{foreign:?}");
    assert!(error_of(&foreign).contains("origin"), "{foreign:?}");
    let form = with(&[("Content-Type", "text/plain")]);
    assert_eq!(form.status, 415, "{form:?}");
    let rebound = [
        ("Host", "evil.example"),
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let reply = request(demo.addr, "POST", RUN, &rebound, body);
    assert_eq!(reply.status, 421, "{reply:?}");
    // The same request from this server's own page is accepted.
    let origin = format!("http://{host}");
    let mut headers = base.to_vec();
    headers.extend([
        ("Content-Type", "application/json"),
        ("Origin", origin.as_str()),
    ]);
    let ok = request(demo.addr, "POST", RUN, &headers, body);
    assert_eq!(ok.status, 202, "{ok:?}");
}

#[test]
fn the_printed_url_carries_a_working_development_token() {
    let dir = TempDir::new("printed");
    let secret = dir.secret_file();
    // The secret's file from the environment variable, too.
    let demo = Demo::start_env(
        &["--addr", "127.0.0.1:0"],
        &[("BACKTEST_STREAM_AUTH_SECRET_FILE", &secret)],
    );
    let token = demo.token.clone().expect("a #token= in the first line");
    let claims = tokens::payload(&token);
    assert_eq!(claims["sub"], "dev");
    assert_eq!(claims["topics"], "*");
    assert_eq!(claims["scope"], "start cancel");
    let lifetime = claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0);
    assert_eq!(lifetime, 12 * 3600, "{claims}");
    let reply = start_slow(&demo, &token, "dev-run", 60);
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(listed(&demo, &token), ["dev-run"]);
    let cancel = demo.call("DELETE", "/api/v1/backtest/dev-run", Some(&token), "");
    assert_eq!(cancel.status, 202, "{cancel:?}");
    // A token signed with the secret without its file's trailing newline is accepted.
    assert_eq!(listed(&demo, &admin("someone")), ["dev-run"]);
}

/// The demo's exit status and stderr for these arguments (it must not start).
fn refused_start(args: &[&str]) -> (i32, String) {
    let output = Command::new(demo_binary())
        .args(args)
        .env("RUST_LOG", "off")
        .env_remove("BACKTEST_STREAM_AUTH_SECRET_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    assert!(output.stdout.is_empty(), "it must not serve: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn audience_and_issuer_are_required_when_configured_and_in_the_printed_token() {
    let dir = TempDir::new("aud");
    let demo = demo_with_secret(
        &dir,
        &["--auth-audience", "dashboard", "--auth-issuer", "ops"],
    );
    let printed = demo.token.clone().expect("a development token");
    let printed_claims = tokens::payload(&printed);
    assert_eq!(
        (&printed_claims["aud"], &printed_claims["iss"]),
        (&json!("dashboard"), &json!("ops"))
    );
    assert_eq!(demo.call("GET", LIST, Some(&printed), "").status, 200);
    let mut good = claims("alice", json!("*"), Value::Null, Value::Null);
    good["aud"] = json!("dashboard");
    good["iss"] = json!("ops");
    assert_eq!(demo.call("GET", LIST, Some(&hs256(&good)), "").status, 200);
    let mut other = good.clone();
    other["aud"] = json!("elsewhere");
    let reply = demo.call("GET", LIST, Some(&hs256(&other)), "");
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(error_of(&reply).contains("wrong audience"), "{reply:?}");
    let mut other = good;
    other["iss"] = json!("someone");
    let reply = demo.call("GET", LIST, Some(&hs256(&other)), "");
    assert!(error_of(&reply).contains("wrong issuer"), "{reply:?}");
    // Without `aud` or `iss` at all (the demo checks it: the crate's verifier does not).
    let mut no_aud = claims("alice", json!("*"), Value::Null, Value::Null);
    no_aud["iss"] = json!("ops");
    let reply = demo.call("GET", LIST, Some(&hs256(&no_aud)), "");
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(error_of(&reply).contains("\"aud\""), "{reply:?}");
    let reply = demo.call("GET", LIST, Some(&admin("alice")), "");
    assert_eq!(reply.status, 401, "{reply:?}");
}

#[test]
fn a_bad_secret_or_key_file_is_a_clear_start_up_error() {
    let dir = TempDir::new("bad-files");
    let empty = dir.file("empty", b"");
    let newline = dir.file("newline", b"\n");
    let missing = dir.path().join("missing").to_str().unwrap_or("").to_owned();
    let folder = dir.path().to_str().unwrap_or("").to_owned();
    let not_pem = dir.file("not.pem", b"hello");
    let cases = [
        (
            vec!["--auth-secret-file", empty.as_str()],
            "is empty",
            empty.clone(),
        ),
        (
            vec!["--auth-secret-file", newline.as_str()],
            "is empty",
            newline.clone(),
        ),
        (
            vec!["--auth-secret-file", missing.as_str()],
            "cannot read",
            missing.clone(),
        ),
        (
            vec!["--auth-secret-file", folder.as_str()],
            "not a regular file",
            folder.clone(),
        ),
        (
            vec!["--auth-public-key", not_pem.as_str()],
            "public key",
            not_pem.clone(),
        ),
    ];
    for (args, message, path) in cases {
        let (code, stderr) = refused_start(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(message) && stderr.contains(&path),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(args[0]), "names the option: {stderr}");
    }
    let (code, stderr) = refused_start(&["--auth-secret-file"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--auth-secret-file needs a file"),
        "{stderr}"
    );
    let (code, stderr) = refused_start(&["--auth-audience", "dashboard"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("need a key"), "{stderr}");
}

#[test]
fn with_authentication_a_non_loopback_address_is_allowed() {
    let dir = TempDir::new("exposed");
    let secret = dir.secret_file();
    let demo = Demo::start_args(&["--addr", "0.0.0.0:0", "--auth-secret-file", &secret]);
    let host = format!("localhost:{}", demo.addr.port());
    let token = demo.token.clone().expect("a development token");
    let bearer = format!("Bearer {token}");
    let anonymous = request(demo.addr, "GET", LIST, &[("Host", &host)], b"");
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let headers = [("Host", host.as_str()), ("Authorization", bearer.as_str())];
    let reply = request(demo.addr, "GET", LIST, &headers, b"");
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn with_only_a_public_key_the_demo_prints_no_token_and_accepts_the_owners() {
    let mut child = Command::new(demo_binary())
        .args([
            "--addr",
            "127.0.0.1:0",
            "--auth-public-key",
            tokens::EC_PUBLIC_PATH,
        ])
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(4)
        .map(|l| l.expect("a line"))
        .collect();
    let url = lines[0]
        .strip_prefix("Dashboard: ")
        .expect("the first line");
    assert!(!url.contains("#token"), "{lines:?}");
    assert!(lines[3].contains("key's owner"), "{lines:?}");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an address");
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let get = |token: &str| {
        let bearer = format!("Bearer {token}");
        let headers = [("Host", host.as_str()), ("Authorization", bearer.as_str())];
        request(addr, "GET", LIST, &headers, b"").status
    };
    let everything = claims("owner", json!("*"), Value::Null, Value::Null);
    assert_eq!(get(&tokens::es256(&everything)), 200);
    // An HS256 token cannot pass (no secret configured).
    assert_eq!(get(&hs256(&everything)), 401);
    let _ = child.kill();
    let _ = child.wait();
}
