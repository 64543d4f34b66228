//! The hub serves connections that the application upgraded itself.
#![cfg(feature = "server")]

mod server_support;

use backtest_stream::server::{ConnectionEnd, Hub, ServerConfig};
use backtest_stream::wire::{Envelope, Topic};
use server_support::*;
use tokio::net::TcpListener;

#[tokio::test]
async fn the_hub_serves_a_connection_upgraded_elsewhere() {
    let hub = Hub::new(ServerConfig::default()).expect("hub");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serving_hub = hub.clone();
    let serving = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let config = serving_hub.config().websocket_config();
        let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config))
            .await
            .expect("upgrade");
        serving_hub.serve(ws).await
    });
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/any/route"))
        .await
        .expect("connect");
    subscribe_topic(&mut client, "backtest").await;
    hub.publish(&Envelope::new(Topic::BACKTEST, start("r1")))
        .expect("publish");
    assert_eq!(
        recv(&mut client).await,
        expected_frame(&start("r1"), "backtest", 1)
    );
    assert_eq!(hub.stats().connections, 1);
    client.close(None).await.expect("close");
    let end = tokio::time::timeout(WAIT, serving)
        .await
        .expect("serve returns")
        .expect("task");
    assert_eq!(end, ConnectionEnd::ClientClosed);
    assert_eq!(hub.stats().connections, 0);
}

#[test]
fn a_hub_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(Hub::new(ServerConfig::default()).is_err());
}

#[test]
fn a_background_server_serves_a_plain_synchronous_program() {
    use backtest_stream::server::BackgroundServer;
    use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo};

    let server =
        BackgroundServer::start(ServerConfig::default().bind(([127, 0, 0, 1], 0))).expect("start");
    let url = format!("ws://{}/ws", server.local_addr());
    // A client on its own runtime, as a UI would be.
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let (mut client, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            subscribe_topic(&mut client, "backtest").await;
            let mut kinds = Vec::new();
            loop {
                let frame = recv(&mut client).await;
                let kind = frame["type"].as_str().unwrap_or_default().to_owned();
                let done = kind == "backtest_complete";
                kinds.push(kind);
                if done {
                    return kinds;
                }
            }
        })
    });
    while server.hub().stats().subscriptions.get("backtest") != Some(&1) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut run = ProgressStreamer::new(server.sink()).start(RunInfo::default(), 300);
    for bar in 1..=300 {
        run.progress(bar, ProgressDetails::default);
    }
    run.complete(Default::default());
    let kinds = client.join().expect("client");
    assert_eq!(kinds.first().map(String::as_str), Some("backtest_start"));
    assert_eq!(
        kinds.len(),
        5,
        "start, 3 progress updates, complete: {kinds:?}"
    );
    server.shutdown().expect("shutdown");
}

#[tokio::test]
async fn a_sink_that_outlives_its_hub_reports_closed() {
    use backtest_stream::sink::{ProgressSink, SinkError};

    let hub = Hub::new(ServerConfig::default()).expect("hub");
    let sink = hub.sink();
    drop(hub);
    let envelope = Envelope::new(Topic::BACKTEST, start("r1"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match sink.publish(&envelope) {
            Err(SinkError::Closed) => break,
            Ok(()) | Err(SinkError::Full { .. }) => {
                assert!(tokio::time::Instant::now() < deadline, "never closed");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
}

/// Accepts one connection on `listener`, upgrades it with tokio-tungstenite, and serves
/// it with `Hub::serve` (no request) or `Hub::serve_with_request` (the upgrade request).
async fn serve_one(
    hub: Hub,
    listener: TcpListener,
    with_request: bool,
) -> tokio::task::JoinHandle<ConnectionEnd> {
    use backtest_stream::server::HandshakeRequest;
    use std::sync::{Arc, Mutex};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.expect("accept");
        let seen: Arc<Mutex<Option<HandshakeRequest>>> = Arc::default();
        let keep = Arc::clone(&seen);
        // tungstenite dictates the callback's signature, large error type included.
        #[allow(clippy::result_large_err)]
        let callback = move |request: &Request, response: Response| {
            *keep.lock().expect("lock") = Some(HandshakeRequest::from_request(request, Some(peer)));
            Ok(response)
        };
        let config = hub.config().websocket_config();
        let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
            .await
            .expect("upgrade");
        let request = seen.lock().expect("lock").take().expect("the request");
        if with_request {
            hub.serve_with_request(ws, &request).await
        } else {
            hub.serve(ws).await
        }
    })
}

#[tokio::test]
async fn an_upgrade_served_without_its_request_fails_closed_under_an_origin_list() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let config = ServerConfig::default().allowed_origins(["https://ui.example"]);
    let hub = Hub::new(config).expect("hub");
    for with_request in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serving = serve_one(hub.clone(), listener, with_request).await;
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("origin", "https://ui.example".parse().expect("header"));
        let (mut client, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        if with_request {
            // The admission saw the allowed Origin: served.
            subscribe_topic(&mut client, "backtest").await;
            client.close(None).await.expect("close");
            let end = serving.await.expect("task");
            assert_eq!(end, ConnectionEnd::ClientClosed);
        } else {
            // Without the request the admission sees no Origin: refused, as PROTOCOL.md
            // says for the origin check.
            let frame = recv_close(&mut client).await.expect("a close frame");
            assert_eq!(u16::from(frame.code), 1008);
            let end = serving.await.expect("task");
            assert_eq!(
                end,
                ConnectionEnd::ServerClosed(backtest_stream::wire::CloseCode::Policy)
            );
        }
    }
    assert_eq!(hub.stats().connection_events.refused_origin, 1);
}
