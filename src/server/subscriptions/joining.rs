//! The door of a subscription: whether a subscribe may be acted on (token, grants,
//! replay budget), whether grants still cover it, and fetching from an archive what a
//! `since` wants that the history no longer holds.

use std::sync::Arc;

use crate::auth::Grants;
use crate::server::access::Access;
use crate::server::archive::{Archive, ArchiveRequest, Fetched, Joining};
use crate::server::shared::Shared;
use crate::server::stats::bump;
use crate::server::subscriptions::{Conn, Filter, Subscriptions};
use crate::wire::{ErrorCode, ServerMessage, Subscribe, Topic};

impl Subscriptions {
    /// Sets where events older than the history are fetched from.
    pub(crate) fn set_archive(&mut self, archive: Arc<dyn Archive>) {
        self.archive = Some(archive);
    }

    /// Goes on with a subscribe whose filter is recorded: in a hub fed by a broker (one
    /// with an archive), it waits until the topic's epoch is known; then a `since` older
    /// than the history is fetched from the archive first; then it is confirmed.
    pub(super) fn proceed(&mut self, id: u64, joining: Joining) {
        let topic = &joining.request.topic;
        let epoch_unknown = self.topics.get(topic).is_none_or(|s| s.epoch.is_none());
        if self.archive.is_some() && epoch_unknown {
            let key = (id, topic.clone());
            self.awaiting_epoch.push(key.clone());
            self.fetches.insert(key, joining);
            return;
        }
        if let Some(joining) = self.fetch_older(id, joining) {
            self.catch_up(id, joining, None);
        }
    }

    /// The epoch of `topic` is known: the subscribes that waited for it go on.
    pub(super) fn epoch_known(&mut self, topic: &Topic) {
        let (ready, waiting) = std::mem::take(&mut self.awaiting_epoch)
            .into_iter()
            .partition(|(_, t)| t == topic);
        self.awaiting_epoch = waiting;
        for key in ready {
            if let Some(joining) = self.fetches.remove(&key) {
                self.proceed(key.0, joining);
            }
        }
    }

    /// With an archive, a `since` (of this epoch) older than the topic's history asks
    /// the archive for the part the history lacks, up to the client's queue capacity,
    /// and the subscribe waits for it (`None`); else the subscribe goes on at once.
    pub(super) fn fetch_older(&mut self, id: u64, joining: Joining) -> Option<Joining> {
        let Some(archive) = &self.archive else {
            return Some(joining);
        };
        let request = &joining.request;
        let Some(since) = request.since else {
            return Some(joining);
        };
        let Some(state) = self.topics.get(&request.topic) else {
            return Some(joining);
        };
        let epoch = state.epoch.as_ref().unwrap_or(&self.shared.epoch);
        let same_epoch = request.epoch.as_deref().is_none_or(|e| e == epoch);
        let oldest = state.history.oldest();
        if !same_epoch || since.saturating_add(1) >= oldest || since > state.history.head() {
            return Some(joining);
        }
        let fetch = ArchiveRequest {
            conn: id,
            topic: request.topic.clone(),
            from: since + 1,
            until: oldest,
            max: self.shared.config.queue_capacity,
        };
        if !archive.fetch(fetch) {
            return Some(joining);
        }
        self.fetches
            .insert((id, joining.request.topic.clone()), joining);
        None
    }

    /// The archive answered a fetch: the subscribe goes on with what it found.
    pub(crate) fn archived(&mut self, id: u64, topic: &Topic, fetched: Fetched) {
        if let Some(joining) = self.fetches.remove(&(id, topic.clone())) {
            self.catch_up(id, joining, Some(fetched));
        }
    }
}

/// Why a subscribe must not be acted on, as the answer to send: no token yet, beyond
/// the grants, or a replay while the replay budget is spent.
pub(super) fn refusal(
    shared: &Shared,
    conn: &mut Conn,
    request: &Subscribe,
) -> Option<ServerMessage> {
    let counters = &shared.counters;
    let (topic, run) = (&request.topic, request.backtest_id.as_ref());
    match &conn.access {
        Access::Open => {}
        Access::Pending => {
            let text = r#"authenticate first: {"action":"auth","token":"<jwt>"}"#;
            return Some(ServerMessage::error(ErrorCode::Unauthorized, text));
        }
        Access::Granted(grants) if !grants.allows(topic, run) => {
            bump(&counters.forbidden);
            let what = match run {
                Some(run) => format!("run {run} on topic {topic}"),
                None => format!("the whole of topic {topic}"),
            };
            let text = format!("your token does not grant {what}");
            return Some(ServerMessage::error(ErrorCode::Forbidden, text));
        }
        Access::Granted(_) => {}
    }
    let replays = request.snapshot || request.since.is_some();
    if replays && !conn.budget.may_replay() {
        bump(&counters.replay_budget_spent);
        let limits = &shared.config.rate_limits;
        let text = format!(
            "replay budget spent ({} bytes per {:?}): subscribe without since and snapshot, or retry later",
            limits.replay_bytes, limits.replay_interval
        );
        return Some(ServerMessage::error(ErrorCode::RateLimited, text));
    }
    None
}

/// Whether `grants` still cover a subscription.
pub(super) fn covers(grants: &Grants, topic: &Topic, filter: &Filter) -> bool {
    match filter {
        Filter::All => grants.topics.contains(topic),
        Filter::Runs(runs) => runs.iter().all(|run| grants.allows(topic, Some(run))),
    }
}
