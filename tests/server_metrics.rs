//! The hub's figures as Prometheus text (`server::metrics`, on prometheus-client), read
//! at the scrape from a real server with a real client.
#![cfg(feature = "metrics")]

mod server_support;

use std::collections::HashMap;

use backtest_stream::server::ServerConfig;
use backtest_stream::server::metrics::StreamMetrics;
use backtest_stream::wire::Topic;
use server_support::*;

/// Every sample line: `name{labels}` -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("a name and a value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn a_scrape_reads_the_hubs_figures_at_that_moment() {
    let server = TestServer::start(ServerConfig::default()).await;
    let metrics = StreamMetrics::new(&server.hub);
    let before = samples(&metrics.text());
    assert_eq!(before["backtest_stream_connections"], 0.0);
    assert_eq!(before["backtest_stream_events_published_total"], 0.0);
    let mut client = server.connect().await;
    subscribe_topic(&mut client, "backtest").await;
    for bars in 1..=3 {
        server.publish(Topic::BACKTEST, progress("scraped", bars));
        recv(&mut client).await;
    }
    let text = metrics.text();
    let after = samples(&text);
    assert_eq!(after["backtest_stream_connections"], 1.0, "{text}");
    assert_eq!(
        after["backtest_stream_events_published_total"], 3.0,
        "{text}"
    );
    assert_eq!(
        after[r#"backtest_stream_subscriptions{topic="backtest"}"#], 1.0,
        "{text}"
    );
    assert_eq!(
        after[r#"backtest_stream_dropped_total{reason="lagged"}"#], 0.0,
        "{text}"
    );
    assert!(
        text.contains("# TYPE backtest_stream_events_published_total counter"),
        "{text}"
    );
    assert!(after.contains_key(r#"backtest_stream_access_refused_total{reason="forbidden"}"#));

    // A subscribe with since is counted as a replay from the history.
    let mut late = server.connect().await;
    let request = serde_json::json!({"action":"subscribe","topic":"backtest","since":1});
    server_support::subscribe(&mut late, request).await;
    assert_eq!(recv(&mut late).await["seq"], 2);
    let text = metrics.text();
    let replays = samples(&text);
    assert_eq!(
        replays[r#"backtest_stream_replays_total{source="history"}"#], 1.0,
        "{text}"
    );
    assert_eq!(
        replays[r#"backtest_stream_replays_total{source="redis"}"#],
        0.0
    );
}
