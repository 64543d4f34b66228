//! Who may follow what: [`Grants`], the [`Authorizer`] that turns a client's token into
//! them, and [`JwtVerifier`], the authorizer for JSON Web Tokens (feature `auth`).
//!
//! A server configured with an authorizer
//! ([`ServerConfig::authorizer`](crate::server::ServerConfig::authorizer)) serves only
//! clients that present a token it accepts, and only what their grants allow, on every
//! path an event takes: subscribe, `since` replay, `snapshot` and live delivery. The
//! rules are in the protocol ([`crate::wire::protocol`], "Authentication and
//! permissions").
//!
//! An application with sessions of its own implements [`Authorizer`] to map them to
//! grants:
//!
//! ```
//! use backtest_stream::auth::{AuthError, Authorizer, Grants, TopicGrant};
//!
//! #[derive(Debug)]
//! struct Sessions;
//!
//! impl Authorizer for Sessions {
//!     fn authorize(&self, token: &str) -> Result<Grants, AuthError> {
//!         match token {
//!             "session-of-alice" => Ok(Grants::new("alice").topics(TopicGrant::All)),
//!             _ => Err(AuthError::Refused("unknown session".into())),
//!         }
//!     }
//! }
//! assert!(Sessions.authorize("session-of-alice").is_ok());
//! ```

#[cfg(feature = "auth")]
mod claims;
mod error;
mod grants;
#[cfg(feature = "auth")]
mod jwt;

use std::fmt;
use std::sync::Arc;

pub use crate::auth::error::AuthError;
pub use crate::auth::grants::{Grants, TopicGrant};
#[cfg(feature = "auth")]
pub use crate::auth::jwt::{Algorithm, JwtVerifier, KeyError};

/// Turns a client's bearer token into its [`Grants`], or refuses it.
///
/// Called on the connection's own task (never on the hub's), once per token: at the
/// upgrade, and for each `auth` message. It must not block for long (no network
/// round-trip per call: cache what you fetch).
pub trait Authorizer: fmt::Debug + Send + Sync + 'static {
    /// The grants of `token`, or why it is refused.
    fn authorize(&self, token: &str) -> Result<Grants, AuthError>;
}

impl<A: Authorizer + ?Sized> Authorizer for Arc<A> {
    fn authorize(&self, token: &str) -> Result<Grants, AuthError> {
        (**self).authorize(token)
    }
}

impl<A: Authorizer + ?Sized> Authorizer for Box<A> {
    fn authorize(&self, token: &str) -> Result<Grants, AuthError> {
        (**self).authorize(token)
    }
}
