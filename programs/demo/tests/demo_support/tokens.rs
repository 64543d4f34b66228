//! Tokens for the demo's authentication tests, signed here with a real secret (and the
//! test-only key pairs of the crate's `tests/fixtures/auth`), and the secret's file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The HS256 secret the demo is started with (its file ends with a newline, which the
/// demo drops).
pub const SECRET: &str = "the demo tests' HS256 secret, longer than 32 bytes";

pub const EC_PRIVATE: &str = include_str!("../../../../tests/fixtures/auth/ec_private.pem");
pub const EC_PUBLIC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/auth/ec_public.pem"
);

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims of `sub` valid for an hour: `topics` (`json!("*")`, a list, or null), `runs`
/// (a list or null) and `scope` (`"start cancel"`, ...; null: none).
pub fn claims(sub: &str, topics: Value, runs: Value, scope: Value) -> Value {
    json!({
        "sub": sub, "iat": now(), "exp": now() + 3600,
        "topics": topics, "runs": runs, "scope": scope,
    })
}

/// `claims` signed with HS256 and [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

/// `claims` signed with HS256 and another secret.
pub fn hs256_with(secret: &[u8], claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret).expect("a secret");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("signed")
}

/// `claims` signed with ES256 and the fixtures' private key.
pub fn es256(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("an EC key");
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &key).expect("signed")
}

/// A token of `sub` with every topic and `scope` "start cancel".
pub fn admin(sub: &str) -> String {
    hs256(&claims(sub, json!("*"), Value::Null, json!("start cancel")))
}

/// A token that expired a minute ago (past the verifier's 30 s leeway).
pub fn expired(sub: &str) -> String {
    let mut c = claims(sub, json!("*"), Value::Null, json!("start cancel"));
    c["iat"] = json!(now() - 3600);
    c["exp"] = json!(now() - 60);
    hs256(&c)
}

/// A token with good claims signed with the wrong secret.
pub fn forged(sub: &str) -> String {
    hs256_with(
        b"not the demo's secret, but just as long as it",
        &claims(sub, json!("*"), Value::Null, json!("start cancel")),
    )
}

/// The claims of a token (its payload, not verified).
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT payload");
    let bytes = base64url_decode(part);
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn base64url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("demo-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` with `content`; its path as text.
    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write a file");
        path.to_str().expect("a UTF-8 path").to_owned()
    }

    /// The secret's file, with a trailing newline as `echo` writes it.
    pub fn secret_file(&self) -> String {
        self.file("secret", format!("{SECRET}\n").as_bytes())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
