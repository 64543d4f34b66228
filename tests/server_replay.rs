//! Sequence numbers, replay with `since`, epochs, history overflow and snapshots.
#![cfg(feature = "server")]

mod server_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use backtest_stream::server::{HubSink, ServerConfig};
use backtest_stream::sink::{ProgressSink, SinkError};
use backtest_stream::wire::{Envelope, Topic};
use serde_json::json;
use server_support::*;

/// Publishes progress events with seq `range` from a plain thread, never more than
/// `window` ahead of what the reader reports in `received`.
fn paced_publisher(
    sink: HubSink,
    range: std::ops::RangeInclusive<u64>,
    received: Arc<AtomicU64>,
    window: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for bars in range {
            while bars > received.load(Ordering::Acquire) + window {
                std::thread::sleep(Duration::from_micros(100));
            }
            let envelope = Envelope::new(Topic::BACKTEST, progress("r1", bars));
            loop {
                match sink.publish(&envelope) {
                    Ok(()) => break,
                    Err(SinkError::Full { .. }) => std::thread::yield_now(),
                    Err(e) => panic!("publish failed: {e}"),
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_reconnect_has_no_gap_and_no_duplicate_while_publishing_continues() {
    let total: u64 = 10_000;
    let server = TestServer::start(ServerConfig::default().history_size(total as usize)).await;
    let mut first = server.connect().await;
    let confirmed = subscribe_topic(&mut first, "backtest").await;
    let epoch = confirmed["epoch"].as_str().expect("epoch").to_owned();

    // A plain thread publishes all the time the clients reconnect, at most WINDOW events
    // ahead of the reader (less than the queue), so that the live part never overflows
    // however slowly this debug-build test client runs.
    let received = Arc::new(AtomicU64::new(0));
    let publisher = paced_publisher(server.hub.sink(), 1..=total, Arc::clone(&received), 512);

    // The first client reads a while, then goes away.
    let mut last = 0;
    while last < 3_000 {
        let frame = recv(&mut first).await;
        let seq = frame["seq"].as_u64().expect("seq");
        assert_eq!(seq, last + 1);
        last = seq;
        received.store(seq, Ordering::Release);
    }
    drop(first);

    // The second picks up exactly where the first stopped.
    let mut second = server.connect().await;
    let confirmed = subscribe(
        &mut second,
        json!({"action": "subscribe", "topic": "backtest", "since": last, "epoch": epoch}),
    )
    .await;
    assert_eq!(confirmed["recovered"], true, "{confirmed}");
    let head = confirmed["seq"].as_u64().expect("head seq");
    assert!(head >= last);
    assert!(head < total, "the publisher was still running at the seam");
    while last < total {
        let frame = recv(&mut second).await;
        assert_eq!(frame["type"], "backtest_progress", "{frame}");
        let seq = frame["seq"].as_u64().expect("seq");
        assert_eq!(seq, last + 1, "no gap and no duplicate at the seam");
        assert_eq!(frame["data"]["bars_processed"], seq);
        last = seq;
        received.store(seq, Ordering::Release);
    }
    publisher.join().expect("publisher");
}

#[tokio::test]
async fn since_from_another_epoch_is_not_recovered() {
    let server = TestServer::start(ServerConfig::default()).await;
    for bars in 1..=5 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    let mut client = server.connect().await;
    let confirmed = subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "backtest", "since": 2, "epoch": "an-old-server"}),
    )
    .await;
    assert_eq!(confirmed["recovered"], false);
    assert_eq!(confirmed["seq"], 5);
    // Nothing is replayed; live events follow.
    server.publish(Topic::BACKTEST, progress("r1", 6));
    assert_eq!(recv(&mut client).await["seq"], 6);
}

/// Subscribes `client` with `since: 0` and the current epoch, and checks that it is told
/// `missed` events are gone, then gets exactly the `retained` seqs.
async fn replay_from_the_start_with_a_gap(
    server: &TestServer,
    client: &mut Client,
    missed: u64,
    retained: std::ops::RangeInclusive<u64>,
) {
    let confirmed = subscribe(
        client,
        json!({"action": "subscribe", "topic": "backtest", "since": 0, "epoch": server.hub.epoch()}),
    )
    .await;
    assert_eq!(confirmed["recovered"], false);
    assert_eq!(
        recv(client).await,
        json!({"type": "lagged", "data": {"topic": "backtest", "missed": missed}})
    );
    for seq in retained {
        assert_eq!(recv(client).await["seq"], seq);
    }
}

#[tokio::test]
async fn since_older_than_the_history_gets_lagged_then_what_is_retained() {
    let server = TestServer::start(ServerConfig::default().history_size(10)).await;
    for bars in 1..=30 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    let mut client = server.connect().await;
    server.wait_stats(|s| s.events_published == 30).await;
    replay_from_the_start_with_a_gap(&server, &mut client, 20, 21..=30).await;
    server.publish(Topic::BACKTEST, progress("r1", 31));
    assert_eq!(recv(&mut client).await["seq"], 31);
}

#[tokio::test]
async fn replay_with_a_run_filter_replays_only_that_run() {
    let server = TestServer::start(ServerConfig::default()).await;
    for bars in 1..=5 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
        server.publish(Topic::BACKTEST, progress("r2", bars));
    }
    server.wait_stats(|s| s.events_published == 10).await;
    let mut client = server.connect().await;
    let confirmed = subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "backtest", "backtest_id": "r2", "since": 0}),
    )
    .await;
    assert_eq!(confirmed["recovered"], true);
    for bars in 1..=5 {
        let frame = recv(&mut client).await;
        assert_eq!(frame["data"]["backtest_id"], "r2");
        assert_eq!(frame["seq"], bars * 2);
    }
}

