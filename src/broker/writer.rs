//! The writer of a [`RedisSink`](crate::broker::RedisSink): takes batches from the
//! queue, groups them by topic, appends each group with one script call, and keeps a
//! batch until Redis has it (reconnecting with backoff meanwhile).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};
use tokio::time::Instant;

use crate::broker::config::RedisSinkConfig;
use crate::broker::queue::Queue;
use crate::broker::script::{APPEND, TopicKeys};
use crate::broker::sink::WriterState;
use crate::wire::Topic;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// One topic's part of a batch: its entries' kinds (`e` an event, `m` a loss marker)
/// and JSON, and how many are events.
struct Group {
    topic: Topic,
    kinds: String,
    entries: Vec<String>,
    events: u64,
    markers: u64,
    /// Written already (a retry skips it).
    done: bool,
}

/// A batch, numbered for this producer, kept until every group is written.
struct Batch {
    number: u64,
    groups: Vec<Group>,
}

pub(crate) struct Writer {
    client: Client,
    queue: Arc<Queue>,
    state: Arc<WriterState>,
    script: Script,
    producer: String,
    prefix: String,
    max_len: u64,
    batch_size: usize,
    max_backoff: Duration,
    timeout: Duration,
    /// How long to go on trying once the sink is dropped.
    closing_grace: Duration,
    keys: HashMap<Topic, TopicKeys>,
}

impl Writer {
    pub(crate) fn new(
        client: Client,
        queue: Arc<Queue>,
        state: Arc<WriterState>,
        config: &RedisSinkConfig,
    ) -> Self {
        Self {
            client,
            queue,
            state,
            script: Script::new(APPEND),
            producer: uuid::Uuid::new_v4().simple().to_string(),
            prefix: config.key_prefix.clone(),
            max_len: config.max_len,
            batch_size: config.batch_size,
            max_backoff: config.max_backoff,
            timeout: config.response_timeout,
            closing_grace: config.terminal_wait,
            keys: HashMap::new(),
        }
    }

    /// Writes until the sink is dropped and the queue is written (or the grace after
    /// the drop ran out while Redis was unreachable).
    pub(crate) async fn run(mut self) {
        let mut connection: Option<ConnectionManager> = None;
        let mut pending: Option<Batch> = None;
        let mut numbers = 0;
        let mut backoff = FIRST_BACKOFF;
        let mut closing_since: Option<Instant> = None;
        loop {
            if self.queue.closed.load(Ordering::Acquire) {
                let since = *closing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > self.closing_grace {
                    return;
                }
            }
            if pending.is_none() {
                match self.take_batch(numbers + 1) {
                    Some(batch) => {
                        numbers += 1;
                        pending = Some(batch);
                    }
                    None if closing_since.is_some() => return,
                    None => {
                        self.wait_for_events().await;
                        continue;
                    }
                }
            }
            let Some(batch) = pending.as_mut() else {
                continue;
            };
            let outcome = match connection.as_mut() {
                Some(connection) => self.write(connection, batch).await,
                None => match self.connect().await {
                    Ok(made) => {
                        connection = Some(made);
                        continue;
                    }
                    Err(error) => Err(error),
                },
            };
            match outcome {
                Ok(()) => {
                    pending = None;
                    backoff = FIRST_BACKOFF;
                    self.state.connected.store(true, Ordering::Relaxed);
                }
                Err(error) => {
                    self.failed(error);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    async fn wait_for_events(&self) {
        // Also wakes now and then to notice that the sink was dropped.
        let _ = tokio::time::timeout(Duration::from_millis(100), self.queue.ready.notified()).await;
    }

    async fn connect(&self) -> Result<ConnectionManager, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.max_backoff);
        self.client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| format!("cannot connect: {e}"))
    }

    fn failed(&self, error: String) {
        self.state.connected.store(false, Ordering::Relaxed);
        self.state.failures.fetch_add(1, Ordering::Relaxed);
        *self
            .state
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    /// Up to `batch_size` queued events grouped by topic, in order, with a loss marker
    /// after them for each topic and run whose events were refused; `None` when there
    /// is nothing to write.
    fn take_batch(&mut self, number: u64) -> Option<Batch> {
        let mut groups: Vec<Group> = Vec::new();
        let mut buffer = Vec::with_capacity(256);
        for _ in 0..self.batch_size {
            let Some(envelope) = self.queue.pop() else {
                break;
            };
            buffer.clear();
            envelope.event.write_json(&mut buffer);
            let entry = String::from_utf8_lossy(&buffer).into_owned();
            group(&mut groups, &envelope.topic).push_event(entry);
        }
        for ((topic, run), missed) in self.queue.take_refusals() {
            let marker = serde_json::json!({"missed": missed, "backtest_id": run});
            group(&mut groups, &topic).push_marker(marker.to_string());
        }
        (!groups.is_empty()).then_some(Batch { number, groups })
    }

    /// Appends every group of `batch` not yet written.
    async fn write(
        &mut self,
        connection: &mut ConnectionManager,
        batch: &mut Batch,
    ) -> Result<(), String> {
        for group in batch.groups.iter_mut().filter(|g| !g.done) {
            let keys = self
                .keys
                .entry(group.topic.clone())
                .or_insert_with(|| TopicKeys::new(&self.prefix, &group.topic));
            let mut invocation = self.script.prepare_invoke();
            invocation
                .key(&keys.seq)
                .key(&keys.stream)
                .key(&keys.epoch)
                .key(keys.producer(&self.producer))
                .arg(self.max_len)
                .arg(uuid::Uuid::new_v4().simple().to_string())
                .arg(batch.number)
                .arg(&group.kinds);
            for entry in &group.entries {
                invocation.arg(entry);
            }
            let call = invocation.invoke_async::<(u64, String)>(connection);
            match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(_)) => {
                    group.done = true;
                    self.state.written.fetch_add(group.events, Ordering::AcqRel);
                    self.state
                        .markers
                        .fetch_add(group.markers, Ordering::Relaxed);
                }
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err(format!("no answer within {:?}", self.timeout)),
            }
        }
        Ok(())
    }
}

/// The group of `topic` in `groups`, made at the end on first use.
fn group<'a>(groups: &'a mut Vec<Group>, topic: &Topic) -> &'a mut Group {
    let index = match groups.iter().position(|g| &g.topic == topic) {
        Some(index) => index,
        None => {
            groups.push(Group {
                topic: topic.clone(),
                kinds: String::new(),
                entries: Vec::new(),
                events: 0,
                markers: 0,
                done: false,
            });
            groups.len() - 1
        }
    };
    &mut groups[index]
}

impl Group {
    fn push_event(&mut self, entry: String) {
        self.kinds.push('e');
        self.entries.push(entry);
        self.events += 1;
    }

    fn push_marker(&mut self, entry: String) {
        self.kinds.push('m');
        self.entries.push(entry);
        self.markers += 1;
    }
}
