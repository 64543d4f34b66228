//! A connection's authentication and message rate: whether it may act yet (a first
//! `auth` message), the refresh of its token, the end of its grants, and its token
//! bucket of client messages.

use std::sync::Arc;

use tokio::time::Instant;

use crate::auth::{AuthError, Authorizer, Grants};
use crate::server::access::{Access, Authenticated, Subject, time_left, verify};
use crate::server::hub::Hub;
use crate::server::limits::{MessageLimiter, MessageVerdict};
use crate::server::stats::bump;
use crate::wire::{CloseCode, ErrorCode, ServerMessage};

enum State {
    Open,
    Pending,
    Granted {
        grants: Arc<Grants>,
        /// Counts the connection against its subject's limit while it lives.
        _subject: Subject,
    },
}

/// What an `auth` message leads to.
pub(super) enum AuthStep {
    /// Valid: the hub learns the grants (and ends what they no longer cover).
    Grant(Arc<Grants>),
    /// Answer with this error; the connection goes on as before.
    Reply(ServerMessage),
    /// Close with this code and reason.
    Close(CloseCode, String),
    /// Nothing to do (the server does not authenticate).
    Ignore,
}

/// The authentication and message rate of one connection.
pub(super) struct Session {
    authorizer: Option<Arc<dyn Authorizer>>,
    state: State,
    /// The end of the wait for a first token, or of the token's grants.
    deadline: Option<Instant>,
    limiter: MessageLimiter,
}

impl Session {
    pub(super) fn new(hub: &Hub, auth: Authenticated) -> Self {
        let config = hub.config();
        let mut session = Self {
            authorizer: config.authorizer.clone(),
            state: State::Open,
            deadline: None,
            limiter: MessageLimiter::new(&config.rate_limits),
        };
        match auth {
            Authenticated::Open => {}
            Authenticated::Pending => {
                session.state = State::Pending;
                session.deadline = Some(Instant::now() + config.handshake_timeout);
            }
            Authenticated::Granted(grants, subject) => session.grant(grants, subject),
        }
        session
    }

    /// What the hub may show the connection.
    pub(super) fn access(&self) -> Access {
        match &self.state {
            State::Open => Access::Open,
            State::Pending => Access::Pending,
            State::Granted { grants, .. } => Access::Granted(Arc::clone(grants)),
        }
    }

    /// Whether the connection still has to present a token.
    pub(super) fn pending(&self) -> bool {
        matches!(self.state, State::Pending)
    }

    /// Takes one client message from the bucket.
    pub(super) fn check_rate(&mut self) -> MessageVerdict {
        self.limiter.check()
    }

    fn grant(&mut self, grants: Arc<Grants>, subject: Subject) {
        self.deadline = time_left(&grants).map(deadline_in);
        self.state = State::Granted {
            grants,
            _subject: subject,
        };
    }

    /// An `auth` message: a first token, or a refresh.
    pub(super) fn on_auth(&mut self, hub: &Hub, token: &str) -> AuthStep {
        let Some(authorizer) = &self.authorizer else {
            return AuthStep::Ignore;
        };
        let counters = &hub.shared.counters;
        let verified = verify(authorizer.as_ref(), token);
        match (&self.state, verified) {
            (State::Open, _) => AuthStep::Ignore,
            (State::Pending, Err(error)) => {
                bump(&counters.unauthorized);
                AuthStep::Close(CloseCode::InvalidToken, format!("invalid token: {error}"))
            }
            (State::Pending, Ok(grants)) => match Subject::enter(&hub.shared, &grants) {
                Some(subject) => {
                    self.grant(Arc::clone(&grants), subject);
                    AuthStep::Grant(grants)
                }
                None => {
                    bump(&counters.subject_limit);
                    let code = CloseCode::TooManyConnections;
                    AuthStep::Close(code, code.reason().to_owned())
                }
            },
            (State::Granted { grants: old, .. }, verified) => {
                let refreshed = verified.and_then(|grants| {
                    if grants.subject == old.subject {
                        Ok(grants)
                    } else {
                        Err(AuthError::SubjectChanged)
                    }
                });
                match refreshed {
                    Ok(grants) => {
                        bump(&counters.tokens_refreshed);
                        self.refresh(Arc::clone(&grants));
                        AuthStep::Grant(grants)
                    }
                    Err(error) => {
                        bump(&counters.unauthorized);
                        let text = format!("token refused, the previous one stays: {error}");
                        AuthStep::Reply(ServerMessage::error(ErrorCode::Unauthorized, text))
                    }
                }
            }
        }
    }

    fn refresh(&mut self, grants: Arc<Grants>) {
        if let State::Granted { grants: old, .. } = &mut self.state {
            self.deadline = time_left(&grants).map(deadline_in);
            *old = grants;
        }
    }

    /// When the wait for a token, or the grants, end.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The close code and reason when the wait for a token, or the grants, ended by
    /// `now`.
    pub(super) fn ended(&mut self, hub: &Hub, now: Instant) -> Option<(CloseCode, &'static str)> {
        if self.deadline.is_none_or(|deadline| deadline > now) {
            return None;
        }
        self.deadline = None;
        let counters = &hub.shared.counters;
        if self.pending() {
            bump(&counters.auth_timeout);
            Some((
                CloseCode::InvalidToken,
                "no token within the handshake timeout",
            ))
        } else {
            bump(&counters.token_expired);
            let code = CloseCode::TokenExpired;
            Some((code, code.reason()))
        }
    }
}

/// The instant `left` from now, or none when that is beyond the clock's range (a token
/// valid for centuries).
fn deadline_in(left: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(left)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(86_400 * 365 * 30))
}
