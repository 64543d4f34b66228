//! The hub on an application's own axum route (`Hub::upgrade`, feature `hyper`): the same
//! admission as the standalone server (origin check, handshake hook, connection limit),
//! and clear refusals for requests that are no WebSocket handshake. Real sockets on
//! 127.0.0.1.
#![cfg(feature = "hyper")]

mod server_support;

use std::io::{Read, Write};
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::get;
use backtest_stream::server::{HandshakeDecision, HandshakeHook, Hub, ServerConfig};
use backtest_stream::wire::{ServerMessage, Topic};
use futures::StreamExt;
use server_support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn live(State(hub): State<Hub>, request: Request) -> impl IntoResponse {
    hub.upgrade(request)
}

/// An axum application serving `hub` on `/live`, on a free port.
async fn app(hub: &Hub) -> SocketAddr {
    let app = Router::new()
        .route("/live", get(live))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Connects to `/live` with these extra headers.
async fn connect(addr: SocketAddr, headers: &[(&'static str, &'static str)]) -> Client {
    let mut request = format!("ws://{addr}/live")
        .into_client_request()
        .expect("a request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    let (client, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade completes");
    client
}

#[tokio::test]
async fn an_axum_route_streams_events_read_with_the_wire_types() {
    let hub = Hub::new(ServerConfig::default()).expect("hub");
    let addr = app(&hub).await;
    let mut client = connect(addr, &[]).await;
    subscribe_topic(&mut client, "backtest").await;
    hub.publish(&backtest_stream::wire::Envelope::new(
        Topic::BACKTEST,
        start("r1"),
    ))
    .expect("publish");
    let text = loop {
        match client.next().await.expect("open").expect("frame") {
            Message::Text(text) => break text,
            _ => continue,
        }
    };
    let ServerMessage::Event(frame) = ServerMessage::from_json(&text).expect("a server message")
    else {
        panic!("not an event frame: {text}");
    };
    assert_eq!(frame.seq, 1);
    assert_eq!(*frame.envelope.event, start("r1"));
    assert_eq!(hub.stats().connections, 1);
}

#[tokio::test]
async fn the_embedded_route_applies_the_same_admission_as_the_standalone_server() {
    let hook = HandshakeHook::new(|request| match request.query_param("token") {
        Some("bad") => HandshakeDecision::RefuseHttp {
            status: 401,
            reason: "bad token".into(),
        },
        _ => HandshakeDecision::Accept,
    });
    let hub = Hub::new(
        ServerConfig::default()
            .allowed_origins(["https://ui.example"])
            .handshake_hook(hook)
            .max_connections(1),
    )
    .expect("hub");
    let addr = app(&hub).await;

    // Another site's page: upgraded, then closed with 1008 before anything else.
    let mut evil = connect(addr, &[("origin", "https://evil.example")]).await;
    let frame = recv_close(&mut evil).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "origin not allowed");

    // The hook's HTTP refusal.
    let mut request = format!("ws://{addr}/live?token=bad")
        .into_client_request()
        .expect("a request");
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_static("https://ui.example"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("the hook must refuse with 401, got {other:?}"),
    }

    // The allowed origin gets in; a second connection is over the limit: 1013.
    let mut first = connect(addr, &[("origin", "https://ui.example")]).await;
    subscribe_topic(&mut first, "backtest").await;
    let mut second = connect(addr, &[("origin", "https://ui.example")]).await;
    let frame = recv_close(&mut second).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1013);

    let events = hub.stats().connection_events;
    assert_eq!(events.refused_origin, 1, "{events:?}");
    assert_eq!(events.refused_handshake_hook, 1, "{events:?}");
    assert_eq!(events.refused_max_connections, 1, "{events:?}");
}

/// Sends a raw HTTP request and returns the status line and the body.
fn raw_http(addr: SocketAddr, headers: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET /live HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_no_websocket_handshake_are_refused_with_their_reason() {
    let hub = Hub::new(ServerConfig::default()).expect("hub");
    let addr = app(&hub).await;
    let (status, body) = tokio::task::spawn_blocking(move || raw_http(addr, ""))
        .await
        .expect("request");
    assert!(status.contains(" 400 "), "{status}");
    assert!(body.contains("Upgrade"), "{body}");
    let (status, body) = tokio::task::spawn_blocking(move || {
        raw_http(
            addr,
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        )
    })
    .await
    .expect("request");
    assert!(status.contains(" 426 "), "{status}");
    assert!(body.contains("13"), "{body}");
    assert_eq!(hub.stats().connection_events.accepted, 0);
}
