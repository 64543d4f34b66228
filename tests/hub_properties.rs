//! The hub against its promises, over random sequences of what clients and publishers do:
//! connect, subscribe (to a topic or one run; with `since` + `epoch`, `snapshot`),
//! unsubscribe, publish from several runs, read (or not: slow readers), disconnect.
//! Real server, real sockets, tiny queues and history so that lag, replay paging and
//! missed history happen all the time. For every client, on every topic it follows in
//! full:
//!
//! - event frames come in seq order, none twice (snapshot frames aside: a snapshot is the
//!   runs' latest state, sent run by run);
//! - every gap in the seqs was announced by `lagged` before the next event;
//! - every run that ended while the client followed the topic without a break, and was
//!   not closed by the server, reached it with its terminal event.
#![cfg(feature = "server")]

mod server_support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::sink::ProgressSink;
use backtest_stream::wire::{ClientMessage, Envelope, ServerMessage, Subscribe, Topic};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use server_support::*;
use tokio_tungstenite::tungstenite::Message;

const TOPICS: [&str; 2] = ["backtest", "trading"];
const RUNS: u8 = 3;

#[derive(Debug, Clone)]
enum Op {
    Connect,
    Subscribe {
        client: usize,
        topic: usize,
        run: Option<u8>,
        resume: bool,
        snapshot: bool,
    },
    Unsubscribe {
        client: usize,
        topic: usize,
    },
    Publish {
        topic: usize,
        run: u8,
        terminal: bool,
        count: usize,
    },
    Read {
        client: usize,
    },
    /// The connection drops; the client connects again (to resume with `since`).
    Reconnect {
        client: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..4usize;
    prop_oneof![
        1 => Just(Op::Connect),
        3 => (client.clone(), 0..2usize, prop::option::of(0..RUNS), any::<bool>(), any::<bool>())
            .prop_map(|(client, topic, run, resume, snapshot)| Op::Subscribe { client, topic, run, resume, snapshot }),
        1 => (client.clone(), 0..2usize).prop_map(|(client, topic)| Op::Unsubscribe { client, topic }),
        5 => (0..2usize, 0..RUNS, prop::bool::weighted(0.2), 1..30usize)
            .prop_map(|(topic, run, terminal, count)| Op::Publish { topic, run, terminal, count }),
        4 => client.clone().prop_map(|client| Op::Read { client }),
        1 => client.prop_map(|client| Op::Reconnect { client }),
    ]
}

/// What one topic looks like to one client.
#[derive(Default)]
struct Follow {
    /// Subscribed now (frames of a topic left may still trail in).
    active: bool,
    /// Subscribed to the whole topic (not only some runs), without a break since `last`.
    whole: bool,
    /// The last seq of a live frame.
    last: Option<u64>,
    /// Missed events announced since the last frame.
    announced: u64,
    /// Frames up to this seq are a snapshot's (after a snapshot confirmation).
    snapshot_head: Option<u64>,
    /// Terminal events published while this client followed the whole topic.
    owed: HashSet<String>,
}

struct TestClient {
    ws: Option<Client>,
    follows: BTreeMap<usize, Follow>,
    /// The last seq read of each topic on a connection that dropped: where to resume.
    resume_from: BTreeMap<usize, u64>,
    /// The server closed this client (it fell too far behind).
    closed_by_server: bool,
    received_terminal: HashSet<(usize, String)>,
    epoch: Option<String>,
    violations: Vec<String>,
    /// A subscribe sent and not yet confirmed: its topic, whether the whole topic is
    /// followed once it is, and where the continuity of the whole topic starts again
    /// then (`None`: it goes on).
    awaiting: Option<(usize, bool, Option<Option<u64>>)>,
}

impl TestClient {
    fn on_text(&mut self, text: &str) {
        let Ok(message) = ServerMessage::from_json(text) else {
            self.violations.push(format!("unreadable {text}"));
            return;
        };
        match message {
            ServerMessage::SubscriptionConfirmed(c) => {
                self.epoch = c.epoch.clone();
                let topic = TOPICS.iter().position(|t| c.topic == *t).unwrap_or(0);
                let follow = self.follows.entry(topic).or_default();
                // Frames after the confirmation belong to the new subscription.
                if let Some((_, whole, reset)) = self.awaiting.take_if(|(t, _, _)| *t == topic) {
                    follow.whole = whole;
                    if let Some(last) = reset {
                        follow.last = last;
                        follow.announced = 0;
                        follow.owed.clear();
                    }
                }
                follow.snapshot_head = c.seq.filter(|_| c.recovered.is_none());
            }
            ServerMessage::Lagged { data } => {
                let topic = TOPICS.iter().position(|t| data.topic == *t).unwrap_or(0);
                self.follows.entry(topic).or_default().announced += data.missed;
            }
            ServerMessage::Event(frame) => self.on_event(&frame.envelope, frame.seq),
            _ => {}
        }
    }

