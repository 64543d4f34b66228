//! Who may do what on the REST API.
//!
//! Without authentication every request that passed the `Host`, `Origin` and
//! `Content-Type` checks (`guard`) may start and cancel runs, which is why the demo
//! listens on loopback only unless `--insecure` is given. With `--auth-*`, every call
//! carries `Authorization: Bearer <jwt>`, verified by the same authorizer as the
//! WebSocket (the crate's `JwtVerifier` plus the runs the subject owns): 401 without a
//! valid token, 403 when it does not grant the action (`scope`: `start`, `cancel`) or
//! the run (topic `backtest` in `topics`, the id in `runs`, or the caller's own run).

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use backtest_stream::auth::{AuthError, Authorizer, Grants};
use backtest_stream::wire::{BacktestId, Topic};

use crate::App;
use crate::error::ApiError;
use crate::guard::is_loopback;

/// What a request wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Start a run (`POST /api/v1/backtest/run`): scope `start`.
    Start,
    /// Cancel the run with this id (`DELETE /api/v1/backtest/{id}`): scope `cancel`, and
    /// the run visible.
    Cancel(&'a str),
    /// Read the run with this id (`GET /api/v1/backtest/{id}`): the run visible.
    View(&'a str),
    /// List the runs (`GET /api/v1/backtests`): only the visible ones are listed.
    List,
}

/// Who is calling: the grants of a verified token, or anyone (no authentication).
#[derive(Debug)]
pub struct Caller {
    grants: Option<Grants>,
}

impl Caller {
    /// The owner of a run this caller starts (its token's `sub`).
    pub fn owner(&self) -> Option<String> {
        self.grants.as_ref().map(|g| g.subject.clone())
    }

    /// Whether the caller may see the run `id` (always, without authentication).
    pub fn sees(&self, id: &str) -> bool {
        let Some(grants) = &self.grants else {
            return true;
        };
        grants.topics.contains(&Topic::BACKTEST)
            || BacktestId::new(id).is_ok_and(|id| grants.runs.contains(&id))
    }

    /// [`sees`](Self::sees) for an id already parsed.
    pub fn sees_id(&self, id: &BacktestId) -> bool {
        self.grants
            .as_ref()
            .is_none_or(|g| g.allows(&Topic::BACKTEST, Some(id)))
    }
}

/// Whether the request (its headers) may do `action`: the caller, or the answer (401,
/// 403) when not. Without authentication, everything is allowed.
pub fn authorize(app: &App, headers: &HeaderMap, action: Action<'_>) -> Result<Caller, ApiError> {
    let Some(authorizer) = &app.auth else {
        return Ok(Caller { grants: None });
    };
    let token = bearer(headers)?;
    let grants = authorizer.authorize(token).map_err(invalid_token)?;
    let caller = Caller {
        grants: Some(grants),
    };
    let scope = |name: &str, what: &str| {
        let granted = caller.grants.as_ref().is_some_and(|g| g.has_scope(name));
        if granted {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this token may not {what}: its `scope` lacks `{name}`"),
            ))
        }
    };
    let visible = |id: &str| {
        if caller.sees(id) {
            Ok(())
        } else {
            let shown: String = id.chars().take(128).collect();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this token does not grant the backtest `{shown}`"),
            ))
        }
    };
    match action {
        Action::Start => scope("start", "start runs")?,
        Action::Cancel(id) => {
            scope("cancel", "cancel runs")?;
            visible(id)?;
        }
        Action::View(id) => visible(id)?,
        Action::List => {}
    }
    Ok(caller)
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "this server requires a token: send `Authorization: Bearer <jwt>`",
            false,
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    token.ok_or_else(|| unauthorized("the Authorization header must be `Bearer <jwt>`", true))
}

fn invalid_token(error: AuthError) -> ApiError {
    unauthorized(&format!("invalid token: {error}"), true)
}

/// A 401 with its `WWW-Authenticate` challenge (RFC 6750), as the hub's refused upgrade.
fn unauthorized(message: &str, invalid: bool) -> ApiError {
    let challenge = if invalid {
        r#"Bearer error="invalid_token""#
    } else {
        "Bearer"
    };
    ApiError::new(StatusCode::UNAUTHORIZED, message).header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    )
}

/// Whether the demo may listen on `addr`: loopback always; any other address only with
/// authentication configured, or with `--insecure`.
pub fn exposure_allowed(addr: SocketAddr, insecure: bool, auth: bool) -> Result<(), String> {
    if is_loopback(addr.ip()) || insecure || auth {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr}: it is not a loopback address and no authentication is \
         configured, so anyone who can reach it could start and cancel runs and use its CPU. \
         Give --auth-secret-file FILE (or --auth-public-key PEM) to require tokens, listen on \
         127.0.0.1 (the default) behind an authenticating proxy, or pass --insecure to expose \
         it anyway (on a trusted network)"
    ))
}
