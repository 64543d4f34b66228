//! `--redis URL`: the demo's runs go through Redis Streams, as a worker's and a
//! gateway's would. Runs (and the log bridge) write to Redis with the crate's
//! `RedisSink`; the hub behind `/ws` is fed from the same streams by a `Gateway`, with
//! the broker's `seq` and `epoch`. The REST API and the dashboard are unchanged, and
//! gateways on the same Redis (`gateway --redis URL`) serve the same streams.

use std::sync::Arc;

use backtest_stream::broker::{Gateway, GatewayConfig, RedisSink};
use backtest_stream::server::Hub;
use backtest_stream::sink::SharedSink;

/// The sink the runs write to, and the gateway that feeds the hub; both stop when
/// dropped.
#[derive(Debug)]
pub struct Broker {
    sink: RedisSink,
    _gateway: Gateway,
}

impl Broker {
    /// Writes to, and feeds `hub` from, the Redis at `url`; `history`: the events read
    /// back from each stream when the demo starts (the hub's history). Redis need not
    /// be up yet: both connect (and reconnect) by themselves.
    pub fn start(url: &str, hub: &Hub, history: usize) -> Result<Self, String> {
        let sink = RedisSink::connect(url).map_err(|e| format!("--redis: {e}"))?;
        let config = GatewayConfig::default().tail(history);
        let gateway = Gateway::start(hub, url, config).map_err(|e| format!("--redis: {e}"))?;
        Ok(Self {
            sink,
            _gateway: gateway,
        })
    }

    /// The gateway that feeds the hub (for its metrics).
    pub fn gateway(&self) -> &Gateway {
        &self._gateway
    }

    /// The Redis sink itself (for its metrics).
    pub fn redis_sink(&self) -> &RedisSink {
        &self.sink
    }

    /// The sink the runs and the log bridge publish to.
    pub fn sink(&self) -> SharedSink {
        Arc::new(self.sink.clone())
    }
}
