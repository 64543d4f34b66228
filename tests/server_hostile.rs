//! Hostile clients over raw sockets: each attack leaves the server up, the other clients
//! served, and memory bounded. Real sockets on 127.0.0.1.
#![cfg(feature = "server")]

mod server_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use backtest_stream::server::ServerConfig;
use backtest_stream::wire::Topic;
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A client frame (masked, FIN set) with `opcode` and `payload`.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A WebSocket connection made by hand, with a receive buffer of `recv_buffer` bytes.
async fn raw_client(addr: SocketAddr, recv_buffer: u32) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(recv_buffer).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("upgrade request");
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream
            .read_exact(&mut byte)
            .await
            .expect("upgrade response");
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{response:?}");
    stream
}

/// The process's resident memory, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A normal client still gets a subscription and a fresh event within the wait.
async fn still_served(server: &TestServer, run: &str) {
    let mut client = server.connect().await;
    subscribe_topic(&mut client, "backtest").await;
    server.publish(Topic::BACKTEST, start(run));
    let frame = recv(&mut client).await;
    assert_eq!(frame["data"]["backtest_id"], run, "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_from_a_client_that_never_reads_do_not_grow_memory_and_it_is_dropped() {
    let server =
        TestServer::start(ServerConfig::default().write_stall_timeout(Duration::from_secs(1)))
            .await;
    let mut flooder = raw_client(server.addr, 4096).await;
    let ping = client_frame(0x9, &[b'p'; 125]);
    let burst: Vec<u8> = ping.repeat(256);
    let before = rss_bytes();
    let started = Instant::now();
    let mut sent = 0u64;
    // Up to ~64 MB of pings (500,000): the server must stop it long before.
    while sent < 500_000 && started.elapsed() < Duration::from_secs(30) {
        match tokio::time::timeout(Duration::from_secs(2), flooder.write_all(&burst)).await {
            Ok(Ok(())) => sent += 256,
            // Refused (closed) or no longer read: the server gave up on it.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    server
        .wait_stats(|s| s.connection_events.dropped_write_stall == 1 && s.connections == 0)
        .await;
    let grown = rss_bytes().saturating_sub(before);
    // Unbounded, 500,000 queued pongs would hold over 60 MB.
    assert!(
        grown < 24 << 20,
        "memory grew by {grown} bytes after {sent} pings"
    );
    still_served(&server, "after-pings").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_flood_does_not_freeze_the_hub_for_the_others() {
    let server = TestServer::start(ServerConfig::default()).await;
    // Flooders hold 64 topics each, then send subscribe/unsubscribe without reading.
    let mut flooders = Vec::new();
    for _ in 0..5 {
        let mut flooder = raw_client(server.addr, 4096).await;
        let mut hold = Vec::new();
        for topic in 0..64 {
            let text = format!(r#"{{"action":"subscribe","topic":"t{topic}"}}"#);
            hold.extend(client_frame(0x1, text.as_bytes()));
        }
        flooder.write_all(&hold).await.expect("subscribe");
        flooders.push(flooder);
    }
    let churn: Vec<u8> = (0..200)
        .flat_map(|i| {
            let action = if i % 2 == 0 {
                "unsubscribe"
            } else {
                "subscribe"
            };
            let text = format!(r#"{{"action":"{action}","topic":"t{}"}}"#, i % 64);
            client_frame(0x1, text.as_bytes())
        })
        .collect();
    let flooding: Vec<_> = flooders
        .into_iter()
        .map(|mut flooder| {
            let churn = churn.clone();
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until {
                    let write = flooder.write_all(&churn);
                    match tokio::time::timeout(Duration::from_millis(500), write).await {
                        Ok(Ok(())) => {}
                        // Not read any more (paused) or closed: keep the pressure on.
                        Ok(Err(_)) => break,
                        Err(_) => continue,
                    }
                }
                flooder
            })
        })
        .collect();
    // Meanwhile, a normal client subscribes and gets its events promptly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    still_served(&server, "during-flood").await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "a subscription and an event took {:?} during the flood",
        asked.elapsed()
    );
    for flooding in flooding {
        drop(flooding.await.expect("flooder"));
    }
    server
        .wait_stats(|s| s.connections == 0 && s.subscriptions.is_empty())
        .await;
    still_served(&server, "after-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_upgrade_requests_are_cut_at_the_handshake_timeout() {
    let server =
        TestServer::start(ServerConfig::default().handshake_timeout(Duration::from_millis(500)))
            .await;
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
            .await
            .expect("a partial request");
        stalled.push(stream);
    }
    still_served(&server, "beside-stalled").await;
    // After the timeout every stalled socket is closed by the server.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for mut stream in stalled {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a stalled upgrade request is closed: {read:?}"
        );
    }
    assert_eq!(server.hub.stats().connections, 0);
}

/// A frame with the given first byte (FIN, RSV and opcode bits) and raw header bytes.
fn raw_frame(first: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame(first & 0x0f, payload);
    frame[0] = first;
    if !masked {
        // Drop the mask bit and key; send the payload as it is.
        let header_len = frame.len() - payload.len() - 4;
        let mut plain = frame[..header_len].to_vec();
        plain[1] &= 0x7f;
        plain.extend_from_slice(payload);
        return plain;
    }
    frame
}

/// Sends `bytes` on a fresh connection; what the server answered, and whether it ended
/// the connection (EOF or reset) within 3 s.
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = raw_client(addr, 64 * 1024).await;
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (answer, true),
            Err(_) => return (answer, false),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_end_only_their_own_connection() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut watcher = server.connect().await;
    subscribe_topic(&mut watcher, "backtest").await;
    let subscribe = br#"{"action":"subscribe","topic":"backtest"}"#;
    let mut huge_length = vec![0x81, 0x80 | 127];
    huge_length.extend_from_slice(&(1u64 << 62).to_be_bytes());
    huge_length.extend_from_slice(&[1, 2, 3, 4]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a continuation without a start",
            raw_frame(0x80, true, b"x"),
        ),
        (
            "reserved bits set",
            raw_frame(0x80 | 0x40 | 0x1, true, subscribe),
        ),
        (
            "an unmasked client frame",
            raw_frame(0x81, false, subscribe),
        ),
        ("a ping over 125 bytes", raw_frame(0x89, true, &[b'p'; 200])),
        ("a fragmented ping", raw_frame(0x09, true, b"p")),
        (
            "invalid UTF-8 in a text frame",
            raw_frame(0x81, true, &[0xff, 0xfe, 0xfd]),
        ),
        (
            "a close with an invalid code",
            raw_frame(0x88, true, &[0x03, 0xe7]),
        ),
        ("a reserved opcode", raw_frame(0x83, true, b"x")),
        ("a 2^62-byte length", huge_length),
        (
            "a fragmented message with a ping in between",
            [
                raw_frame(0x01, true, br#"{"action":"#),
                raw_frame(0x89, true, b"p"),
                raw_frame(0x80, true, br#""ping"}"#),
            ]
            .concat(),
        ),
    ];
    for (what, bytes) in &cases {
        let (answer, ended) = send_raw(server.addr, bytes).await;
        if what.starts_with("a fragmented message") {
            // Valid: the ping is answered with a pong frame, the message with a pong reply.
            assert!(
                String::from_utf8_lossy(&answer).contains(r#"{"type":"pong"}"#),
                "{what}: {answer:?}"
            );
            assert!(!ended, "{what}: a valid message keeps the connection");
        } else {
            assert!(
                ended,
                "{what}: the server ends a connection that breaks the protocol"
            );
        }
        // Nobody else noticed.
        server.publish(Topic::BACKTEST, progress("steady", 1));
        let frame = recv(&mut watcher).await;
        assert_eq!(frame["data"]["backtest_id"], "steady", "{what}: {frame}");
    }
    server.wait_stats(|s| s.connections == 1).await;
}

/// Rounds of 100 connect/subscribe/close cycles in the churn test.
const CHURN_ROUNDS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaves_nothing_behind() {
    let server = TestServer::start(ServerConfig::default()).await;
    let subscribe = client_frame(0x1, br#"{"action":"subscribe","topic":"churn"}"#);
    let close = client_frame(0x8, &[0x03, 0xe8]);
    let before = rss_bytes();
    // Tens of thousands of cycles, in rounds of 100 open at once.
    for round in 0..CHURN_ROUNDS {
        let mut batch = Vec::new();
        for _ in 0..100 {
            let mut stream = raw_client(server.addr, 4096).await;
            stream.write_all(&subscribe).await.expect("subscribe");
            batch.push(stream);
        }
        for (i, mut stream) in batch.into_iter().enumerate() {
            // Half close properly, half just vanish.
            if (i + round) % 2 == 0 {
                let _ = stream.write_all(&close).await;
            }
        }
    }
    server
        .wait_stats(|s| s.connections == 0 && s.subscriptions.is_empty())
        .await;
    let cycles = CHURN_ROUNDS as u64 * 100;
    assert_eq!(server.hub.stats().connection_events.accepted, cycles);
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 24 << 20,
        "memory grew by {grown} bytes over {cycles} connections"
    );
    still_served(&server, "after-churn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_topics_on_one_connection_stay_within_the_limit() {
    let server = TestServer::start(ServerConfig::default().max_subscriptions(64)).await;
    let mut greedy = raw_client(server.addr, 4096).await;
    let subscribes: Vec<u8> = (0..5_000)
        .flat_map(|topic| {
            let text = format!(r#"{{"action":"subscribe","topic":"greedy-{topic}"}}"#);
            client_frame(0x1, text.as_bytes())
        })
        .collect();
    // Written without reading a reply: the server pauses reading, then answers.
    let write = greedy.write_all(&subscribes);
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
    still_served(&server, "beside-greedy").await;
    let stats = server.hub.stats();
    let greedy_topics = stats
        .subscriptions
        .keys()
        .filter(|t| t.as_str().starts_with("greedy-"))
        .count();
    assert!(greedy_topics <= 64, "{greedy_topics} topics held");
    drop(greedy);
    server
        .wait_stats(|s| s.connections == 0 && s.subscriptions.is_empty())
        .await;
}
