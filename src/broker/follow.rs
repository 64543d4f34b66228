//! The follower of a [`Gateway`](crate::broker::Gateway): reads the topics' streams
//! from where it stopped and hands their entries to the hub, in order, with the
//! broker's seq; watches the topics' epochs; reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use ::redis::{AsyncCommands, AsyncConnectionConfig, Client, Script, Value};
use serde::Deserialize;

use crate::broker::gateway::{FollowState, GatewayConfig};
use crate::broker::script::{ENSURE_EPOCH, TopicKeys};
use crate::server::{Hub, Input};
use crate::wire::{BacktestId, Envelope, Event, Topic};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Why following stopped.
enum Stop {
    /// Redis failed (reconnect).
    Redis(String),
    /// The hub shut down (stop for good).
    HubClosed,
}

impl From<::redis::RedisError> for Stop {
    fn from(error: ::redis::RedisError) -> Self {
        Stop::Redis(error.to_string())
    }
}

/// A loss marker's body.
#[derive(Deserialize)]
pub(super) struct Marker {
    pub(super) missed: u64,
    pub(super) backtest_id: Option<BacktestId>,
}

/// Where the gateway is in one topic.
struct Position {
    topic: Topic,
    keys: TopicKeys,
    /// The id of the last entry read (`0-0` before the first).
    last: String,
    /// The id of the last entry handed to the hub, as numbers: entries read again (the
    /// tail read at a new epoch, a read after a reconnection) are skipped.
    delivered: (u64, u64),
    /// The epoch the hub has for the topic.
    epoch: Option<String>,
}

pub(crate) struct Follower {
    client: Client,
    hub: Hub,
    state: Arc<FollowState>,
    config: GatewayConfig,
    positions: Vec<Position>,
    ensure: Script,
}

impl Follower {
    pub(crate) fn new(
        client: Client,
        hub: Hub,
        state: Arc<FollowState>,
        config: GatewayConfig,
    ) -> Self {
        let positions = config
            .topics
            .iter()
            .map(|topic| Position {
                topic: topic.clone(),
                keys: TopicKeys::new(&config.key_prefix, topic),
                last: "0-0".into(),
                delivered: (0, 0),
                epoch: None,
            })
            .collect();
        Self {
            client,
            hub,
            state,
            config,
            positions,
            ensure: Script::new(ENSURE_EPOCH),
        }
    }

