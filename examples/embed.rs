//! The WebSocket hub embedded in an axum application, on the application's own route:
//! `Hub::upgrade` takes the upgrade request and answers it with the same admission as the
//! standalone server (origin check, handshake hook, connection limit).
//!
//! `cargo run --example embed --features hyper`, then connect to
//! `ws://127.0.0.1:9002/live/progress` and send `{"action":"subscribe","topic":"backtest"}`.

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::get;
use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};

/// The application's WebSocket route: the hub does the rest.
async fn live(State(hub): State<Hub>, request: Request) -> impl IntoResponse {
    hub.upgrade(request)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Pages of other sites may not read the stream; clients without Origin may.
    let hub = Hub::new(ServerConfig::default().same_origin(true))?;

    // A backtest on a plain thread publishes into the hub.
    let sink = hub.sink();
    std::thread::spawn(move || {
        loop {
            let bars = 1_000;
            let mut run = ProgressStreamer::new(sink.clone())
                .start(RunInfo::new("vanilla", "EURUSD").timeframe("H1"), bars);
            for bar in 1..=bars {
                std::thread::sleep(Duration::from_millis(2));
                run.progress(bar, ProgressDetails::default);
            }
            run.complete(RunResults::default());
        }
    });

    let app = Router::new()
        .route("/live/progress", get(live))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
    println!("ws://{}/live/progress", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
