//! What a client may follow: [`Grants`].

use std::collections::HashSet;
use std::time::SystemTime;

use crate::wire::{BacktestId, Topic};

/// What an authenticated client may follow and do, from its token (or from an
/// application's own sessions, through an [`Authorizer`](crate::auth::Authorizer)).
///
/// A subscribe to a whole topic needs the topic in [`topics`](Self::topics); a subscribe
/// to one run needs the topic there or the run in [`runs`](Self::runs).
///
/// ```
/// use backtest_stream::auth::{Grants, TopicGrant};
/// use backtest_stream::wire::{BacktestId, Topic};
///
/// let run = BacktestId::new("run-1").unwrap();
/// let grants = Grants::new("alice").topics(TopicGrant::only([Topic::LOGS])).run(run.clone());
/// assert!(grants.allows(&Topic::LOGS, None));
/// assert!(!grants.allows(&Topic::BACKTEST, None));
/// assert!(grants.allows(&Topic::BACKTEST, Some(&run)));
/// assert!(Grants::new("ops").topics(TopicGrant::All).allows(&Topic::BACKTEST, None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// Who the client is (the token's `sub`): connections are limited per subject, and a
    /// refreshed token must name the same one.
    pub subject: String,
    /// The topics the client may follow in full.
    pub topics: TopicGrant,
    /// The runs the client may follow on any topic.
    pub runs: HashSet<BacktestId>,
    /// The actions the client may take (the token's space-separated `scope`), such as
    /// `start` and `cancel` for an application's REST API.
    pub scopes: HashSet<String>,
    /// When the grants end (the token's `exp`); the server closes the connection with
    /// 4004 then, unless a fresh token came first.
    pub expires_at: Option<SystemTime>,
}

/// The topics a client may follow in full.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TopicGrant {
    /// Every topic (`"topics": "*"`).
    All,
    /// These topics only (none: only the runs of [`Grants::runs`]).
    Only(HashSet<Topic>),
    /// No topic in full.
    #[default]
    None,
}

impl TopicGrant {
    /// These topics only.
    pub fn only(topics: impl IntoIterator<Item = Topic>) -> Self {
        TopicGrant::Only(topics.into_iter().collect())
    }

    /// Whether `topic` may be followed in full.
    pub fn contains(&self, topic: &Topic) -> bool {
        match self {
            TopicGrant::All => true,
            TopicGrant::Only(topics) => topics.contains(topic),
            TopicGrant::None => false,
        }
    }
}

impl Grants {
    /// Grants of `subject` to nothing yet, without expiry.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            topics: TopicGrant::None,
            runs: HashSet::new(),
            scopes: HashSet::new(),
            expires_at: None,
        }
    }

    /// With these topics in full.
    pub fn topics(mut self, topics: TopicGrant) -> Self {
        self.topics = topics;
        self
    }

    /// With run `id` too.
    pub fn run(mut self, id: BacktestId) -> Self {
        self.runs.insert(id);
        self
    }

    /// With the action `scope` too.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.insert(scope.into());
        self
    }

    /// Ending at `at`.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Whether a subscribe to `topic` (to one run on it, when `run` is given) is allowed.
    pub fn allows(&self, topic: &Topic, run: Option<&BacktestId>) -> bool {
        self.topics.contains(topic) || run.is_some_and(|run| self.runs.contains(run))
    }

    /// Whether the grants allow the action `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// Whether the grants have ended at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}
