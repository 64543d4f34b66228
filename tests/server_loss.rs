//! No silent loss when the hub's publish queue is full: a burst that overflows it refuses
//! progress and log lines (counted, and announced to the subscribers with `lagged`), never
//! a run's terminal event. Real sockets on 127.0.0.1.
#![cfg(feature = "server")]

mod server_support;

use std::collections::HashMap;

use backtest_stream::server::ServerConfig;
use backtest_stream::sink::{ProgressSink, SinkError};
use backtest_stream::wire::{Envelope, Event, ServerMessage, Topic};
use futures::StreamExt;
use server_support::*;
use tokio_tungstenite::tungstenite::Message;

const RUNS: usize = 8;
const PROGRESS_PER_RUN: u64 = 4_000;

/// What a client saw of a burst: events per run, terminal events, and the `missed` of
/// the `lagged` notices.
#[derive(Default)]
struct Seen {
    progress: HashMap<String, u64>,
    terminal: Vec<String>,
    missed: u64,
    last_seq: u64,
}

async fn read_burst(client: &mut Client) -> Seen {
    let mut seen = Seen::default();
    while seen.terminal.len() < RUNS {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .unwrap_or_else(|_| panic!("terminal events: {:?}", seen.terminal))
            .expect("open")
            .expect("frame");
        let Message::Text(text) = message else {
            continue;
        };
        match ServerMessage::from_json(&text).expect("a server message") {
            ServerMessage::Lagged { data } => seen.missed += data.missed,
            ServerMessage::Event(frame) => {
                assert_eq!(frame.seq, seen.last_seq + 1, "frames in order, no gap");
                seen.last_seq = frame.seq;
                let id = frame
                    .envelope
                    .event
                    .backtest_id()
                    .expect("a run")
                    .to_string();
                match &*frame.envelope.event {
                    Event::BacktestProgress(_) => *seen.progress.entry(id).or_default() += 1,
                    Event::BacktestComplete(_) | Event::BacktestError(_) => seen.terminal.push(id),
                    _ => {}
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_publish_queue_refuses_progress_never_a_terminal_event_and_says_so() {
    // A publish queue of 16: eight runs publishing at full speed overflow it at once.
    let server = TestServer::start(
        ServerConfig::default()
            .publish_queue_capacity(16)
            .terminal_reserve(RUNS)
            .queue_capacity(100_000),
    )
    .await;
    let mut client = server.connect().await;
    subscribe_topic(&mut client, "backtest").await;

    let publishers: Vec<_> = (0..RUNS)
        .map(|run| {
            let sink = server.hub.sink();
            std::thread::spawn(move || {
                let id = format!("run-{run}");
                let mut refused = 0u64;
                for bars in 1..=PROGRESS_PER_RUN {
                    let envelope = Envelope::new(Topic::BACKTEST, progress(&id, bars));
                    match sink.publish(&envelope) {
                        Ok(()) => {}
                        Err(SinkError::Full { .. }) => refused += 1,
                        Err(other) => panic!("{other}"),
                    }
                }
                let end = if run % 2 == 0 {
                    complete(&id)
                } else {
                    error(&id)
                };
                sink.publish(&Envelope::new(Topic::BACKTEST, end))
                    .expect("a terminal event is never refused");
                refused
            })
        })
        .collect();
    let refused: u64 = publishers
        .into_iter()
        .map(|p| p.join().expect("publisher"))
        .sum();

    let seen = read_burst(&mut client).await;
    let mut terminal = seen.terminal.clone();
    terminal.sort();
    let expected: Vec<String> = (0..RUNS).map(|run| format!("run-{run}")).collect();
    assert_eq!(
        terminal, expected,
        "every run's terminal event arrived once"
    );

    let stats = server.hub.stats();
    assert!(refused > 0, "the burst overflowed the publish queue");
    assert_eq!(stats.dropped.publish_queue_full, refused);
    assert_eq!(stats.dropped.terminal_refused, 0);
    // Every refused event was announced: what arrived plus what was announced missing
    // is everything published.
    let delivered: u64 = seen.progress.values().sum();
    assert_eq!(delivered + seen.missed, RUNS as u64 * PROGRESS_PER_RUN);
    assert_eq!(seen.missed, refused);
}
