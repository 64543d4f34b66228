//! The admission of a connection: one decision on its upgrade request, the same for
//! every way in (the standalone listener, [`Hub::accept`](crate::server::Hub::accept),
//! [`Hub::upgrade`](crate::server::Hub::upgrade), [`Hub::serve`](crate::server::Hub::serve)).
//!
//! In order: the `Origin` check ([`ServerConfig::allowed_origins`],
//! [`ServerConfig::same_origin`]), the [handshake hook](ServerConfig::handshake_hook),
//! the upgrades per client address ([`RateLimits`](crate::server::RateLimits)), a
//! shutdown in progress, the token ([`ServerConfig::authorizer`]) and the connections
//! of its subject, and a free connection slot ([`ServerConfig::max_connections`]).

use std::sync::Arc;

use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};

use crate::server::access::{AuthRefusal, Authenticated, authenticate};
use crate::server::config::ServerConfig;
use crate::server::handshake::{HandshakeDecision, HandshakeRequest};
use crate::server::shared::{Shared, Slot};
use crate::server::stats::bump;
use crate::wire::CloseCode;

/// An admitted connection: its slot, and how it authenticated.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) slot: Slot,
    pub(crate) auth: Authenticated,
}

/// What the admission decided for one upgrade request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Serve the connection.
    Accept(Admitted),
    /// Refuse before the upgrade with this HTTP status, body and headers (after the
    /// upgrade: close with `close` and the body as reason).
    RefuseHttp {
        status: u16,
        reason: String,
        headers: Vec<(&'static str, String)>,
        close: CloseCode,
    },
    /// Upgrade, then close at once with this code and reason: a browser can read a
    /// close code, not an HTTP status.
    Close { code: CloseCode, reason: String },
}

/// Decides on an upgrade request (see the module documentation). Refusals are counted.
pub(crate) fn admit(shared: &Arc<Shared>, request: &HandshakeRequest) -> Verdict {
    let counters = &shared.counters;
    if !origin_allowed(&shared.config, request) {
        // Nothing is read or sent before the close.
        bump(&counters.refused_origin);
        return Verdict::Close {
            code: CloseCode::Policy,
            reason: "origin not allowed".to_owned(),
        };
    }
    if let Some(hook) = &shared.config.handshake_hook {
        match hook.decide(request) {
            HandshakeDecision::Accept => {}
            HandshakeDecision::RefuseHttp { status, reason } => {
                bump(&counters.refused_handshake_hook);
                return Verdict::RefuseHttp {
                    status,
                    reason,
                    headers: Vec::new(),
                    close: CloseCode::Policy,
                };
            }
            HandshakeDecision::RefuseClose { reason } => {
                bump(&counters.refused_handshake_hook);
                return Verdict::Close {
                    code: CloseCode::Policy,
                    reason,
                };
            }
        }
    }
    if let (Some(limiter), Some(peer)) = (&shared.upgrades, request.peer) {
        if let Err(retry_after) = limiter.check(peer.ip()) {
            bump(&counters.upgrades_rate_limited);
            let seconds = retry_after.as_secs() + 1;
            return Verdict::RefuseHttp {
                status: 429,
                reason: format!("too many connections from this address; retry in {seconds} s"),
                headers: vec![("retry-after", seconds.to_string())],
                close: CloseCode::TryAgainLater,
            };
        }
    }
    let refuse = |code: CloseCode| Verdict::Close {
        code,
        reason: code.reason().to_owned(),
    };
    if shared.is_shutting_down() {
        return refuse(CloseCode::GoingAway);
    }
    let auth = match authenticate(shared, request) {
        Ok(auth) => auth,
        Err(AuthRefusal::Invalid(error)) => {
            bump(&counters.unauthorized);
            return Verdict::RefuseHttp {
                status: 401,
                reason: format!("invalid token: {error}"),
                headers: vec![("www-authenticate", r#"Bearer error="invalid_token""#.into())],
                close: CloseCode::InvalidToken,
            };
        }
        Err(AuthRefusal::TooManyForSubject) => {
            bump(&counters.subject_limit);
            return refuse(CloseCode::TooManyConnections);
        }
    };
    match shared.take_slot() {
        Some(slot) => Verdict::Accept(Admitted { slot, auth }),
        None => refuse(CloseCode::TryAgainLater),
    }
}

/// Adds the headers of a refusal to its HTTP response.
pub(crate) fn add_headers(map: &mut HeaderMap, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Whether the request's `Origin` is allowed (see [`ServerConfig::same_origin`]).
fn origin_allowed(config: &ServerConfig, request: &HandshakeRequest) -> bool {
    let listed = !config.allowed_origins.is_empty();
    if !listed && !config.same_origin {
        return true;
    }
    let Some(origin) = request.header("origin") else {
        // Not a browser: refused only by an allow-list.
        return !listed;
    };
    config.allowed_origins.iter().any(|o| o == origin)
        || (config.same_origin && same_host(origin, request.header("host")))
}

/// Whether `origin` (`http://host:port`) names the host the request was sent to.
fn same_host(origin: &str, host: Option<&str>) -> bool {
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => origin_host.eq_ignore_ascii_case(host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: Option<&'static str>, host: &'static str) -> HandshakeRequest {
        let mut request = HandshakeRequest::default();
        request
            .headers
            .insert("host", HeaderValue::from_static(host));
        if let Some(origin) = origin {
            request
                .headers
                .insert("origin", HeaderValue::from_static(origin));
        }
        request
    }

    #[test]
    fn origins_are_checked_against_the_list_and_the_host() {
        let open = ServerConfig::default();
        assert!(origin_allowed(
            &open,
            &request(Some("http://evil.example"), "a:1")
        ));
        let same = ServerConfig::default().same_origin(true);
        assert!(origin_allowed(&same, &request(Some("http://a:1"), "a:1")));
        assert!(origin_allowed(&same, &request(Some("https://A:1"), "a:1")));
        assert!(origin_allowed(&same, &request(None, "a:1")));
        assert!(!origin_allowed(
            &same,
            &request(Some("http://evil.example"), "a:1")
        ));
        assert!(!origin_allowed(&same, &request(Some("http://a:2"), "a:1")));
        assert!(!origin_allowed(&same, &request(Some("ftp://a:1"), "a:1")));
        let listed = ServerConfig::default().allowed_origins(["https://ui.example"]);
        assert!(origin_allowed(
            &listed,
            &request(Some("https://ui.example"), "a:1")
        ));
        assert!(!origin_allowed(
            &listed,
            &request(Some("http://a:1"), "a:1")
        ));
        assert!(!origin_allowed(&listed, &request(None, "a:1")));
        let both = listed.same_origin(true);
        assert!(origin_allowed(&both, &request(Some("http://a:1"), "a:1")));
        assert!(origin_allowed(
            &both,
            &request(Some("https://ui.example"), "a:1")
        ));
    }
}
