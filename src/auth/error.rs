//! [`AuthError`]: why a token is refused.

/// Why a token is refused. The text says what is wrong, never what would be right
/// (no key, secret or expected claim value is ever part of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented.
    #[error("no token")]
    Missing,
    /// The token is not a well-formed JWT (not three base64url parts, bad JSON, an
    /// unknown or `none` algorithm).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token's algorithm is not in the verifier's allow-list.
    #[error("algorithm {0} is not allowed")]
    AlgorithmNotAllowed(String),
    /// No configured key fits the token (its `kid`, or its algorithm's family).
    #[error("no key for this token")]
    UnknownKey,
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` (or `iat`) is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// The token's `aud` is not the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The token's `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// A claim is missing or has the wrong form.
    #[error("invalid claim {claim:?}: {reason}")]
    InvalidClaim {
        /// The claim.
        claim: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A refreshed token names another subject than the connection's.
    #[error("token is for another subject")]
    SubjectChanged,
    /// Refused by an application's [`Authorizer`](crate::auth::Authorizer).
    #[error("{0}")]
    Refused(String),
}
