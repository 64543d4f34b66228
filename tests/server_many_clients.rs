//! Many concurrent clients each get every event, in order.
#![cfg(feature = "server")]

mod server_support;

use backtest_stream::server::ServerConfig;
use backtest_stream::wire::Topic;
use futures::StreamExt;
use futures::future::join_all;
use server_support::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_all_receive_every_event_in_order() {
    const CLIENTS: usize = 1000;
    const EVENTS: u64 = 200;
    let server = TestServer::start(ServerConfig::default()).await;
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS / 100 {
        let batch = join_all((0..100).map(|_| async {
            let mut client = server.connect().await;
            subscribe_topic(&mut client, "backtest").await;
            client
        }))
        .await;
        clients.extend(batch);
    }
    server
        .wait_stats(|s| s.subscriptions.get("backtest") == Some(&CLIENTS))
        .await;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut next = 1;
                while next <= EVENTS {
                    match client.next().await {
                        Some(Ok(Message::Text(text))) => {
                            let value: serde_json::Value =
                                serde_json::from_str(&text).expect("JSON frame");
                            assert_eq!(value["seq"], next, "in order, none missing");
                            assert_eq!(value["data"]["bars_processed"], next);
                            next += 1;
                        }
                        Some(Ok(_)) => {}
                        other => panic!("connection ended early: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for bars in 1..=EVENTS {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    for reader in readers {
        tokio::time::timeout(WAIT, reader)
            .await
            .expect("every client finishes")
            .expect("reader");
    }
    let stats = server.hub.stats();
    assert_eq!(stats.events_published, EVENTS);
    assert_eq!(stats.dropped.lagged, 0);
}