    /// Follows until the hub shuts down, reconnecting with backoff.
    pub(crate) async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        let mut connected_before = false;
        loop {
            let timeout = self.config.block + Duration::from_secs(5);
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(timeout));
            let stop = match self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(mut connection) => {
                    backoff = FIRST_BACKOFF;
                    if std::mem::replace(&mut connected_before, true) {
                        self.state.update(|s| s.reconnects += 1);
                    }
                    self.follow(&mut connection).await
                }
                Err(error) => Stop::from(error),
            };
            match stop {
                Stop::HubClosed => return,
                Stop::Redis(error) => self.state.update(|s| {
                    s.connected = false;
                    s.failures += 1;
                    s.last_error = Some(error);
                }),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    /// Reads the streams until something fails.
    async fn follow(&mut self, connection: &mut MultiplexedConnection) -> Stop {
        // The epochs are read at the start, after a read that found nothing, and at
        // least every `block` otherwise: not before every read, which would add a round
        // trip to every event's way.
        let mut checked: Option<tokio::time::Instant> = None;
        loop {
            if checked.is_none_or(|at| at.elapsed() >= self.config.block) {
                if let Err(stop) = self.check_epochs(connection).await {
                    return stop;
                }
                checked = Some(tokio::time::Instant::now());
                self.state.update(|s| s.connected = true);
            }
            let keys: Vec<&str> = self
                .positions
                .iter()
                .map(|p| p.keys.stream.as_str())
                .collect();
            let ids: Vec<&str> = self.positions.iter().map(|p| p.last.as_str()).collect();
            let block = usize::try_from(self.config.block.as_millis()).unwrap_or(usize::MAX);
            let options = StreamReadOptions::default()
                .count(self.config.batch)
                .block(block);
            let reply: Option<StreamReadReply> =
                match connection.xread_options(&keys, &ids, &options).await {
                    Ok(reply) => reply,
                    Err(error) => return Stop::from(error),
                };
            if reply.is_none() {
                checked = None;
            }
            for stream in reply.map(|r| r.keys).unwrap_or_default() {
                let Some(index) = self
                    .positions
                    .iter()
                    .position(|p| p.keys.stream == stream.key)
                else {
                    continue;
                };
                // A topic's first events: its epoch first (it exists by then: the
                // script sets it with the first append), so no event of it is ever
                // delivered under the hub's own epoch.
                if self.positions[index].epoch.is_none() {
                    if let Err(stop) = self.check_epochs(connection).await {
                        return stop;
                    }
                    checked = Some(tokio::time::Instant::now());
                }
                for entry in stream.ids {
                    if let Err(stop) = self.deliver(index, entry).await {
                        return stop;
                    }
                }
            }
        }
    }

    /// Reads every topic's epoch, making it when the topic has none yet (so that clients
    /// are never given one its events will not carry), and its counter for the broker
    /// lag: a topic met for the first time with a past is rebuilt from its stream's
    /// tail (a new one is read whole); a changed epoch (the broker lost its data) starts
    /// it anew, read from its start.
    async fn check_epochs(&mut self, connection: &mut MultiplexedConnection) -> Result<(), Stop> {
        let mut counters = Vec::with_capacity(self.positions.len());
        for index in 0..self.positions.len() {
            let keys = &self.positions[index].keys;
            let (observed, counter): (String, Option<String>) = self
                .ensure
                .key(&keys.seq)
                .key(&keys.epoch)
                .arg(uuid::Uuid::new_v4().to_string())
                .invoke_async(connection)
                .await?;
            let counter = counter.and_then(|c| c.parse::<u64>().ok());
            let had_past = counter > Some(0);
            counters.push(counter);
            let known = self.positions[index].epoch.clone();
            if known.as_ref() == Some(&observed) {
                continue;
            }
            if known.is_some() {
                // Redis lost its data: the topic starts anew, read from its start.
                self.state.update(|s| s.epoch_changes += 1);
                self.positions[index].delivered = (0, 0);
                self.positions[index].last = "0-0".into();
            }
            let topic = self.positions[index].topic.clone();
            self.offer(Input::Epoch {
                topic,
                epoch: observed.clone(),
            })
            .await?;
            self.positions[index].epoch = Some(observed);
            if known.is_none() && had_past {
                // The gateway starts on a stream with a past: its tail only (a new
                // topic is read whole, from its start).
                self.rebuild(connection, index).await?;
            }
        }
        self.note_lag(&counters);
        Ok(())
    }

    /// Records how far each topic's counter in Redis is ahead of what was read.
    fn note_lag(&self, counters: &[Option<u64>]) {
        let behind = self
            .positions
            .iter()
            .zip(counters)
            .map(|(position, numbered)| {
                let lag = numbered.unwrap_or(0).saturating_sub(position.delivered.0);
                (position.topic.clone(), lag)
            });
        let behind = behind.collect();
        self.state.update(|s| s.behind = behind);
    }

    /// Reads the last `tail` entries of a topic's stream into the hub.
    async fn rebuild(
        &mut self,
        connection: &mut MultiplexedConnection,
        index: usize,
    ) -> Result<(), Stop> {
        let key = self.positions[index].keys.stream.clone();
        let tail = self.config.tail.max(1);
        let reply: StreamRangeReply = connection.xrevrange_count(&key, "+", "-", tail).await?;
        self.positions[index].last = "0-0".into();
        for entry in reply.ids.into_iter().rev() {
            self.deliver(index, entry).await?;
        }
        Ok(())
    }

    /// Hands one entry to the hub: an event with its seq, or a loss marker.
    async fn deliver(&mut self, index: usize, entry: StreamId) -> Result<(), Stop> {
        let topic = self.positions[index].topic.clone();
        let id = entry
            .id
            .split_once('-')
            .and_then(|(seq, sub)| Some((seq.parse::<u64>().ok()?, sub.parse::<u64>().ok()?)));
        let seq = id.map(|(seq, _)| seq);
        self.positions[index].last = entry.id.clone();
        match id {
            Some(id) if id <= self.positions[index].delivered => return Ok(()),
            Some(id) => self.positions[index].delivered = id,
            None => {}
        }
        let input = match (seq, read(&entry, "e"), read(&entry, "m")) {
            (Some(seq), Some(text), _) => match Event::from_json(&text) {
                Ok(event) => Some((
                    Input::Numbered(Envelope::new(topic.clone(), event), seq),
                    false,
                )),
                Err(_) => None,
            },
            (_, None, Some(text)) => match serde_json::from_str::<Marker>(&text) {
                Ok(marker) => Some((
                    Input::Missed {
                        topic: topic.clone(),
                        run: marker.backtest_id,
                        missed: marker.missed,
                    },
                    true,
                )),
                Err(_) => None,
            },
            _ => None,
        };
        let Some((input, is_marker)) = input else {
            self.state.update(|s| s.malformed += 1);
            return Ok(());
        };
        self.offer(input).await?;
        self.state.update(|s| {
            if is_marker {
                s.loss_markers += 1;
            } else {
                s.events += 1;
            }
            if let Some(seq) = seq {
                s.last_seq.insert(topic, seq);
            }
        });
        Ok(())
    }

    /// Hands an input to the hub, waiting while its publish queue is full (the broker
    /// keeps the entries meanwhile: nothing is dropped here).
    async fn offer(&self, mut input: Input) -> Result<(), Stop> {
        loop {
            match self.hub.offer(input) {
                Ok(()) => return Ok(()),
                Err((_, true)) => return Err(Stop::HubClosed),
                Err((back, false)) => {
                    input = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
}

/// The text of field `field` of an entry.
pub(super) fn read(entry: &StreamId, field: &str) -> Option<String> {
    match entry.map.get(field)? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}