#[tokio::test]
async fn snapshot_shows_a_run_in_progress_to_a_late_joiner() {
    let server = TestServer::start(ServerConfig::default().history_size(0)).await;
    server.publish(Topic::BACKTEST, start("r1"));
    for bars in 1..=50 {
        server.publish(Topic::BACKTEST, progress("r1", bars * 100));
    }
    server.publish(Topic::BACKTEST, start("r2"));
    server.publish(Topic::BACKTEST, complete("r2"));
    server.wait_stats(|s| s.events_published == 53).await;

    let mut client = server.connect().await;
    subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "backtest", "snapshot": true}),
    )
    .await;
    assert_eq!(
        recv(&mut client).await,
        expected_frame(&start("r1"), "backtest", 1)
    );
    assert_eq!(
        recv(&mut client).await,
        expected_frame(&progress("r1", 5000), "backtest", 51)
    );
    assert_eq!(
        recv(&mut client).await,
        expected_frame(&start("r2"), "backtest", 52)
    );
    assert_eq!(
        recv(&mut client).await,
        expected_frame(&complete("r2"), "backtest", 53)
    );
    // Then live.
    server.publish(Topic::BACKTEST, progress("r1", 5100));
    assert_eq!(recv(&mut client).await["seq"], 54);
}

#[tokio::test]
async fn flush_from_a_plain_thread_waits_for_the_hub() {
    let server = TestServer::start(ServerConfig::default()).await;
    let sink = server.hub.sink();
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let thread = std::thread::spawn(move || {
        for bars in 1..=100 {
            sink.publish(&Envelope::new(Topic::BACKTEST, progress("r1", bars)))
                .expect("publish");
        }
        sink.flush().expect("flush");
        flag.store(true, Ordering::Release);
    });
    tokio::task::spawn_blocking(move || thread.join().expect("thread"))
        .await
        .expect("join");
    assert!(done.load(Ordering::Acquire));
    assert_eq!(server.hub.stats().events_published, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_longer_than_the_queue_continues_as_it_drains_then_goes_live() {
    let total: u64 = 5_000;
    let server = TestServer::start(
        ServerConfig::default()
            .history_size(total as usize)
            .queue_capacity(256),
    )
    .await;
    for bars in 1..=2_000 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    server.wait_stats(|s| s.events_published == 2_000).await;
    // Publishing goes on while the replay runs (at most 128 events ahead of the reader,
    // so that once live the small queue cannot overflow).
    let received = Arc::new(AtomicU64::new(0));
    let publisher = paced_publisher(server.hub.sink(), 2_001..=total, Arc::clone(&received), 128);
    let mut client = server.connect().await;
    let confirmed = subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "backtest", "since": 10}),
    )
    .await;
    assert_eq!(confirmed["recovered"], true, "{confirmed}");
    let mut last = 10;
    while last < total {
        let frame = recv(&mut client).await;
        assert_eq!(frame["type"], "backtest_progress", "{frame}");
        let seq = frame["seq"].as_u64().expect("seq");
        assert_eq!(seq, last + 1, "no gap and no duplicate");
        last = seq;
        received.store(seq, Ordering::Release);
    }
    publisher.join().expect("publisher");
    assert_eq!(server.hub.stats().dropped.lagged, 0);
}

