//! [`JwtVerifier`]: the [`Authorizer`] for JSON Web Tokens, on the `jsonwebtoken` crate.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};

use crate::auth::Authorizer;
use crate::auth::claims::Claims;
use crate::auth::error::AuthError;
use crate::auth::grants::Grants;

/// A signature algorithm a [`JwtVerifier`] may accept (`none` is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256, a shared secret.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256, an RSA public key.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Algorithm::HS256 => J::HS256,
            Algorithm::HS384 => J::HS384,
            Algorithm::HS512 => J::HS512,
            Algorithm::RS256 => J::RS256,
            Algorithm::RS384 => J::RS384,
            Algorithm::RS512 => J::RS512,
            Algorithm::PS256 => J::PS256,
            Algorithm::PS384 => J::PS384,
            Algorithm::PS512 => J::PS512,
            Algorithm::ES256 => J::ES256,
            Algorithm::ES384 => J::ES384,
            Algorithm::EdDSA => J::EdDSA,
        }
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    /// `HS256`, `RS256`, `ES256`, `EdDSA`, ... (`none` is refused).
    fn from_str(name: &str) -> Result<Self, KeyError> {
        let all = [
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ];
        all.into_iter()
            .find(|a| format!("{a:?}") == name)
            .ok_or_else(|| KeyError::UnknownAlgorithm(name.to_owned()))
    }
}

/// Why a key given to a [`JwtVerifier`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC secret must not be empty.
    #[error("the secret is empty")]
    EmptySecret,
    /// The PEM text is no RSA, EC or Ed25519 public key.
    #[error("not an RSA, EC or Ed25519 public key in PEM form: {0}")]
    NotAPublicKey(String),
    /// An algorithm name nobody knows.
    #[error(
        "unknown algorithm {0:?}; expected one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
    )]
    UnknownAlgorithm(String),
}

/// One verifying key, with its `kid` when it has one.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    key: DecodingKey,
}

/// Verifies JSON Web Tokens (RFC 7519) and reads their grants: `sub`, `exp`, `topics`,
/// `runs` and `scope` (see [`crate::wire::protocol`], "Authentication and permissions").
///
/// Keys are HMAC secrets (HS256) or public keys in PEM form (RS256, PS256, ES256,
/// EdDSA), chosen by the token's `kid` when several are configured. A token is accepted
/// only with an algorithm of the allow-list (by default the usual one of each kind of
/// key configured: HS256, RS256, ES256 and ES384, EdDSA) whose family is the key's, so
/// an RSA public key can never be used as an HMAC secret. `exp` and `sub` are required;
/// `nbf` and `iat` are honoured with a leeway (default 30 s); `aud` and `iss` are checked
/// when configured.
///
/// ```
/// use backtest_stream::auth::{Authorizer, JwtVerifier};
///
/// let verifier = JwtVerifier::new()
///     .secret("a shared secret of at least 32 bytes!!")?
///     .audience("dashboard");
/// assert!(verifier.authorize("not.a.token").is_err());
/// # Ok::<(), backtest_stream::auth::KeyError>(())
/// ```
#[derive(Clone, Default)]
pub struct JwtVerifier {
    keys: Vec<Key>,
    algorithms: Option<HashSet<Algorithm>>,
    leeway: Option<Duration>,
    audience: Vec<String>,
    issuer: Vec<String>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys.
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("algorithms", &self.allowed())
            .field("leeway", &self.leeway_in_force())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

impl JwtVerifier {
    /// A verifier with no key yet (it refuses every token).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an HMAC secret (HS256), for tokens without `kid` or when it is the only one.
    pub fn secret(self, secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        self.add_secret(None, secret.as_ref())
    }

    /// Adds an HMAC secret for tokens whose `kid` is `kid`.
    pub fn secret_with_kid(
        self,
        kid: impl Into<String>,
        secret: impl AsRef<[u8]>,
    ) -> Result<Self, KeyError> {
        self.add_secret(Some(kid.into()), secret.as_ref())
    }

