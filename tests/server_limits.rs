//! Connection limits, handshake checks, cleanup, dead peers and graceful shutdown.
#![cfg(feature = "server")]

mod server_support;

use std::time::Duration;

use backtest_stream::server::{HandshakeDecision, HandshakeHook, ServerConfig};
use backtest_stream::wire::Topic;
use futures::StreamExt;
use server_support::*;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn closed_connections_are_cleaned_up() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut client = server.connect().await;
        subscribe_topic(&mut client, "backtest").await;
        subscribe_topic(&mut client, "logs").await;
        clients.push(client);
    }
    server
        .wait_stats(|s| {
            s.connections == 10
                && s.subscriptions.get("backtest") == Some(&10)
                && s.subscriptions.get("logs") == Some(&10)
        })
        .await;
    // Half close properly, half just vanish.
    for (i, mut client) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            client.close(None).await.expect("close");
        }
    }
    server
        .wait_stats(|s| s.connections == 0 && s.subscriptions.is_empty())
        .await;
    // Publishing to nobody is fine.
    server.publish(Topic::BACKTEST, start("r1"));
    server.wait_stats(|s| s.events_published == 1).await;
}

/// A connection is counted until the hub has forgotten it and its subscriptions: a
/// `stats()` that shows no connection shows no subscription either, even while the hub
/// is busy fanning out a burst when the clients leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subscription_is_counted_without_its_connection() {
    let server = TestServer::start(ServerConfig::default()).await;
    for round in 0..5 {
        let mut clients = Vec::new();
        for _ in 0..50 {
            let mut client = server.connect().await;
            subscribe_topic(&mut client, "backtest").await;
            clients.push(client);
        }
        let sink = server.hub.sink();
        let burst = std::thread::spawn(move || {
            use backtest_stream::sink::ProgressSink;
            for bars in 0..20_000 {
                let envelope =
                    backtest_stream::wire::Envelope::new(Topic::BACKTEST, progress("burst", bars));
                let _ = sink.publish(&envelope);
            }
        });
        drop(clients);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = server.hub.stats();
            if stats.connections == 0 {
                assert!(
                    stats.subscriptions.is_empty(),
                    "round {round}: no connection but {:?}",
                    stats.subscriptions
                );
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
            tokio::task::yield_now().await;
        }
        burst.join().expect("publisher");
    }
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_with_1013() {
    let server = TestServer::start(ServerConfig::default().max_connections(2)).await;
    let mut one = server.connect().await;
    let mut two = server.connect().await;
    subscribe_topic(&mut one, "backtest").await;
    subscribe_topic(&mut two, "backtest").await;
    let mut three = server.connect().await;
    let frame = recv_close(&mut three).await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1013);
    assert_eq!(
        server.hub.stats().connection_events.refused_max_connections,
        1
    );
    // A slot frees when a client leaves.
    drop(one);
    server.wait_stats(|s| s.connections == 1).await;
    let mut four = server.connect().await;
    subscribe_topic(&mut four, "backtest").await;
}

