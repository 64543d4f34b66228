//! A connection's authentication and message rate: whether it may act yet (a first
//! `auth` message), the refresh of its token, the end of its grants, and its token
//! bucket of client messages.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Sleep;

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
    deadline: Option<Pin<Box<Sleep>>>,
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
                let wait = config.handshake_timeout;
                session.deadline = Some(Box::pin(tokio::time::sleep(wait)));
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
        self.deadline = time_left(&grants).map(|left| Box::pin(tokio::time::sleep(left)));
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
            self.deadline = time_left(&grants).map(|left| Box::pin(tokio::time::sleep(left)));
            *old = grants;
        }
    }

    /// Ready with the close code and reason when the wait for a token, or the grants,
    /// ended.
    pub(super) fn poll_deadline(
        &mut self,
        hub: &Hub,
        cx: &mut Context<'_>,
    ) -> Poll<(CloseCode, &'static str)> {
        let Some(deadline) = &mut self.deadline else {
            return Poll::Pending;
        };
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.deadline = None;
        let counters = &hub.shared.counters;
        if self.pending() {
            bump(&counters.auth_timeout);
            let reason = "no token within the handshake timeout";
            Poll::Ready((CloseCode::InvalidToken, reason))
        } else {
            bump(&counters.token_expired);
            let code = CloseCode::TokenExpired;
            Poll::Ready((code, code.reason()))
        }
    }
}
