//! `/metrics` (the Prometheus text format, written by hand: a handful of counters read
//! from `Hub::stats` and `Gateway::stats` at each scrape, no registry to keep) and
//! `/healthz`.

use std::fmt::Write as _;

use backtest_stream::broker::GatewayStats;
use backtest_stream::server::ServerStats;
use serde_json::{Value, json};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric, in the text format.
pub fn render(hub: &ServerStats, gateway: &GatewayStats) -> String {
    let mut out = Metrics::default();
    out.single(
        "backtest_stream_connections",
        "gauge",
        "WebSocket connections open now.",
        hub.connections,
    );
    out.single(
        "backtest_stream_connections_accepted_total",
        "counter",
        "WebSocket connections served since the start.",
        hub.connection_events.accepted,
    );
    out.family(
        "backtest_stream_subscriptions",
        "gauge",
        "Connections subscribed to each topic now.",
        "topic",
        hub.subscriptions
            .iter()
            .map(|(topic, n)| (topic.as_str(), *n as u64)),
    );
    out.single(
        "backtest_stream_events_published_total",
        "counter",
        "Events the hub numbered and delivered to its subscribers.",
        hub.events_published,
    );
    let d = &hub.dropped;
    out.family(
        "backtest_stream_dropped_total",
        "counter",
        "Events or frames that did not reach a client, by reason.",
        "reason",
        [
            ("publish_queue_full", d.publish_queue_full),
            ("terminal_refused", d.terminal_refused),
            ("lagged", d.lagged),
            ("slow_client", d.slow_client),
            ("closed_connection", d.closed_connection),
        ],
    );
    connection_metrics(&mut out, hub);
    gateway_metrics(&mut out, gateway);
    out.text
}

fn connection_metrics(out: &mut Metrics, hub: &ServerStats) {
    let c = &hub.connection_events;
    out.family(
        "backtest_stream_connections_closed_total",
        "counter",
        "Connections refused or dropped by the server, by reason.",
        "reason",
        [
            ("max_connections", c.refused_max_connections),
            ("origin", c.refused_origin),
            ("handshake_hook", c.refused_handshake_hook),
            ("path", c.refused_path),
            ("dead_peer", c.dropped_dead_peer),
            ("write_stall", c.dropped_write_stall),
            ("slow", c.dropped_slow),
            ("message_too_big", c.closed_message_too_big),
        ],
    );
    let a = &hub.access;
    out.family(
        "backtest_stream_access_refused_total",
        "counter",
        "Authentication and rate-limit refusals, by reason.",
        "reason",
        [
            ("unauthorized", a.unauthorized),
            ("auth_timeout", a.auth_timeout),
            ("token_expired", a.token_expired),
            ("forbidden", a.forbidden),
            ("messages_rate_limited", a.messages_rate_limited),
            ("closed_rate_limited", a.closed_rate_limited),
            ("upgrades_rate_limited", a.upgrades_rate_limited),
            ("subject_limit", a.subject_limit),
            ("replay_budget_spent", a.replay_budget_spent),
        ],
    );
}

fn gateway_metrics(out: &mut Metrics, g: &GatewayStats) {
    out.single(
        "backtest_stream_gateway_connected",
        "gauge",
        "1 when the last call to Redis succeeded, else 0.",
        u64::from(g.connected),
    );
    for (name, help, value) in [
        (
            "backtest_stream_gateway_events_total",
            "Events read from the Redis streams and handed to the hub.",
            g.events,
        ),
        (
            "backtest_stream_gateway_loss_markers_total",
            "Loss markers read (announced to subscribers as lagged).",
            g.loss_markers,
        ),
        (
            "backtest_stream_gateway_malformed_total",
            "Stream entries that were neither an event nor a marker (skipped).",
            g.malformed,
        ),
        (
            "backtest_stream_gateway_failures_total",
            "Calls to Redis that failed.",
            g.failures,
        ),
        (
            "backtest_stream_gateway_epoch_changes_total",
            "Times a topic's epoch changed (the broker lost its data).",
            g.epoch_changes,
        ),
    ] {
        out.single(name, "counter", help, value);
    }
    out.family(
        "backtest_stream_gateway_last_seq",
        "gauge",
        "The last seq read from each topic's stream.",
        "topic",
        g.last_seq.iter().map(|(topic, seq)| (topic.as_str(), *seq)),
    );
}

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

#[derive(Default)]
struct Metrics {
    text: String,
}

impl Metrics {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.header(name, kind, help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn family<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.header(name, kind, help);
        for (key, value) in values {
            let _ = writeln!(self.text, "{name}{{{label}=\"{}\"}} {value}", escape(key));
        }
    }
}

/// A label value in the text format: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backtest_stream::wire::Topic;

    #[test]
    fn every_sample_line_is_a_name_labels_and_a_number() {
        let mut gateway = GatewayStats::default();
        gateway.connected = true;
        gateway.events = 7;
        gateway
            .last_seq
            .insert(Topic::new("we\"ird\\").unwrap(), 42);
        let text = render(&ServerStats::default(), &gateway);
        assert!(
            text.contains("backtest_stream_gateway_events_total 7\n"),
            "{text}"
        );
        assert!(
            text.contains("backtest_stream_gateway_connected 1\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"backtest_stream_gateway_last_seq{topic="we\"ird\\"} 42"#),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name value");
            value.parse::<u64>().expect("a number");
        }
    }

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
