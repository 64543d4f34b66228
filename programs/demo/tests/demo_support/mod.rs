//! Shared helpers for the demo tests: the real demo binary on 127.0.0.1:0 and a tiny
//! HTTP/1.1 client on a real TCP socket.
#![allow(dead_code)]

pub mod tokens;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The demo's binary, built by cargo for this test.
pub fn demo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_demo"))
}

/// The demo, running; killed when dropped.
pub struct Demo {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    pub addr: SocketAddr,
    /// The development token of the first line's URL (`#token=`), with an HS256 secret.
    pub token: Option<String>,
}

impl Demo {
    /// Starts the demo on a free port and reads its URL from the first stdout line.
    pub fn start() -> Demo {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts the demo on `addr` (port 0: a free one).
    pub fn start_at(addr: SocketAddr) -> Demo {
        Self::start_with(addr, &[])
    }

    /// Starts the demo on `addr` with more command-line arguments.
    pub fn start_with(addr: SocketAddr, args: &[&str]) -> Demo {
        let addr = addr.to_string();
        let mut all = vec!["--addr", addr.as_str()];
        all.extend_from_slice(args);
        Self::start_args(&all)
    }

    /// Starts the demo with exactly these arguments (`--addr` among them).
    pub fn start_args(args: &[&str]) -> Demo {
        Self::start_env(args, &[])
    }

    /// Starts the demo with exactly these arguments and environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Demo {
        let mut child = Command::new(demo_binary())
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("BACKTEST_STREAM_ADDR")
            .env_remove("BACKTEST_STREAM_DATA_DIR")
            .env_remove("BACKTEST_STREAM_AUTH_SECRET_FILE")
            .env_remove("BACKTEST_STREAM_REDIS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the demo binary");
        let stdout = child.stdout.take().expect("the demo's stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so that the demo never blocks on a full pipe.
            for _ in lines {}
        });
        let first = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the demo printed no URL within 30 s");
            }
        };
        let url = first
            .strip_prefix("Dashboard: ")
            .unwrap_or_else(|| panic!("unexpected first line from the demo: {first:?}"));
        let (url, token) = match url.split_once("#token=") {
            Some((url, token)) => (url, Some(token.to_owned())),
            None => (url, None),
        };
        let base = url.trim_end_matches('/').to_owned();
        let addr = base
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Demo {
            child,
            base,
            addr,
            token,
        }
    }

    /// `method path` with `Authorization: Bearer token` (none: no header) and a JSON
    /// body → the reply.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
        let host = self.addr.to_string();
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("Host", host.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer));
        }
        request(self.addr, method, path, &headers, body.as_bytes())
    }

    /// `GET path` → (status, JSON body).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(self.addr, "GET", path, None);
        (status, json(&body))
    }

    /// `POST path` with `body` → (status, JSON body).
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (status, body) = http(self.addr, "POST", path, Some(body));
        (status, json(&body))
    }

    /// `DELETE path` → (status, JSON body).
    pub fn delete(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(self.addr, "DELETE", path, None);
        (status, json(&body))
    }

    /// Polls `GET /api/v1/backtest/{id}` until the run is no longer running.
    pub fn wait_finished(&self, id: &str, timeout: Duration) -> Value {
        self.wait_finished_as(id, None, timeout)
    }

    /// [`wait_finished`](Self::wait_finished) with a bearer token.
    pub fn wait_finished_as(&self, id: &str, token: Option<&str>, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let reply = self.call("GET", &format!("/api/v1/backtest/{id}"), token, "");
            let (status, body) = (reply.status, reply.json());
            assert_eq!(status, 200, "GET {id}: {body}");
            if body["status"] != "running" {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {id} still running after {timeout:?}: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let host = addr.to_string();
    let headers = [
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
    ];
    let reply = request(addr, method, path, &headers, body.unwrap_or("").as_bytes());
    (reply.status, reply.body)
}

/// An answer: status, head and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// A header's value (the first).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(&name).then(|| v.trim())
        })
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        json(&self.body)
    }
}

/// One HTTP/1.1 request with exactly these headers (plus `Connection: close` and
/// `Content-Length`), on a real socket.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect to the demo");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream
        .write_all(head.as_bytes())
        .expect("send the request head");
    // A refused request may be answered (and closed) before its body is read.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8(response).expect("a UTF-8 response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this client reads only length-delimited bodies: {head}"
    );
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}
