//! Shared helpers for the server tests: a real server on 127.0.0.1:0 and real
//! tokio-tungstenite clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use backtest_stream::server::{Hub, Server, ServerConfig};
use backtest_stream::wire::{
    BacktestComplete, BacktestError, BacktestId, BacktestProgress, BacktestStart, Envelope, Event,
    LogEntry, LogLevel, Timestamp, Topic,
};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(config: ServerConfig) -> Self {
        let server = Server::bind(config.bind(([127, 0, 0, 1], 0)))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = server.local_addr();
        let hub = server.hub().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        Self {
            addr,
            hub,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn connect(&self) -> Client {
        let (client, _) = tokio_tungstenite::connect_async(self.url())
            .await
            .expect("connect");
        client
    }

    /// Begins the graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn publish(&self, topic: Topic, event: Event) {
        self.hub
            .publish(&Envelope::new(topic, event))
            .expect("publish");
    }

    /// Waits until `check` holds for the hub's stats.
    pub async fn wait_stats(&self, check: impl Fn(&backtest_stream::server::ServerStats) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.hub.stats();
            if check(&stats) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stats never matched: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub async fn send(client: &mut Client, text: &str) {
    client.send(Message::Text(text.into())).await.expect("send");
}

/// The next text frame as JSON (pings and pongs are skipped).
pub async fn recv(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a message within the wait")
            .expect("connection open")
            .expect("valid frame");
        match message {
            Message::Text(text) => {
                return serde_json::from_str(&text).expect("server sends JSON");
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Reads until the server's close frame and returns it.
pub async fn recv_close(client: &mut Client) -> Option<CloseFrame> {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("the close within the wait");
        match message {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("connection failed before its close frame: {e}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

pub async fn subscribe(client: &mut Client, request: Value) -> Value {
    send(client, &request.to_string()).await;
    let reply = recv(client).await;
    assert_eq!(reply["type"], "subscription_confirmed", "{reply}");
    reply
}

pub async fn subscribe_topic(client: &mut Client, topic: &str) -> Value {
    subscribe(
        client,
        serde_json::json!({"action": "subscribe", "topic": topic}),
    )
    .await
}

pub fn id(id: &str) -> BacktestId {
    BacktestId::new(id).expect("valid id")
}

pub fn ts() -> Timestamp {
    Timestamp::from_unix_millis(1_705_314_600_000).expect("valid time")
}

pub fn start(run: &str) -> Event {
    Event::BacktestStart(BacktestStart {
        backtest_id: id(run),
        variant: "spiced".into(),
        symbol: "EURUSD".into(),
        timeframe: "H1".into(),
        start_date: "2023-01-01".into(),
        end_date: "2023-12-31".into(),
        timestamp: ts(),
    })
}

pub fn progress(run: &str, bars: u64) -> Event {
    Event::BacktestProgress(BacktestProgress {
        backtest_id: id(run),
        progress: bars as f64 / 100.0,
        status: format!("Processing bar {bars}/10000"),
        bars_processed: bars,
        total_bars: 10_000,
        current_date: "2023-06-15".into(),
        trades_count: 25,
        current_pnl: 500.0,
        timestamp: ts(),
    })
}

pub fn log(run: Option<&str>, message: &str) -> Event {
    Event::LogEntry(LogEntry {
        backtest_id: run.map(id),
        timestamp: ts(),
        level: LogLevel::Info,
        message: message.into(),
        module: "mode_runner".into(),
        function: "execute_trade".into(),
        line: 245,
        logger_name: "backtest.x".into(),
    })
}

pub fn complete(run: &str) -> Event {
    Event::BacktestComplete(BacktestComplete {
        backtest_id: id(run),
        final_balance: 12_500.0,
        total_trades: 45,
        win_rate: 62.5,
        sharpe_ratio: f64::NAN,
        drawdown: 8.5,
        return_pct: 25.0,
        duration_seconds: 45.3,
        timestamp: ts(),
        results: Default::default(),
    })
}

pub fn error(run: &str) -> Event {
    Event::BacktestError(BacktestError {
        backtest_id: id(run),
        error: "Strategy execution failed".into(),
        error_details: "ZeroDivisionError".into(),
        timestamp: ts(),
    })
}

/// The JSON a client must receive for `event` on `topic` with `seq`: the event's own JSON
/// plus `topic` and `seq`.
pub fn expected_frame(event: &Event, topic: &str, seq: u64) -> Value {
    let mut value: Value = serde_json::from_str(&event.to_json()).expect("event JSON");
    let object = value.as_object_mut().expect("object");
    object.insert("topic".into(), topic.into());
    object.insert("seq".into(), seq.into());
    value
}