    fn on_event(&mut self, envelope: &Envelope, seq: u64) {
        let topic = TOPICS
            .iter()
            .position(|t| envelope.topic == *t)
            .unwrap_or(0);
        let id = envelope.event.backtest_id().map(ToString::to_string);
        if envelope.event.is_terminal() {
            if let Some(id) = &id {
                self.received_terminal.insert((topic, id.clone()));
            }
        }
        let follow = self.follows.entry(topic).or_default();
        if !follow.active {
            return; // trailing frames of a topic left
        }
        if follow.snapshot_head.is_some_and(|head| seq <= head) {
            return; // a snapshot frame
        }
        follow.snapshot_head = None;
        if let Some(last) = follow.last {
            if seq <= last {
                self.violations
                    .push(format!("topic {topic}: seq {seq} after {last}"));
            } else if follow.whole && seq - last - 1 > follow.announced {
                self.violations.push(format!(
                    "topic {topic}: {} missed after {last}, {} announced",
                    seq - last - 1,
                    follow.announced
                ));
            }
        }
        follow.last = Some(seq);
        follow.announced = 0;
    }

    /// Reads what has arrived (a short wait for each frame).
    async fn read_available(&mut self, wait: Duration) {
        loop {
            let Some(ws) = self.ws.as_mut() else { return };
            match tokio::time::timeout(wait, ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => self.on_text(&text),
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                    self.closed_by_server = true;
                    self.ws = None;
                    return;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// The state of a whole case.
struct World {
    hub: Hub,
    clients: Vec<TestClient>,
    /// The runs that ended, per topic.
    ended: HashSet<(usize, u8)>,
    next_bar: u64,
}

impl World {
    async fn apply(&mut self, server: &TestServer, op: &Op) {
        match *op {
            Op::Connect => {
                if self.clients.len() < 4 {
                    let ws = server.connect().await;
                    self.clients.push(TestClient {
                        ws: Some(ws),
                        follows: BTreeMap::new(),
                        resume_from: BTreeMap::new(),
                        closed_by_server: false,
                        received_terminal: HashSet::new(),
                        epoch: None,
                        violations: Vec::new(),
                        awaiting: None,
                    });
                }
            }
            Op::Subscribe {
                client,
                topic,
                run,
                resume,
                snapshot,
            } => {
                self.subscribe(client, topic, run, resume, snapshot).await;
            }
            Op::Unsubscribe { client, topic } => {
                if let Some(c) = self.clients.get_mut(client) {
                    c.follows.remove(&topic);
                    c.follows.entry(topic).or_default();
                    let message = ClientMessage::Unsubscribe {
                        topic: Topic::new(TOPICS[topic]).expect("topic"),
                    };
                    send_message(c, &message).await;
                }
            }
            Op::Publish {
                topic,
                run,
                terminal,
                count,
            } => self.publish(topic, run, terminal, count).await,
            Op::Read { client } => {
                if let Some(c) = self.clients.get_mut(client) {
                    c.read_available(Duration::from_millis(5)).await;
                }
            }
            Op::Reconnect { client } => {
                let Some(c) = self.clients.get_mut(client) else {
                    return;
                };
                if let Some(mut ws) = c.ws.take() {
                    let _ = ws.close(None).await;
                }
                for (topic, follow) in std::mem::take(&mut c.follows) {
                    if let (true, Some(last)) = (follow.whole && follow.active, follow.last) {
                        c.resume_from.insert(topic, last);
                    }
                }
                c.closed_by_server = false;
                c.ws = Some(server.connect().await);
            }
        }
    }

    async fn subscribe(
        &mut self,
        client: usize,
        topic: usize,
        run: Option<u8>,
        resume: bool,
        snapshot: bool,
    ) {
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        if c.ws.is_none() {
            return;
        }
        let mut request = Subscribe::to(Topic::new(TOPICS[topic]).expect("topic"));
        request.backtest_id = run.map(|r| id(&format!("r{r}")));
        request.snapshot = snapshot;
        let follow = c.follows.entry(topic).or_default();
        let was_whole = follow.active && follow.whole;
        // Resuming: a whole-topic subscribe on a new connection, from where the dropped
        // one stopped; its seqs before are not owed again, the ones after are.
        let resume_from = (resume && run.is_none() && !follow.active)
            .then(|| c.resume_from.remove(&topic))
            .flatten();
        if let Some(since) = resume_from {
            request.since = Some(since);
            request.epoch = c.epoch.clone();
        }
        // Unless the whole topic was followed already, a new continuity starts with the
        // confirmation: from `since` when resuming, else from the next live frame.
        c.awaiting = Some((
            topic,
            was_whole || run.is_none(),
            (!was_whole).then_some(resume_from),
        ));
        if !follow.active {
            follow.whole = false;
        }
        follow.active = true;
        send_message(c, &ClientMessage::from(request)).await;
        // Read until the confirmation (the frames before it are of the old subscription).
        let deadline = tokio::time::Instant::now() + WAIT;
        while c.awaiting.is_some() && c.ws.is_some() && tokio::time::Instant::now() < deadline {
            c.read_available(Duration::from_millis(10)).await;
        }
    }

    async fn publish(&mut self, topic: usize, run: u8, terminal: bool, count: usize) {
        let run_id = format!("r{run}");
        let mut envelopes = Vec::new();
        if self.ended.remove(&(topic, run)) || self.next_bar == 0 {
            envelopes.push(start(&run_id));
        }
        for _ in 0..count {
            self.next_bar += 1;
            envelopes.push(progress(&run_id, self.next_bar));
        }
        if terminal {
            envelopes.push(complete(&run_id));
            self.ended.insert((topic, run));
            for c in self.clients.iter_mut().filter(|c| c.ws.is_some()) {
                if let Some(follow) = c.follows.get_mut(&topic).filter(|f| f.whole && f.active) {
                    follow.owed.insert(run_id.clone());
                }
            }
        }
        let sink = self.hub.sink();
        let topic = Topic::new(TOPICS[topic]).expect("topic");
        tokio::task::spawn_blocking(move || {
            for event in envelopes {
                let _ = sink.publish(&Envelope::new(topic.clone(), event));
            }
            sink.flush().expect("the hub takes the events");
        })
        .await
        .expect("publisher");
    }

    /// Reads everything still coming, then checks every promise.
    async fn finish(mut self) -> Vec<String> {
        let mut violations = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            c.read_available(Duration::from_millis(200)).await;
            violations.extend(c.violations.iter().map(|v| format!("client {i}: {v}")));
            if c.closed_by_server || c.ws.is_none() {
                continue;
            }
            for (topic, follow) in c.follows.iter().filter(|(_, f)| f.active) {
                for run in &follow.owed {
                    if !c.received_terminal.contains(&(*topic, run.clone())) {
                        violations.push(format!(
                            "client {i}: no terminal event of {run} on topic {topic}"
                        ));
                    }
                }
            }
        }
        violations
    }
}

async fn send_message(client: &mut TestClient, message: &ClientMessage) {
    if let Some(ws) = client.ws.as_mut() {
        if ws.send(Message::text(message.to_json())).await.is_err() {
            client.ws = None;
            client.closed_by_server = true;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_client_gets_ordered_announced_and_terminal_complete_streams(ops in prop::collection::vec(op(), 1..50)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let violations = runtime.block_on(async {
            let server = TestServer::start(
                ServerConfig::default().queue_capacity(8).history_size(16),
            )
            .await;
            let mut world = World { hub: server.hub.clone(), clients: Vec::new(), ended: HashSet::new(), next_bar: 0 };
            for op in std::iter::once(&Op::Connect).chain(&ops) {
                world.apply(&server, op).await;
            }
            world.finish().await
        });
        prop_assert!(violations.is_empty(), "{violations:#?}");
    }
}
