//! The server-side cost of fanning one event out to 1,000 subscribers: the hub numbers,
//! serializes and records the event and pushes it into 1,000 queues; 1,000 connection
//! tasks frame and write it. The connections run over in-memory streams
//! (`tokio::io::duplex`) and their clients (in the same runtime, on the same single
//! worker) count frames without parsing them, so the figure is the hub's and the
//! connections' CPU time per event, without the kernel's TCP path.
//!
//! `cargo bench --bench fanout`; with `--features auth`, the same with a JWT verifier
//! configured and each client authenticated (grants are checked per subscription, so
//! the figure should not move).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::sink::ProgressSink;
use backtest_stream::wire::{BacktestId, BacktestProgress, Envelope, Event, Timestamp, Topic};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const SUBSCRIBERS: usize = 1_000;
/// Events published before waiting for their delivery (below the queue capacity).
const CHUNK: u64 = 256;

fn envelope(bar: u64) -> Envelope {
    Envelope::new(
        Topic::BACKTEST,
        Event::BacktestProgress(BacktestProgress {
            backtest_id: BacktestId::new("bench-run").expect("id"),
            progress: bar as f64 / 100.0,
            status: "Processing bar 5000/10000".into(),
            bars_processed: bar,
            total_bars: 10_000,
            current_date: "2023-06-15".into(),
            trades_count: 25,
            current_pnl: 500.0,
            timestamp: Timestamp::from_unix_millis(1_705_314_630_000).expect("time"),
        }),
    )
}

/// A hub with `SUBSCRIBERS` subscribed in-memory connections; returns the hub and the
/// count of event frames the clients received.
fn setup(runtime: &tokio::runtime::Runtime, auth: Option<Auth>) -> (Hub, Arc<AtomicU64>) {
    runtime.block_on(async {
        let mut config = ServerConfig::default()
            .queue_capacity(4 * CHUNK as usize)
            .history_size(16);
        let mut first = None;
        if let Some(auth) = auth {
            config = auth.configure(config);
            first = Some(auth.message);
        }
        let hub = Hub::new(config).expect("hub");
        let received = Arc::new(AtomicU64::new(0));
        for _ in 0..SUBSCRIBERS {
            let (server_end, client_end) = tokio::io::duplex(64 * 1024);
            let ws_config = hub.config().websocket_config();
            let server_ws =
                WebSocketStream::from_raw_socket(server_end, Role::Server, Some(ws_config)).await;
            let serving = hub.clone();
            tokio::spawn(async move { serving.serve(server_ws).await });
            let mut client = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
            if let Some(auth) = &first {
                client
                    .send(Message::Text(auth.as_str().into()))
                    .await
                    .expect("auth");
            }
            client
                .send(Message::Text(
                    r#"{"action":"subscribe","topic":"backtest"}"#.into(),
                ))
                .await
                .expect("subscribe");
            let count = Arc::clone(&received);
            tokio::spawn(async move {
                while let Some(Ok(message)) = client.next().await {
                    if let Message::Text(text) = message {
                        if text.ends_with('}') && text.contains("\"seq\":") {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        while hub
            .stats()
            .subscriptions
            .get("backtest")
            .copied()
            .unwrap_or(0)
            < SUBSCRIBERS
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (hub, received)
    })
}

/// A verifier for the hub and the `auth` message its clients send.
struct Auth {
    message: String,
    #[cfg(feature = "auth")]
    verifier: backtest_stream::auth::JwtVerifier,
}

impl Auth {
    #[cfg(feature = "auth")]
    fn new() -> Self {
        let secret = b"bench secret of the fan-out with authentication";
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            + 3600;
        let claims = serde_json::json!({"sub": "bench", "exp": exp, "topics": ["backtest"]});
        let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("secret");
        let token =
            jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("signed");
        let verifier = backtest_stream::auth::JwtVerifier::new()
            .secret(secret)
            .expect("verifier");
        Self {
            message: serde_json::json!({"action": "auth", "token": token}).to_string(),
            verifier,
        }
    }

    fn configure(&self, config: ServerConfig) -> ServerConfig {
        #[cfg(feature = "auth")]
        let config = config.authorizer(self.verifier.clone()).rate_limits(
            backtest_stream::server::RateLimits::default().connections_per_subject(None),
        );
        config
    }
}

fn fanout(c: &mut Criterion) {
    run_fanout(c, "", None);
    #[cfg(feature = "auth")]
    run_fanout(c, "_with_auth", Some(Auth::new()));
}

fn run_fanout(c: &mut Criterion, suffix: &str, auth: Option<Auth>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (hub, received) = setup(&runtime, auth);
    let sink = hub.sink();
    let envelopes: Vec<Envelope> = (0..CHUNK).map(envelope).collect();
    let mut group = c.benchmark_group("hub_fanout");
    group.sample_size(20);
    group.bench_function(
        format!("one_event_to_{SUBSCRIBERS}_subscribers{suffix}"),
        |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut done = 0;
                while done < iters {
                    let n = CHUNK.min(iters - done);
                    let target = received.load(Ordering::Relaxed) + n * SUBSCRIBERS as u64;
                    for envelope in &envelopes[..n as usize] {
                        while sink.publish(envelope).is_err() {
                            std::thread::yield_now();
                        }
                    }
                    // Wait until every subscriber has every frame of the chunk.
                    while received.load(Ordering::Relaxed) < target {
                        std::thread::yield_now();
                    }
                    done += n;
                }
                start.elapsed()
            })
        },
    );
    group.finish();
    let stats = hub.stats();
    assert_eq!(stats.dropped.lagged, 0, "no subscriber may lag: {stats:?}");
}

criterion_group!(benches, fanout);
criterion_main!(benches);
