//! The hub's figures, and a gateway's or a Redis sink's, as Prometheus metrics (feature
//! `metrics`), on the official `prometheus-client`: a [`Collector`](https://docs.rs/prometheus-client/0.26/prometheus_client/collector/trait.Collector.html) that reads
//! [`Hub::stats`] (and [`Gateway::stats`](crate::broker::Gateway::stats),
//! [`RedisSink::stats`](crate::broker::RedisSink::stats)) at each scrape, so nothing is
//! counted twice.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use backtest_stream::server::metrics::StreamMetrics;
//! use backtest_stream::server::{Hub, ServerConfig};
//!
//! let hub = Hub::new(ServerConfig::default()).unwrap();
//! let text = StreamMetrics::new(&hub).text();
//! assert!(text.contains("backtest_stream_connections 0"));
//! # }
//! ```

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::server::hub::Hub;
use crate::server::stats::ServerStats;

#[cfg(feature = "redis")]
mod broker;

/// The `Content-Type` of [`StreamMetrics::text`] (the Prometheus text format).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics of a hub (and of the gateway that feeds it, or the Redis sink it writes
/// to, if any): connections, subscriptions per topic, events published, drops by
/// reason, connections closed and access refusals by reason, replays by source (the
/// hub's history or Redis); for a gateway, whether it reaches Redis, the entries it
/// read, its failures and reconnections, epoch changes, the last seq of each topic and
/// how far behind Redis it is; for a Redis sink, the events it took, wrote and refused,
/// its loss markers and failures.
#[derive(Clone)]
pub struct StreamMetrics {
    hub: Hub,
    #[cfg(feature = "redis")]
    gateway: Option<std::sync::Arc<crate::broker::FollowState>>,
    #[cfg(feature = "redis")]
    sink: Option<crate::broker::RedisSink>,
}

impl fmt::Debug for StreamMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamMetrics").finish_non_exhaustive()
    }
}

impl StreamMetrics {
    /// The metrics of `hub`.
    pub fn new(hub: &Hub) -> Self {
        Self {
            hub: hub.clone(),
            #[cfg(feature = "redis")]
            gateway: None,
            #[cfg(feature = "redis")]
            sink: None,
        }
    }

    /// With the metrics of the gateway that feeds the hub.
    #[cfg(feature = "redis")]
    pub fn with_gateway(mut self, gateway: &crate::broker::Gateway) -> Self {
        self.gateway = Some(gateway.state());
        self
    }

    /// With the metrics of a Redis sink the application publishes to (the demo's runs
    /// under `--redis`).
    #[cfg(feature = "redis")]
    pub fn with_redis_sink(mut self, sink: &crate::broker::RedisSink) -> Self {
        self.sink = Some(sink.clone());
        self
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn text(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(family)
}

/// Writes a counter with one label, a sample per value.
fn counters<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut family =
        encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (value, count) in samples {
        let labels = [(label, value)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes a gauge with one label, a sample per value.
fn gauges<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, i64)>,
) -> fmt::Result {
    let mut family =
        encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (value, level) in samples {
        let labels = [(label, value)];
        ConstGauge::new(level).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(value: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Collector for StreamMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let stats = self.hub.stats();
        hub_metrics(&mut encoder, &stats)?;
        closes_and_refusals(&mut encoder, &stats)?;
        #[cfg(feature = "redis")]
        if let Some(gateway) = &self.gateway {
            broker::gateway_metrics(&mut encoder, &gateway.snapshot())?;
        }
        #[cfg(feature = "redis")]
        if let Some(sink) = &self.sink {
            broker::sink_metrics(&mut encoder, &sink.stats())?;
        }
        Ok(())
    }
}

fn hub_metrics(encoder: &mut DescriptorEncoder<'_>, stats: &ServerStats) -> fmt::Result {
    let e = encoder;
    single(
        e,
        "backtest_stream_connections",
        "WebSocket connections open now.",
        &gauge(stats.connections),
    )?;
    single(
        e,
        "backtest_stream_connections_accepted",
        "WebSocket connections served since the start.",
        &ConstCounter::new(stats.connection_events.accepted),
    )?;
    gauges(
        e,
        "backtest_stream_subscriptions",
        "Connections subscribed to each topic now.",
        "topic",
        stats
            .subscriptions
            .iter()
            .map(|(topic, n)| (topic.as_str(), i64::try_from(*n).unwrap_or(i64::MAX))),
    )?;
    single(
        e,
        "backtest_stream_events_published",
        "Events the hub numbered and delivered to its subscribers.",
        &ConstCounter::new(stats.events_published),
    )?;
    let d = &stats.dropped;
    counters(
        e,
        "backtest_stream_dropped",
        "Events or frames that did not reach a client, by reason (each announced with lagged).",
        "reason",
        [
            ("publish_queue_full", d.publish_queue_full),
            ("terminal_refused", d.terminal_refused),
            ("lagged", d.lagged),
            ("slow_client", d.slow_client),
            ("closed_connection", d.closed_connection),
        ],
    )
}

fn closes_and_refusals(encoder: &mut DescriptorEncoder<'_>, stats: &ServerStats) -> fmt::Result {
    let c = &stats.connection_events;
    counters(
        encoder,
        "backtest_stream_connections_closed",
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
    )?;
    let a = &stats.access;
    counters(
        encoder,
        "backtest_stream_access_refused",
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
    )?;
    counters(
        encoder,
        "backtest_stream_replays",
        "Subscribes with since, by where their replay came from (the hub's history, or Redis for older positions).",
        "source",
        [
            ("history", stats.replays.from_history),
            ("redis", stats.replays.from_archive),
        ],
    )
}
