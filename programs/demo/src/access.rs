//! Who may do what: the seams where authentication will plug in (issue 14).
//!
//! Today the demo has no authentication: every request that passed the `Host`,
//! `Origin` and `Content-Type` checks (`guard`) may start and cancel runs, which is
//! why the demo listens on loopback only unless `--insecure` is given. When bearer
//! tokens come (`--auth-secret-file`), [`authorize`] checks the token's `scope`
//! (`start`, `cancel`) and the run's owner (`sub`), and [`exposure_allowed`] accepts
//! a non-loopback address when a verifier is configured.

use std::net::SocketAddr;

use axum::http::HeaderMap;

use crate::App;
use crate::error::ApiError;
use crate::guard::is_loopback;

/// What a request wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Start a run (`POST /api/v1/backtest/run`).
    Start,
    /// Cancel the run with this id (`DELETE /api/v1/backtest/{id}`).
    Cancel(#[expect(dead_code, reason = "read by the run-ownership check to come")] &'a str),
}

/// Whether the request (its headers) may do `action`: `Err` is the answer (401/403)
/// when not. Without authentication, everything is allowed.
pub fn authorize(_app: &App, _headers: &HeaderMap, _action: Action<'_>) -> Result<(), ApiError> {
    Ok(())
}

/// Whether the demo may listen on `addr`: loopback always; any other address only with
/// `--insecure` (later also with authentication configured).
pub fn exposure_allowed(addr: SocketAddr, insecure: bool) -> Result<(), String> {
    if is_loopback(addr.ip()) || insecure {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr}: it is not a loopback address, and the demo has no \
         authentication yet, so anyone who can reach it could start and cancel runs and use \
         its CPU. Listen on 127.0.0.1 (the default) and put an authenticating proxy in front, \
         or pass --insecure to expose it anyway (on a trusted network)"
    ))
}
