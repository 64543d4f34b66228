//! `/healthz`, from the gateway's stats (`/metrics` is the library's
//! `server::metrics::StreamMetrics`, on prometheus-client).

use backtest_stream::broker::GatewayStats;
use serde_json::{Value, json};

/// `/healthz`: whether the gateway reaches Redis (`true`: 200), and the JSON body.
pub fn health(gateway: &GatewayStats) -> (bool, Value) {
    if gateway.connected {
        (true, json!({"status": "ok", "redis": "connected"}))
    } else {
        let error = gateway
            .last_error
            .clone()
            .unwrap_or_else(|| "not connected yet".to_owned());
        (
            false,
            json!({"status": "unavailable", "redis": "disconnected", "error": error}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_why_redis_is_unreachable() {
        let mut gateway = GatewayStats::default();
        gateway.last_error = Some("connection refused".into());
        let (ok, body) = health(&gateway);
        assert!(!ok);
        assert_eq!(body["redis"], "disconnected");
        assert_eq!(body["error"], "connection refused");
    }
}