#[tokio::test]
async fn since_with_snapshot_sends_each_seq_once_and_in_order() {
    let server = TestServer::start(ServerConfig::default().history_size(10)).await;
    server.publish(Topic::BACKTEST, start("r1")); // seq 1
    for bars in 1..=6 {
        server.publish(Topic::BACKTEST, progress("r1", bars)); // 2..=7
    }
    server.publish(Topic::BACKTEST, start("r2")); // 8
    for bars in 1..=3 {
        server.publish(Topic::BACKTEST, progress("r2", bars)); // 9..=11
    }
    server.publish(Topic::BACKTEST, complete("r2")); // 12
    for bars in 7..=24 {
        server.publish(Topic::BACKTEST, progress("r1", bars)); // 13..=30; 21..=30 retained
    }
    server.wait_stats(|s| s.events_published == 30).await;

    let mut client = server.connect().await;
    // No `epoch`: the `since` is taken to be of this server's epoch.
    let confirmed = subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "backtest", "since": 5, "snapshot": true}),
    )
    .await;
    assert_eq!(confirmed["recovered"], false, "{confirmed}");
    // The snapshot fills the part of the gap no longer retained (r2's start, latest
    // progress and end); r1's start (seq 1 <= since) and latest progress (seq 30, in the
    // replay) are not repeated. Then the replay of 21..=30, then live. Each stretch lost
    // is announced just before the frame after it (6-7, 9-10, 13-20).
    let (mut frames, mut order) = (Vec::new(), Vec::new());
    while frames.len() < 13 {
        let frame = recv(&mut client).await;
        if frame["type"] == "lagged" {
            order.push(format!("lagged {}", frame["data"]["missed"]));
        } else {
            order.push(frame["seq"].to_string());
            frames.push(frame);
        }
    }
    let mut expected: Vec<String> = ["lagged 2", "8", "lagged 2", "11", "12", "lagged 8"]
        .map(String::from)
        .into();
    expected.extend((21..=30).map(|seq: u64| seq.to_string()));
    assert_eq!(order, expected);
    assert_eq!(frames[0], expected_frame(&start("r2"), "backtest", 8));
    assert_eq!(frames[2], expected_frame(&complete("r2"), "backtest", 12));
    server.publish(Topic::BACKTEST, progress("r1", 25));
    assert_eq!(recv(&mut client).await["seq"], 31);
}

#[tokio::test]
async fn large_events_are_retained_within_the_byte_budgets() {
    use backtest_stream::wire::{Event, Results, Side, Trade};
    // A run that ends with a large backtest_complete: 2,000 trades, about 400 KB.
    let trade = Trade {
        side: Side::Long,
        size: 1.0,
        entry_time: ts(),
        entry_price: 101.123456789,
        exit_time: ts(),
        exit_price: 102.987654321,
        pnl: 1.864197532,
        closed_at_end: false,
    };
    let mut big = complete("big");
    if let Event::BacktestComplete(c) = &mut big {
        c.results = Results::with_trades(vec![trade; 2_000]);
    }
    let big_len = big.to_json().len();
    assert!(big_len > 300_000, "{big_len}");
    let server = TestServer::start(
        ServerConfig::default()
            .history_bytes(100_000)
            .snapshot_bytes(100_000),
    )
    .await;
    server.publish(Topic::BACKTEST, start("big"));
    server.publish(Topic::BACKTEST, big.clone());
    for bars in 1..=3 {
        server.publish(Topic::BACKTEST, progress("small", bars));
    }
    server.wait_stats(|s| s.events_published == 5).await;

    // The replay history dropped the large frame (and what came before it) and says so.
    let mut client = server.connect().await;
    replay_from_the_start_with_a_gap(&server, &mut client, 2, 3..=5).await;

    // The snapshot forgot the finished large run once another run was updated.
    let mut late = server.connect().await;
    subscribe(
        &mut late,
        json!({"action": "subscribe", "topic": "backtest", "snapshot": true}),
    )
    .await;
    assert_eq!(
        recv(&mut late).await,
        expected_frame(&progress("small", 3), "backtest", 5)
    );

    // Live clients still get large events whole.
    server.publish(Topic::BACKTEST, big.clone());
    let frame = recv(&mut client).await;
    assert_eq!(frame, expected_frame(&big, "backtest", 6));
    assert_eq!(
        frame["data"]["results"]["trades"].as_array().unwrap().len(),
        2_000
    );
}

#[tokio::test]
async fn a_replay_that_exactly_fills_the_queue_after_a_lagged_notice_loses_nothing() {
    // History 4, queue 4: a `since` older than the history leaves 4 retained frames to
    // replay, the last one a terminal event, behind a `lagged` notice that takes a place
    // of its own. (The notice once made the last frame not fit: dropped, and announced
    // by a notice that no later event ever carried out.)
    let server = TestServer::start(ServerConfig::default().history_size(4).queue_capacity(4)).await;
    for bars in 1..=9 {
        server.publish(Topic::BACKTEST, progress("r1", bars));
    }
    server.publish(Topic::BACKTEST, complete("r1"));
    let mut client = server.connect().await;
    let epoch = server.hub.epoch().to_owned();
    let confirmed = subscribe(
        &mut client,
        json!({"action": "subscribe", "topic": "backtest", "since": 1, "epoch": epoch}),
    )
    .await;
    assert_eq!(confirmed["recovered"], false, "{confirmed}");
    let lagged = recv(&mut client).await;
    assert_eq!(lagged["data"]["missed"], 5, "seqs 2 to 6: {lagged}");
    let seqs: Vec<u64> = [
        recv(&mut client).await,
        recv(&mut client).await,
        recv(&mut client).await,
        recv(&mut client).await,
    ]
    .iter()
    .map(|frame| frame["seq"].as_u64().unwrap_or(0))
    .collect();
    assert_eq!(seqs, [7, 8, 9, 10]);
}
