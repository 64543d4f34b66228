//! The token verifier built from `--auth-secret-file` / `--auth-public-key`: the crate's
//! [`JwtVerifier`] (which also requires a configured `aud` or `iss` to be in the token).
//!
//! The file helpers are the demo's (`programs/demo/src/auth.rs`), copied: there they are
//! private to a module that also holds the demo's run registry, so they cannot be shared
//! by path.

use std::path::Path;

use backtest_stream::auth::JwtVerifier;

use crate::options::AuthOptions;

/// The largest key or secret file read (a PEM key is a few kilobytes).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The verifier, or `None` when no `--auth-*` key was given. Every error names the
/// option and the file.
pub fn verifier(options: &AuthOptions) -> Result<Option<JwtVerifier>, String> {
    if !options.enabled() {
        return Ok(None);
    }
    let mut verifier = JwtVerifier::new();
    if let Some(path) = &options.secret_file {
        let bytes = read_secret(path)?;
        verifier = verifier
            .secret(&bytes)
            .map_err(|e| format!("--auth-secret-file {}: {e}", path.display()))?;
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
    Ok(Some(verifier))
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
