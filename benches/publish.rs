//! The cost of `ProgressSink::publish` into the WebSocket hub, from a plain thread,
//! with no clients and with 1,000 connected clients.
//!
//! `cargo bench --bench publish`

use std::time::{Duration, Instant};

use backtest_stream::server::{Server, ServerConfig};
use backtest_stream::sink::ProgressSink;
use backtest_stream::wire::{BacktestId, BacktestProgress, Envelope, Event, Timestamp, Topic};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;

fn envelope() -> Envelope {
    Envelope::new(
        Topic::BACKTEST,
        Event::BacktestProgress(BacktestProgress {
            backtest_id: BacktestId::new("bench-run").expect("id"),
            progress: 50.0,
            status: "Processing bar 5000/10000".into(),
            bars_processed: 5000,
            total_bars: 10_000,
            current_date: "2023-06-15".into(),
            trades_count: 25,
            current_pnl: 500.0,
            timestamp: Timestamp::from_unix_millis(1_705_314_630_000).expect("time"),
        }),
    )
}

/// Starts a server with `clients` connected clients subscribed to `logs` (so that the
/// hub's per-event work stays small and the bench measures the publish call).
fn setup(runtime: &tokio::runtime::Runtime, clients: usize) -> backtest_stream::server::HubSink {
    runtime.block_on(async {
        let config = ServerConfig::default()
            .bind(([127, 0, 0, 1], 0))
            .publish_queue_capacity(1 << 17);
        let server = Server::bind(config).await.expect("bind");
        let url = format!("ws://{}/ws", server.local_addr());
        let hub = server.hub().clone();
        tokio::spawn(server.run_until(std::future::pending::<()>()));
        for _ in 0..clients {
            let (mut client, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("connect");
            futures::SinkExt::send(
                &mut client,
                tokio_tungstenite::tungstenite::Message::Text(
                    r#"{"action":"subscribe","topic":"logs"}"#.into(),
                ),
            )
            .await
            .expect("subscribe");
            tokio::spawn(async move { while let Some(Ok(_)) = client.next().await {} });
        }
        while hub.stats().subscriptions.get("logs").copied().unwrap_or(0) < clients {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        hub.sink()
    })
}

fn publish(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("hub_publish");
    for clients in [0, 1000] {
        let sink = setup(&runtime, clients);
        // Distinct events, as a backtest makes them (one reference count per event).
        let envelopes: Vec<Envelope> = (0..4096).map(|_| envelope()).collect();
        group.bench_function(format!("{clients}_clients"), |b| {
            b.iter_custom(|iters| {
                // Publish in chunks smaller than the queue; between chunks (untimed) let
                // the hub drain, so that no sample measures a full queue.
                const CHUNK: u64 = 1 << 16;
                let mut elapsed = Duration::ZERO;
                let mut full = 0u64;
                let mut done = 0u64;
                while done < iters {
                    let n = CHUNK.min(iters - done);
                    let start = Instant::now();
                    for i in done..done + n {
                        if sink
                            .publish(&envelopes[i as usize % envelopes.len()])
                            .is_err()
                        {
                            full += 1;
                        }
                    }
                    elapsed += start.elapsed();
                    done += n;
                    let _ = sink.flush();
                }
                assert_eq!(full, 0, "publishes found the queue full");
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
