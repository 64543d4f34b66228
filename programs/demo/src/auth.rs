//! Authentication: the verifier built from `--auth-secret-file` / `--auth-public-key`,
//! the demo's [`Authorizer`] (the crate's [`JwtVerifier`] plus the runs the subject
//! owns), and the development token printed with an HS256 secret.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backtest_stream::auth::{AuthError, Authorizer, Grants, JwtVerifier};
use serde_json::json;

use crate::options::AuthOptions;
use crate::runs::Runs;

/// How long the printed development token lasts.
pub const DEV_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The development token's subject.
pub const DEV_SUBJECT: &str = "dev";
/// The largest key or secret file read (a PEM key is a few kilobytes).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The demo's authorizer: a token's grants from the crate's verifier, plus every run
/// its subject started (a run started with a token belongs to its `sub`, which may
/// always follow and cancel it). Used for the WebSocket (through the hub) and for REST.
#[derive(Debug, Clone)]
pub struct DemoAuthorizer {
    verifier: JwtVerifier,
    /// `aud`/`iss` were configured: the claim must be present (see `present`).
    require_aud: bool,
    require_iss: bool,
    /// Set once the registry exists (the hub, which holds this authorizer, is made
    /// before the registry that publishes through it).
    runs: Arc<OnceLock<Runs>>,
}

impl DemoAuthorizer {
    pub fn new(verifier: JwtVerifier, require_aud: bool, require_iss: bool) -> Self {
        Self {
            verifier,
            require_aud,
            require_iss,
            runs: Arc::default(),
        }
    }

    /// Gives the authorizer the registry whose owners it reads.
    pub fn set_runs(&self, runs: Runs) {
        // Called once, at start-up; a second call would change nothing.
        let _ = self.runs.set(runs);
    }
}

impl Authorizer for DemoAuthorizer {
    fn authorize(&self, token: &str) -> Result<Grants, AuthError> {
        let mut grants = self.verifier.authorize(token)?;
        self.present(token)?;
        if let Some(runs) = self.runs.get() {
            grants.runs.extend(runs.owned_by(&grants.subject));
        }
        Ok(grants)
    }
}

impl DemoAuthorizer {
    /// A configured `aud` or `iss` must be in the token. The crate's verifier checks
    /// their values only when the token has them, so a token without `aud` passes it
    /// even with `--auth-audience`: checked here, on a token whose signature and claims
    /// the verifier has just accepted (so reading its payload unverified is safe).
    fn present(&self, token: &str) -> Result<(), AuthError> {
        if !self.require_aud && !self.require_iss {
            return Ok(());
        }
        let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        for (required, claim) in [(self.require_aud, "aud"), (self.require_iss, "iss")] {
            if required && claims.get(claim).is_none_or(serde_json::Value::is_null) {
                return Err(AuthError::InvalidClaim {
                    claim: claim.to_owned(),
                    reason: "missing".to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// What `--auth-*` configured: the verifier, and the HS256 secret when there is one
/// (to sign the development token).
pub struct AuthSetup {
    pub authorizer: DemoAuthorizer,
    secret: Option<Vec<u8>>,
    audience: Option<String>,
    issuer: Option<String>,
}

impl AuthSetup {
    /// Reads the secret and key files; `None` when no `--auth-*` option was given.
    /// Every error names the option and the file.
    pub fn from_options(options: &AuthOptions) -> Result<Option<AuthSetup>, String> {
        if options.secret_file.is_none() && options.public_keys.is_empty() {
            return Ok(None);
        }
        let mut verifier = JwtVerifier::new();
        let mut secret = None;
        if let Some(path) = &options.secret_file {
            let bytes = read_secret(path)?;
            verifier = verifier
                .secret(&bytes)
                .map_err(|e| format!("--auth-secret-file {}: {e}", path.display()))?;
            secret = Some(bytes);
        }
        for path in &options.public_keys {
            let pem = read_key_file("--auth-public-key", path)?;
            verifier = verifier
                .public_key_pem(&pem)
                .map_err(|e| format!("--auth-public-key {}: {e}", path.display()))?;
        }
        if let Some(audience) = &options.audience {
            verifier = verifier.audience(audience.clone());
        }
        if let Some(issuer) = &options.issuer {
            verifier = verifier.issuer(issuer.clone());
        }
        Ok(Some(AuthSetup {
            authorizer: DemoAuthorizer::new(
                verifier,
                options.audience.is_some(),
                options.issuer.is_some(),
            ),
            secret,
            audience: options.audience.clone(),
            issuer: options.issuer.clone(),
        }))
    }

    /// A development token (`sub` [`DEV_SUBJECT`], every topic, `start cancel`, 12
    /// hours), when an HS256 secret lets the demo sign one.
    pub fn dev_token(&self) -> Option<Result<String, String>> {
        let secret = self.secret.as_ref()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = json!({
            "sub": DEV_SUBJECT,
            "iat": now,
            "exp": now + DEV_TOKEN_LIFETIME.as_secs(),
            "topics": "*",
            "scope": "start cancel",
        });
        if let Some(audience) = &self.audience {
            claims["aud"] = json!(audience);
        }
        if let Some(issuer) = &self.issuer {
            claims["iss"] = json!(issuer);
        }
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        let signed = jsonwebtoken::EncodingKey::from_secret(secret)
            .and_then(|key| jsonwebtoken::encode(&header, &claims, &key))
            .map_err(|e| format!("cannot sign the development token: {e}"));
        Some(signed)
    }
}

/// The secret file's content without one trailing newline (`\n` or `\r\n`).
fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = read_key_file("--auth-secret-file", path)?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(format!(
            "--auth-secret-file {}: the file is empty; put the HS256 secret in it \
             (at least 32 random bytes, e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        ));
    }
    Ok(bytes)
}

/// A key or secret file, read whole (at most [`MAX_KEY_FILE_BYTES`]).
fn read_key_file(option: &str, path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("{option} {shown}: cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{option} {shown}: not a regular file"));
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{option} {shown}: {} bytes is too large for a key (at most {MAX_KEY_FILE_BYTES})",
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{option} {shown}: cannot read: {e}"))
}
