//! Tokens for the authentication tests, signed here with real keys (the test-only key
//! pairs of `tests/fixtures/auth`), and verifiers that accept them.
#![allow(dead_code)]

pub mod door;

use std::time::{SystemTime, UNIX_EPOCH};

use backtest_stream::auth::JwtVerifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The HS256 secret of the tests.
pub const SECRET: &[u8] = b"test secret of the authentication suite, 44 bytes";

pub const RSA_PRIVATE: &str = include_str!("../fixtures/auth/rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../fixtures/auth/rsa_public.pem");
pub const EC_PRIVATE: &str = include_str!("../fixtures/auth/ec_private.pem");
pub const EC_PUBLIC: &str = include_str!("../fixtures/auth/ec_public.pem");
pub const ED_PRIVATE: &str = include_str!("../fixtures/auth/ed_private.pem");
pub const ED_PUBLIC: &str = include_str!("../fixtures/auth/ed_public.pem");

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims for `sub` valid for an hour, with these grants.
pub fn claims(sub: &str, topics: Value, runs: Value) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "iat": now(), "topics": topics, "runs": runs})
}

/// `claims` signed with HS256 and the tests' secret.
pub fn hs256(claims: &Value) -> String {
    sign(Header::new(Algorithm::HS256), claims, &hmac_key(SECRET))
}

pub fn hmac_key(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).expect("a secret")
}

pub fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("signed")
}

/// `claims` signed with `alg` and the matching test private key.
pub fn signed_with(alg: Algorithm, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 | Algorithm::PS256 => {
            EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa")
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec"),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("ed"),
        _ => hmac_key(SECRET),
    };
    sign(Header::new(alg), claims, &key)
}

/// A token with `alg: none` and no signature.
pub fn unsigned(claims: &Value) -> String {
    use base64_url::encode;
    let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = encode(claims.to_string().as_bytes());
    format!("{header}.{body}.")
}

/// The verifier of the tests: the HS256 secret.
pub fn verifier() -> JwtVerifier {
    JwtVerifier::new().secret(SECRET).expect("secret")
}

/// Base64url without padding, enough for hand-made tokens.
mod base64_url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            }
        }
        out
    }
}
