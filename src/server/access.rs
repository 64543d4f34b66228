//! Authentication at the door: the token of an upgrade request (the `Authorization:
//! Bearer` header or the `token` query parameter), what a connection may see
//! ([`Access`]), and the count of connections per subject ([`Subject`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::{AuthError, Grants};
use crate::server::handshake::HandshakeRequest;
use crate::server::shared::Shared;

/// What a connection may see, as the hub knows it.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// The server has no authorizer: everything.
    Open,
    /// No valid token yet: nothing (every request but `auth` is answered
    /// `unauthorized`).
    Pending,
    /// What its token grants.
    Granted(Arc<Grants>),
}

impl Access {
    /// Whether events published without a topic may reach the connection.
    pub(crate) fn admitted(&self) -> bool {
        !matches!(self, Access::Pending)
    }
}

/// A connection counted against its subject's limit until dropped.
pub(crate) struct Subject {
    shared: Arc<Shared>,
    name: String,
}

impl Subject {
    /// Counts one more connection of `grants.subject`, unless it has as many as allowed.
    pub(crate) fn enter(shared: &Arc<Shared>, grants: &Grants) -> Option<Self> {
        let limit = shared.config.rate_limits.connections_per_subject;
        shared
            .subjects
            .enter(&grants.subject, limit)
            .then(|| Subject {
                shared: Arc::clone(shared),
                name: grants.subject.clone(),
            })
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Subject").field(&self.name).finish()
    }
}

impl Drop for Subject {
    fn drop(&mut self) {
        self.shared.subjects.leave(&self.name);
    }
}

/// How a connection was authenticated at its upgrade.
#[derive(Debug)]
pub(crate) enum Authenticated {
    /// No authorizer.
    Open,
    /// No token in the request: the first message must be `auth`.
    Pending,
    /// A valid token.
    Granted(Arc<Grants>, Subject),
}

/// Why an upgrade request's token is refused.
#[derive(Debug)]
pub(crate) enum AuthRefusal {
    /// HTTP 401 (closing 4500 after an upgrade).
    Invalid(AuthError),
    /// Its subject has as many connections as allowed (close 4504).
    TooManyForSubject,
}

/// The token of an upgrade request: the `Authorization: Bearer` header, else the
/// `token` query parameter.
pub(crate) fn bearer_token(request: &HandshakeRequest) -> Option<&str> {
    if let Some(value) = request.header("authorization") {
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            return Some(token.trim());
        }
    }
    request.query_param("token").filter(|t| !t.is_empty())
}

/// Authenticates an upgrade request with the server's authorizer.
pub(crate) fn authenticate(
    shared: &Arc<Shared>,
    request: &HandshakeRequest,
) -> Result<Authenticated, AuthRefusal> {
    let Some(authorizer) = &shared.config.authorizer else {
        return Ok(Authenticated::Open);
    };
    let Some(token) = bearer_token(request) else {
        return Ok(Authenticated::Pending);
    };
    let grants = verify(authorizer.as_ref(), token).map_err(AuthRefusal::Invalid)?;
    let subject = Subject::enter(shared, &grants).ok_or(AuthRefusal::TooManyForSubject)?;
    Ok(Authenticated::Granted(grants, subject))
}

/// The grants of `token`, refused when they have already ended.
pub(crate) fn verify(
    authorizer: &dyn crate::auth::Authorizer,
    token: &str,
) -> Result<Arc<Grants>, AuthError> {
    let grants = authorizer.authorize(token)?;
    if grants.expired(SystemTime::now()) {
        return Err(AuthError::Expired);
    }
    Ok(Arc::new(grants))
}

/// How long until `grants` end, if they do.
pub(crate) fn time_left(grants: &Grants) -> Option<Duration> {
    grants.expires_at.map(|at| {
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    })
}
