//! The cost of verifying a token, paid once per connection at its upgrade (or `auth`
//! message): `JwtVerifier::authorize` for each kind of key, and for a forged token.
//! Keys are the test-only pairs of `tests/fixtures/auth`.
//!
//! `cargo bench --features auth --bench auth`

use std::time::{SystemTime, UNIX_EPOCH};

use backtest_stream::auth::{Authorizer, JwtVerifier};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"bench secret of the authentication suite, 43 b";

fn token(alg: Algorithm, key: &EncodingKey) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "sub": "bench", "exp": now + 3600, "iat": now,
        "topics": ["backtest", "logs"], "runs": ["run-1", "run-2"], "scope": "start cancel",
    });
    jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("signed")
}

fn verify(c: &mut Criterion) {
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/auth/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("test key")
    };
    let cases = [
        (
            "HS256",
            Algorithm::HS256,
            EncodingKey::from_secret(SECRET).expect("secret"),
            None,
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).expect("rsa"),
            Some(fixture("rsa_public.pem")),
        ),
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&fixture("ec_private.pem")).expect("ec"),
            Some(fixture("ec_public.pem")),
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&fixture("ed_private.pem")).expect("ed"),
            Some(fixture("ed_public.pem")),
        ),
    ];
    let mut group = c.benchmark_group("authorize");
    for (name, alg, key, public) in cases {
        let verifier = match public {
            None => JwtVerifier::new().secret(SECRET),
            Some(pem) => JwtVerifier::new().public_key_pem(pem),
        }
        .expect("verifier");
        let token = token(alg, &key);
        assert!(verifier.authorize(&token).is_ok(), "{name}");
        group.bench_function(name, |b| b.iter(|| verifier.authorize(&token)));
    }
    let verifier = JwtVerifier::new().secret(SECRET).expect("verifier");
    let forged = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not the secret").expect("secret"),
    );
    assert!(verifier.authorize(&forged).is_err());
    group.bench_function("HS256_forged", |b| b.iter(|| verifier.authorize(&forged)));
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
