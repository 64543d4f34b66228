//! The metrics of the Redis side (feature `redis`): a gateway's reads, failures,
//! reconnections, epoch changes, last seq and lag per topic; a Redis sink's events taken,
//! written and refused by kind.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;

use crate::broker::{GatewayStats, RedisSinkStats};
use crate::server::metrics::{counters, gauge, gauges, single};

/// A gateway's figures.
pub(super) fn gateway_metrics(
    encoder: &mut DescriptorEncoder<'_>,
    g: &GatewayStats,
) -> fmt::Result {
    let e = encoder;
    single(
        e,
        "backtest_stream_gateway_connected",
        "1 when the gateway's last call to Redis succeeded, else 0.",
        &gauge(u64::from(g.connected)),
    )?;
    for (name, help, value) in [
        (
            "backtest_stream_gateway_events",
            "Events read from the Redis streams and handed to the hub.",
            g.events,
        ),
        (
            "backtest_stream_gateway_loss_markers",
            "Loss markers read (announced to subscribers as lagged).",
            g.loss_markers,
        ),
        (
            "backtest_stream_gateway_malformed",
            "Stream entries neither an event nor a marker (skipped).",
            g.malformed,
        ),
        (
            "backtest_stream_gateway_failures",
            "Calls to Redis that failed (each followed by a reconnection).",
            g.failures,
        ),
        (
            "backtest_stream_gateway_reconnects",
            "Connections to Redis made again after a failure.",
            g.reconnects,
        ),
        (
            "backtest_stream_gateway_epoch_changes",
            "Times a topic's epoch changed (Redis lost its data).",
            g.epoch_changes,
        ),
    ] {
        single(e, name, help, &ConstCounter::new(value))?;
    }
    let level = |n: &u64| i64::try_from(*n).unwrap_or(i64::MAX);
    gauges(
        e,
        "backtest_stream_gateway_last_seq",
        "The last seq read from each topic's stream.",
        "topic",
        g.last_seq.iter().map(|(t, seq)| (t.as_str(), level(seq))),
    )?;
    gauges(
        e,
        "backtest_stream_gateway_behind",
        "Broker lag: events numbered in Redis not yet read by the gateway, per topic, at its last look.",
        "topic",
        g.behind.iter().map(|(t, n)| (t.as_str(), level(n))),
    )
}

/// A Redis sink's figures.
pub(super) fn sink_metrics(encoder: &mut DescriptorEncoder<'_>, s: &RedisSinkStats) -> fmt::Result {
    let e = encoder;
    single(
        e,
        "backtest_stream_redis_sink_connected",
        "1 when the sink's last call to Redis succeeded, else 0.",
        &gauge(u64::from(s.connected)),
    )?;
    for (name, help, value) in [
        (
            "backtest_stream_redis_sink_accepted",
            "Events taken into the sink's queue.",
            s.accepted,
        ),
        (
            "backtest_stream_redis_sink_written",
            "Events written to Redis.",
            s.written,
        ),
        (
            "backtest_stream_redis_sink_loss_markers",
            "Loss markers written (each announces refused events of one run).",
            s.loss_markers,
        ),
        (
            "backtest_stream_redis_sink_failures",
            "Calls to Redis that failed (each retried after a reconnection).",
            s.failures,
        ),
    ] {
        single(e, name, help, &ConstCounter::new(value))?;
    }
    counters(
        e,
        "backtest_stream_redis_sink_refused",
        "Events the sink's full queue refused, by kind (progress first; terminal only after its wait).",
        "kind",
        [
            ("progress", s.refused_progress),
            ("other", s.refused_other),
            ("terminal", s.terminal_refused),
        ],
    )
}
