//! Authentication and per-run permissions over real sockets, with real tokens signed in
//! the test: every refusal of the protocol at the upgrade, the token in the header, the
//! query or a first `auth` message, grants on live delivery, `since` replay and
//! `snapshot`, refresh, and 4004 at expiry; once on the standalone server and once on
//! an axum route (`Hub::upgrade`).
#![cfg(all(feature = "auth", feature = "hyper"))]

mod auth_support;
mod server_support;

use std::time::Duration;

use auth_support::door::Door;
use auth_support::*;
use backtest_stream::auth::JwtVerifier;
use backtest_stream::server::ServerConfig;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};
use server_support::*;

/// The verifier of the refusal matrix: the HS256 secret and the RSA key, an audience
/// and an issuer, no leeway.
fn strict_verifier() -> JwtVerifier {
    verifier()
        .public_key_pem(RSA_PUBLIC)
        .expect("rsa key")
        .audience("dashboard")
        .issuer("tests")
        .leeway(Duration::ZERO)
}

fn good_claims() -> Value {
    let mut claims = claims("alice", json!("*"), json!([]));
    claims["aud"] = json!("dashboard");
    claims["iss"] = json!("tests");
    claims
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// Every token the protocol refuses at the upgrade, with why.
fn refused_tokens() -> Vec<(&'static str, String)> {
    let good = good_claims();
    let mut no_exp = good.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    let mut no_sub = good.clone();
    no_sub.as_object_mut().expect("object").remove("sub");
    let mut no_aud = good.clone();
    no_aud.as_object_mut().expect("object").remove("aud");
    let mut no_iss = good.clone();
    no_iss.as_object_mut().expect("object").remove("iss");
    let other_secret = hmac_key(b"another secret, not the server's one");
    vec![
        ("malformed", "not-a-jwt".to_owned()),
        ("three parts of garbage", "a.b.c".to_owned()),
        (
            "bad signature",
            sign(Header::new(Algorithm::HS256), &good, &other_secret),
        ),
        (
            "expired",
            hs256(&with(good.clone(), "exp", json!(now() - 60))),
        ),
        (
            "not yet valid",
            hs256(&with(good.clone(), "nbf", json!(now() + 3600))),
        ),
        (
            "issued in the future",
            hs256(&with(good.clone(), "iat", json!(now() + 3600))),
        ),
        (
            "wrong audience",
            hs256(&with(good.clone(), "aud", json!("other"))),
        ),
        (
            "wrong issuer",
            hs256(&with(good.clone(), "iss", json!("mallory"))),
        ),
        ("no exp", hs256(&no_exp)),
        ("no sub", hs256(&no_sub)),
        ("no aud, an audience being configured", hs256(&no_aud)),
        ("no iss, an issuer being configured", hs256(&no_iss)),
        (
            "bad topics claim",
            hs256(&with(good.clone(), "topics", json!(42))),
        ),
        ("alg none", unsigned(&good)),
        (
            "HS384, outside the allow-list",
            signed_with(Algorithm::HS384, &good),
        ),
        (
            "the RSA public key used as an HS256 secret",
            sign(
                Header::new(Algorithm::HS256),
                &good,
                &hmac_key(RSA_PUBLIC.as_bytes()),
            ),
        ),
        (
            "PS256, outside the allow-list (RSA key)",
            signed_with(Algorithm::PS256, &good),
        ),
        (
            "an unknown kid",
            sign(
                Header {
                    kid: Some("nobody".into()),
                    ..Header::new(Algorithm::HS256)
                },
                &good,
                &hmac_key(SECRET),
            ),
        ),
    ]
}

async fn every_refusal_answers_401(door: Door) {
    for (what, token) in refused_tokens() {
        match door.connect(Some(&token)).await {
            Ok(_) => panic!("{what}: accepted"),
            Err((status, challenge)) => {
                assert_eq!(status, 401, "{what}");
                assert_eq!(
                    challenge.as_deref(),
                    Some(r#"Bearer error="invalid_token""#),
                    "{what}"
                );
            }
        }
    }
    // The good token passes the same door, in the header and in the query.
    let good = hs256(&good_claims());
    let mut client = door.client(&good).await;
    subscribe_topic(&mut client, "backtest").await;
    let mut client = door.connect_query(&good).await.expect("query token");
    subscribe_topic(&mut client, "backtest").await;
    let refused = refused_tokens().len() as u64;
    assert_eq!(door.hub().stats().access.unauthorized, refused);
}

#[tokio::test]
async fn every_bad_token_is_refused_at_the_upgrade_standalone() {
    let config = ServerConfig::default().authorizer(strict_verifier());
    every_refusal_answers_401(Door::standalone(config).await).await;
}

#[tokio::test]
async fn every_bad_token_is_refused_at_the_upgrade_embedded() {
    let config = ServerConfig::default().authorizer(strict_verifier());
    every_refusal_answers_401(Door::embedded(config).await).await;
}

#[tokio::test]
async fn tokens_of_each_algorithm_are_accepted_with_their_key_chosen_by_kid() {
    let verifier = JwtVerifier::new()
        .secret_with_kid("hmac", SECRET)
        .and_then(|v| v.public_key_pem_with_kid("rsa", RSA_PUBLIC))
        .and_then(|v| v.public_key_pem_with_kid("ec", EC_PUBLIC))
        .and_then(|v| v.public_key_pem_with_kid("ed", ED_PUBLIC))
        .expect("keys");
    let door = Door::standalone(ServerConfig::default().authorizer(verifier)).await;
    let claims = claims("alice", json!(["backtest"]), json!([]));
    for (alg, kid) in [
        (Algorithm::HS256, "hmac"),
        (Algorithm::RS256, "rsa"),
        (Algorithm::ES256, "ec"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &signing_key(alg)).expect("signed");
        let mut client = door.client(&token).await;
        subscribe_topic(&mut client, "backtest").await;
        // The right algorithm under another key's kid is refused.
        header.kid = Some(if kid == "rsa" { "ec" } else { "rsa" }.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &signing_key(alg)).expect("signed");
        assert_eq!(
            door.connect(Some(&token)).await.err().map(|e| e.0),
            Some(401)
        );
    }
}

fn signing_key(alg: Algorithm) -> jsonwebtoken::EncodingKey {
    use jsonwebtoken::EncodingKey;
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec"),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("ed"),
        _ => hmac_key(SECRET),
    }
}
