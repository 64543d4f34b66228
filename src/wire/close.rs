//! [`CloseCode`]: the WebSocket close codes of the protocol, in one place.

use std::fmt;

/// A close code the server sends, and what it tells the client to do
/// ([`docs/PROTOCOL.md`](super::protocol), "Closing").
///
/// The standard codes (1000 to 1013) keep their RFC 6455 meaning; the private ones
/// (4001 and up) say why the server gave up on this client, grouped by what the client
/// should do next ([`CloseAdvice`]).
///
/// ```
/// use backtest_stream::wire::{CloseAdvice, CloseCode};
///
/// let code = CloseCode::from_code(4001).unwrap();
/// assert_eq!(code, CloseCode::TooSlow);
/// assert_eq!(code.advice(), CloseAdvice::Resume);
/// assert_eq!(u16::from(CloseCode::GoingAway), 1001);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: the connection ended normally.
    Normal,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1008: refused by policy (the origin check or the handshake hook).
    Policy,
    /// 1009: the client sent a message over the size limit.
    MessageTooBig,
    /// 1013: the server holds as many connections as it may; try again later.
    TryAgainLater,
    /// 4001: the client read too slowly and fell too far behind under the disconnect
    /// policy.
    TooSlow,
    /// 4002: the client answered no ping in time.
    PingTimeout,
    /// 4003: frames waited past the write-stall timeout: the client did not read.
    WriteStalled,
    /// 4004: the client's token expired.
    TokenExpired,
    /// 4500: the client's token is invalid.
    InvalidToken,
    /// 4503: the client kept sending past its rate limit.
    RateLimited,
    /// 4504: too many connections for this principal.
    TooManyConnections,
}

/// What a client should do after a close, by [`CloseCode::advice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseAdvice {
    /// Nothing went wrong: reconnect only if there is still a reason to.
    Done,
    /// Reconnect (with backoff) and resume with `since` + `epoch`.
    Resume,
    /// Reconnect after a longer pause (the server is full or the client sent too much).
    BackOff,
    /// Get a fresh token, then reconnect and resume.
    RefreshToken,
    /// Do not reconnect as before: the same request would be refused again.
    DoNotRetry,
}

impl CloseCode {
    /// Every code, in numeric order.
    pub const ALL: [CloseCode; 12] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::Policy,
        CloseCode::MessageTooBig,
        CloseCode::TryAgainLater,
        CloseCode::TooSlow,
        CloseCode::PingTimeout,
        CloseCode::WriteStalled,
        CloseCode::TokenExpired,
        CloseCode::InvalidToken,
        CloseCode::RateLimited,
        CloseCode::TooManyConnections,
    ];

    /// The number sent in the close frame.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Policy => 1008,
            CloseCode::MessageTooBig => 1009,
            CloseCode::TryAgainLater => 1013,
            CloseCode::TooSlow => 4001,
            CloseCode::PingTimeout => 4002,
            CloseCode::WriteStalled => 4003,
            CloseCode::TokenExpired => 4004,
            CloseCode::InvalidToken => 4500,
            CloseCode::RateLimited => 4503,
            CloseCode::TooManyConnections => 4504,
        }
    }

    /// The code with this number, if the protocol defines one.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The reason text the server sends with this code.
    pub const fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "connection closed",
            CloseCode::GoingAway => "server shutting down",
            CloseCode::Policy => "refused by policy",
            CloseCode::MessageTooBig => "message too big",
            CloseCode::TryAgainLater => "too many connections",
            CloseCode::TooSlow => "client too slow",
            CloseCode::PingTimeout => "no answer to pings",
            CloseCode::WriteStalled => "client does not read",
            CloseCode::TokenExpired => "token expired",
            CloseCode::InvalidToken => "invalid token",
            CloseCode::RateLimited => "rate limited",
            CloseCode::TooManyConnections => "too many connections for this principal",
        }
    }

    /// What a client should do after this close.
    pub const fn advice(self) -> CloseAdvice {
        match self {
            CloseCode::Normal => CloseAdvice::Done,
            CloseCode::GoingAway
            | CloseCode::TooSlow
            | CloseCode::PingTimeout
            | CloseCode::WriteStalled => CloseAdvice::Resume,
            CloseCode::TryAgainLater | CloseCode::RateLimited => CloseAdvice::BackOff,
            CloseCode::TokenExpired => CloseAdvice::RefreshToken,
            CloseCode::Policy
            | CloseCode::MessageTooBig
            | CloseCode::InvalidToken
            | CloseCode::TooManyConnections => CloseAdvice::DoNotRetry,
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.code()
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_number() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        assert_eq!(CloseCode::from_code(1002), None);
        let numbers: Vec<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    }
}