#[tokio::test]
async fn other_paths_are_refused_with_404() {
    let server = TestServer::start(ServerConfig::default()).await;
    let url = format!("ws://{}/other", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected HTTP 404, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn origins_outside_the_allowed_list_are_closed_with_1008() {
    let server =
        TestServer::start(ServerConfig::default().allowed_origins(["https://dashboard.example"]))
            .await;
    let mut request = server.url().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    let (mut refused, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade happens");
    let frame = recv_close(&mut refused).await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "origin not allowed");
    // Without an Origin header (not a browser) the check refuses too.
    let (mut no_origin, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .expect("upgrade happens");
    let frame = recv_close(&mut no_origin).await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1008);
    let mut request = server.url().into_client_request().expect("request");
    request.headers_mut().insert(
        "origin",
        "https://dashboard.example".parse().expect("header"),
    );
    let (mut client, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("allowed origin connects");
    subscribe_topic(&mut client, "backtest").await;
    assert_eq!(server.hub.stats().connection_events.refused_origin, 2);
    assert_eq!(server.hub.stats().connections, 1);
}

#[tokio::test]
async fn the_handshake_hook_can_refuse_with_401_or_close_1008() {
    let hook = HandshakeHook::new(|request| match request.query_param("token") {
        Some("secret") => HandshakeDecision::Accept,
        Some("expired") => HandshakeDecision::RefuseClose {
            reason: "token expired".into(),
        },
        _ => HandshakeDecision::RefuseHttp {
            status: 401,
            reason: "missing token".into(),
        },
    });
    let server = TestServer::start(ServerConfig::default().handshake_hook(hook)).await;
    match tokio_tungstenite::connect_async(server.url()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| ())),
    }
    let (mut expired, _) =
        tokio_tungstenite::connect_async(format!("{}?token=expired", server.url()))
            .await
            .expect("upgrade happens");
    let frame = recv_close(&mut expired).await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "token expired");
    let (mut good, _) = tokio_tungstenite::connect_async(format!("{}?token=secret", server.url()))
        .await
        .expect("accepted");
    subscribe_topic(&mut good, "backtest").await;
    assert_eq!(
        server.hub.stats().connection_events.refused_handshake_hook,
        2
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_dropped() {
    let server = TestServer::start(
        ServerConfig::default()
            .ping_interval(Duration::from_millis(100))
            .ping_timeout(Duration::from_millis(200)),
    )
    .await;
    // A live client answers pings whenever it reads.
    let mut live = server.connect().await;
    subscribe_topic(&mut live, "backtest").await;
    let reader = tokio::spawn(async move {
        let mut frames = 0;
        while let Some(Ok(_)) = live.next().await {
            frames += 1;
        }
        frames
    });
    // A dead one completes the handshake, then never reads again.
    let _dead = server.connect().await;
    server
        .wait_stats(|s| s.connection_events.dropped_dead_peer == 1 && s.connections == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.hub.stats().connections, 1, "the live client stays");
    reader.abort();
}

#[tokio::test]
async fn graceful_shutdown_delivers_pending_events_then_closes_with_1001() {
    let mut server = TestServer::start(ServerConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = server.connect().await;
        subscribe_topic(&mut client, "backtest").await;
        clients.push(client);
    }
    for bars in 1..=100 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    server.publish(Topic::BACKTEST, complete("r1"));
    server.stop();
    for client in &mut clients {
        for seq in 1..=100 {
            assert_eq!(recv(client).await["seq"], seq);
        }
        assert_eq!(recv(client).await["type"], "backtest_complete");
        let frame = recv_close(client).await.expect("close frame");
        assert_eq!(u16::from(frame.code), 1001);
    }
    tokio::time::timeout(WAIT, &mut server.task)
        .await
        .expect("the server stops within the bound")
        .expect("server task");
    assert_eq!(server.hub.stats().connections, 0);
    assert!(
        server
            .hub
            .publish(&backtest_stream::wire::Envelope::new(
                Topic::BACKTEST,
                start("r2")
            ))
            .is_err()
    );
}

#[tokio::test]
async fn shutdown_is_bounded_even_when_clients_never_read() {
    let mut server =
        TestServer::start(ServerConfig::default().shutdown_timeout(Duration::from_millis(300)))
            .await;
    let mut stuck = server.connect().await;
    subscribe_topic(&mut stuck, "backtest").await;
    // Fill the socket so that the close frame cannot be written.
    for bars in 0..20_000 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    server.wait_stats(|s| s.events_published == 20_000).await;
    let started = std::time::Instant::now();
    server.stop();
    tokio::time::timeout(WAIT, &mut server.task)
        .await
        .expect("the server stops")
        .expect("server task");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_never_sends_its_upgrade_request_is_dropped() {
    use tokio::io::AsyncReadExt;

    let server =
        TestServer::start(ServerConfig::default().handshake_timeout(Duration::from_millis(200)))
            .await;
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp connect");
    let mut buf = [0u8; 16];
    // The server gives up and closes the socket: the read sees end of stream.
    let read = tokio::time::timeout(WAIT, silent.read(&mut buf))
        .await
        .expect("closed within the wait");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(server.hub.stats().connections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_sending_but_never_reads_is_dropped_when_writes_stall() {
    use backtest_stream::wire::{BacktestProgress, Event};
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::{Bytes, Message};

    const EVENTS: u64 = 2_000;
    let server = TestServer::start(
        ServerConfig::default()
            // Pings cannot be what drops it: the first is due long after the test.
            .ping_interval(Duration::from_secs(60))
            .write_stall_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut reader = server.connect().await;
    subscribe_topic(&mut reader, "backtest").await;
    let mut stalled = server.connect().await;
    subscribe_topic(&mut stalled, "backtest").await;
    // It stays "alive" by sending (unsolicited pongs need no reply), but never reads.
    let sender = tokio::spawn(async move {
        loop {
            if stalled.send(Message::Pong(Bytes::new())).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let reading = tokio::spawn(async move {
        let mut last = 0;
        while let Some(Ok(message)) = reader.next().await {
            if let Message::Text(text) = message {
                let value: serde_json::Value = serde_json::from_str(&text).expect("JSON frame");
                last = value["seq"].as_u64().expect("seq");
                if last == EVENTS {
                    break;
                }
            }
        }
        // Returned so that it stays connected until the end of the test.
        (last, reader)
    });
    // 2,000 frames of 16 KiB: far more than the socket buffers of the stalled client hold.
    let status = "x".repeat(16 * 1024);
    for bar in 1..=EVENTS {
        let event = Event::BacktestProgress(BacktestProgress {
            status: status.clone(),
            bars_processed: bar,
            ..match progress("r1", bar) {
                Event::BacktestProgress(p) => p,
                _ => unreachable!(),
            }
        });
        server.publish(Topic::BACKTEST, event);
        if bar % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    server
        .wait_stats(|s| s.connection_events.dropped_write_stall == 1 && s.connections == 1)
        .await;
    let stats = server.hub.stats();
    assert_eq!(stats.connection_events.dropped_dead_peer, 0);
    let (last, _reader) = tokio::time::timeout(WAIT, reading)
        .await
        .expect("reader done")
        .expect("reader");
    assert_eq!(last, EVENTS, "the reading client gets everything");
    sender.abort();
}
