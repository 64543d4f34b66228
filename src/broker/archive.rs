//! A gateway's archive: the hub fetches events older than its history from the topic's
//! stream (`XREVRANGE`), so a client resuming from far back is served from Redis.

use ::redis::aio::MultiplexedConnection;
use ::redis::streams::StreamRangeReply;
use ::redis::{AsyncCommands, Client};
use tokio::sync::mpsc;

use crate::broker::follow::{Marker, read};
use crate::broker::script::TopicKeys;
use crate::server::{Archive, ArchiveRequest, Command, Hub};
use crate::wire::Event;

/// Fetches waiting at most; past it the hub replays from its history only.
const WAITING: usize = 64;

/// The hub's side: hands requests to the fetching task.
pub(crate) struct RedisArchive {
    requests: mpsc::Sender<ArchiveRequest>,
}

impl Archive for RedisArchive {
    fn fetch(&self, request: ArchiveRequest) -> bool {
        self.requests.try_send(request).is_ok()
    }
}

/// The archive for `hub`, and the task that serves its fetches from `client`.
pub(crate) fn archive(client: Client, hub: Hub, prefix: String) -> (RedisArchive, Fetcher) {
    let (requests, waiting) = mpsc::channel(WAITING);
    let fetcher = Fetcher {
        client,
        hub,
        prefix,
        waiting,
        connection: None,
    };
    (RedisArchive { requests }, fetcher)
}

pub(crate) struct Fetcher {
    client: Client,
    hub: Hub,
    prefix: String,
    waiting: mpsc::Receiver<ArchiveRequest>,
    connection: Option<MultiplexedConnection>,
}

/// What a range held: its events in seq order, the events it misses, and whether it
/// held every seq.
type Found = (Vec<(u64, Event)>, u64, bool);

impl Fetcher {
    /// Answers every fetch, in order, until the hub is gone.
    pub(crate) async fn run(mut self) {
        while let Some(request) = self.waiting.recv().await {
            let range = request.until.saturating_sub(request.from);
            let (events, missed, complete) = match self.fetch(&request).await {
                Ok(found) => found,
                Err(_) => {
                    // Redis is away: the history's part only, the rest announced missed.
                    self.connection = None;
                    (Vec::new(), range, false)
                }
            };
            self.hub.command(Command::Archived {
                id: request.conn,
                topic: request.topic,
                events,
                missed,
                until: request.until,
                complete,
            });
        }
    }

    async fn fetch(&mut self, request: &ArchiveRequest) -> Result<Found, ::redis::RedisError> {
        if self.connection.is_none() {
            self.connection = Some(self.client.get_multiplexed_async_connection().await?);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Ok((Vec::new(), 0, false));
        };
        let key = TopicKeys::new(&self.prefix, &request.topic).stream;
        // The newest entries of the range (an id of a seq alone spans all its entries).
        let end = request.until.saturating_sub(1).to_string();
        let start = request.from.to_string();
        let reply: StreamRangeReply = connection
            .xrevrange_count(&key, end, start, request.max)
            .await?;
        let mut events = Vec::new();
        let mut lost = 0;
        for entry in reply.ids.into_iter().rev() {
            let seq = entry
                .id
                .split_once('-')
                .and_then(|(seq, _)| seq.parse::<u64>().ok());
            match (seq, read(&entry, "e"), read(&entry, "m")) {
                (Some(seq), Some(text), _) => {
                    if let Ok(event) = Event::from_json(&text) {
                        events.push((seq, event));
                    }
                }
                (_, None, Some(text)) => {
                    lost += serde_json::from_str::<Marker>(&text).map_or(0, |m| m.missed);
                }
                _ => {}
            }
        }
        let range = request.until.saturating_sub(request.from);
        let found = events.len() as u64;
        Ok((events, range.saturating_sub(found) + lost, found == range))
    }
}
