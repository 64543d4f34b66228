//! The hub serves connections that the application upgraded itself.
#![cfg(feature = "server")]

mod server_support;

use backtest_stream::server::{ConnectionEnd, Hub, ServerConfig};
use backtest_stream::{Envelope, Topic};
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