    /// Adds a public key in PEM form: RSA (`RS256`, `PS256`, ...), EC (`ES256`,
    /// `ES384`) or Ed25519 (`EdDSA`), told apart by its content.
    pub fn public_key_pem(self, pem: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        self.add_public_key(None, pem.as_ref())
    }

    /// Adds a public key in PEM form for tokens whose `kid` is `kid`.
    pub fn public_key_pem_with_kid(
        self,
        kid: impl Into<String>,
        pem: impl AsRef<[u8]>,
    ) -> Result<Self, KeyError> {
        self.add_public_key(Some(kid.into()), pem.as_ref())
    }

    /// Accepts only these algorithms (replacing the default allow-list).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// The clock skew allowed for `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Requires `aud` to be (or contain) `audience`; may be called for several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// Requires `iss` to be `issuer`; may be called for several.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer.push(issuer.into());
        self
    }

    fn add_secret(mut self, kid: Option<String>, secret: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_secret(secret).map_err(|_| KeyError::EmptySecret)?;
        self.keys.push(Key { kid, key });
        Ok(self)
    }

    fn add_public_key(mut self, kid: Option<String>, pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .or_else(|_| DecodingKey::from_ed_pem(pem))
            .map_err(|e| KeyError::NotAPublicKey(e.to_string()))?;
        self.keys.push(Key { kid, key });
        Ok(self)
    }

    fn leeway_in_force(&self) -> Duration {
        self.leeway.unwrap_or(DEFAULT_LEEWAY)
    }

    /// The allow-list in force.
    fn allowed(&self) -> HashSet<Algorithm> {
        if let Some(list) = &self.algorithms {
            return list.clone();
        }
        use jsonwebtoken::AlgorithmFamily as F;
        let mut list = HashSet::new();
        for key in &self.keys {
            match key.key.family() {
                F::Hmac => list.extend([Algorithm::HS256]),
                F::Rsa => list.extend([Algorithm::RS256]),
                F::Ec => list.extend([Algorithm::ES256, Algorithm::ES384]),
                F::Ed => list.extend([Algorithm::EdDSA]),
            }
        }
        list
    }

    /// The checks of the registered claims for a token signed with `alg`.
    fn validation(&self, alg: jsonwebtoken::Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_in_force().as_secs();
        validation.validate_nbf = true;
        // A configured audience or issuer must be in the token, not only match when
        // present.
        let mut required = vec!["exp", "sub"];
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
            required.push("aud");
        }
        if !self.issuer.is_empty() {
            validation.set_issuer(&self.issuer);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

impl Authorizer for JwtVerifier {
    fn authorize(&self, token: &str) -> Result<Grants, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(malformed)?;
        let allowed = self.allowed();
        let Some(alg) = allowed.iter().copied().find(|a| a.jwt() == header.alg) else {
            return Err(AuthError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
        };
        let family = alg.jwt().family();
        let candidates = self
            .keys
            .iter()
            .filter(|k| k.key.family() == family && (header.kid.is_none() || k.kid == header.kid));
        let validation = self.validation(alg.jwt());
        let mut outcome = Err(AuthError::UnknownKey);
        for key in candidates {
            outcome = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
                .map_err(|e| refusal(e.kind()));
            if !matches!(outcome, Err(AuthError::BadSignature)) {
                break;
            }
        }
        outcome?
            .claims
            .into_grants(SystemTime::now(), self.leeway_in_force())
    }
}

fn malformed(error: jsonwebtoken::errors::Error) -> AuthError {
    AuthError::Malformed(match error.kind() {
        ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => {
            "bad header (an unknown algorithm such as \"none\"?)".to_owned()
        }
        _ => error.to_string(),
    })
}

fn refusal(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::InvalidClaim {
            claim: claim.clone(),
            reason: "missing".to_owned(),
        },
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim {
            claim: claim.clone(),
            reason: "wrong form".to_owned(),
        },
        ErrorKind::InvalidAlgorithm => AuthError::UnknownKey,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("not a JWT".to_owned())
        }
        ErrorKind::Json(e) => AuthError::Malformed(format!("bad claims: {e}")),
        // A key that cannot verify this token (wrong curve, ...): the signature fails.
        _ => AuthError::BadSignature,
    }
}
