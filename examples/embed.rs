//! Embedding the hub in an application that accepts WebSocket connections itself (as
//! axum or hyper would on their own route): the application upgrades the connection,
//! then hands it to `Hub::serve`.
//!
//! `cargo run --example embed`, then connect to `ws://127.0.0.1:9002/live/progress`
//! and send `{"action":"subscribe","topic":"backtest"}`.

use std::time::Duration;

use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hub = Hub::new(ServerConfig::default())?;

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

    // The application's own listener and route.
    let listener = TcpListener::bind("127.0.0.1:9002").await?;
    println!("ws://{}/live/progress", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let hub = hub.clone();
        tokio::spawn(async move {
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let route =
                |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
                    if request.uri().path() == "/live/progress" {
                        Ok(response)
                    } else {
                        let mut refusal = ErrorResponse::new(Some("not found".into()));
                        *refusal.status_mut() =
                            tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                        Err(refusal)
                    }
                };
            // The hub's buffer sizes and message limit, on the application's upgrade.
            let config = hub.config().websocket_config();
            if let Ok(ws) =
                tokio_tungstenite::accept_hdr_async_with_config(stream, route, Some(config)).await
            {
                let end = hub.serve(ws).await;
                println!("connection ended: {end:?}");
            }
        });
    }
}
