//! A client that stops reading hurts nobody but itself, and still learns what it missed.
#![cfg(feature = "server")]

mod server_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backtest_stream::server::{LagPolicy, ServerConfig};
use backtest_stream::sink::{ProgressSink, SinkError};
use backtest_stream::wire::{Envelope, Topic};
use futures::StreamExt;
use server_support::*;
use tokio_tungstenite::tungstenite::Message;

/// The resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The `seq` of a frame, found without parsing the whole frame.
fn seq_of(text: &str) -> Option<u64> {
    let at = text.rfind("\"seq\":")? + 6;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_while_100k_events_are_published() {
    const TOTAL: u64 = 100_000;
    const WINDOW: u64 = 512;
    let server = TestServer::start(ServerConfig::default().queue_capacity(1024)).await;
    let mut slow = server.connect().await;
    subscribe_topic(&mut slow, "backtest").await;
    let mut fast = server.connect().await;
    subscribe_topic(&mut fast, "backtest").await;

    // The fast client reads everything, in order.
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let fast_reader = tokio::spawn(async move {
        while let Some(Ok(message)) = fast.next().await {
            if let Message::Text(text) = message {
                let seq = seq_of(&text).expect("event frame with seq");
                let expected = counter.load(Ordering::Relaxed) + 1;
                assert_eq!(seq, expected, "fast client: in order, nothing missing");
                counter.store(seq, Ordering::Release);
                if seq == TOTAL {
                    assert!(text.starts_with(r#"{"type":"backtest_complete""#));
                    return;
                }
            }
        }
        panic!("fast client lost its connection");
    });

    let rss_before = rss_bytes();
    // A backtest thread publishes; it waits only for the fast client (a window smaller
    // than the queue), never for the slow one.
    let sink = server.hub.sink();
    let progress_of_fast = Arc::clone(&received);
    let publisher = std::thread::spawn(move || {
        for seq in 1..=TOTAL {
            let event = if seq == TOTAL {
                complete("r1")
            } else {
                progress("r1", seq)
            };
            let envelope = Envelope::new(Topic::BACKTEST, event);
            loop {
                match sink.publish(&envelope) {
                    Ok(()) => break,
                    Err(SinkError::Full { .. }) => std::thread::yield_now(),
                    Err(e) => panic!("publish failed: {e}"),
                }
            }
            while seq > progress_of_fast.load(Ordering::Acquire) + WINDOW {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    tokio::task::spawn_blocking(move || publisher.join().expect("publisher"))
        .await
        .expect("join");
    tokio::time::timeout(Duration::from_secs(60), fast_reader)
        .await
        .expect("the fast client gets everything")
        .expect("fast reader");
    let grown = rss_bytes().saturating_sub(rss_before);
    // 100k frames of ~330 bytes (plus their shared-buffer headers and queue handles)
    // would be over 40 MB if the slow client's queue were not bounded. The bound leaves
    // room for glibc creating one more malloc arena for a thread while this runs (its
    // first pages are counted here; with MALLOC_ARENA_MAX=1 the growth is ~0), which
    // happens or not with the threads' timing.
    assert!(
        grown < 24 << 20,
        "memory grew by {grown} bytes while a client did not read"
    );
    let stats = server.hub.stats();
    assert!(stats.dropped.lagged > 0, "{stats:?}");

    // Now the slow client reads: lagged notices account exactly for the gaps, and the
    // run's terminal event arrives.
    let mut last = 0;
    let mut delivered = 0;
    let mut missed_total = 0;
    let mut pending_missed = 0;
    loop {
        let frame = recv(&mut slow).await;
        if frame["type"] == "lagged" {
            assert_eq!(frame["data"]["topic"], "backtest");
            let missed = frame["data"]["missed"].as_u64().expect("missed");
            assert!(missed > 0);
            pending_missed += missed;
            missed_total += missed;
            continue;
        }
        let seq = frame["seq"].as_u64().expect("seq");
        assert_eq!(
            seq,
            last + pending_missed + 1,
            "gaps are exactly what lagged said"
        );
        pending_missed = 0;
        last = seq;
        delivered += 1;
        if seq == TOTAL {
            assert_eq!(frame["type"], "backtest_complete");
            break;
        }
    }
    assert!(missed_total > 0);
    assert_eq!(delivered + missed_total, TOTAL);
    assert_eq!(stats.dropped.lagged, missed_total);
}

#[tokio::test]
async fn the_disconnect_policy_closes_a_client_that_falls_behind() {
    let server = TestServer::start(
        ServerConfig::default()
            .queue_capacity(16)
            .lag_policy(LagPolicy::Disconnect),
    )
    .await;
    let mut slow = server.connect().await;
    subscribe_topic(&mut slow, "backtest").await;
    for bars in 0..50_000 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    server
        .wait_stats(|s| s.connection_events.dropped_slow == 1 && s.connections == 0)
        .await;
    let frame = recv_close(&mut slow).await;
    // The close frame comes after whatever was already in the socket: 4001, too slow
    // (PROTOCOL.md, "Closing").
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(4001));
}
