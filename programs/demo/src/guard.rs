//! What every request passes before a handler sees it: the `Host` allow-list (DNS
//! rebinding), the `Origin` check of requests that change something (cross-site
//! requests), `Content-Type: application/json` on `POST`; and the headers every answer
//! carries (no framing, no sniffing).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The `Host` names the server answers to.
///
/// A page of another site that rebinds its own name to this server's address sends its
/// own name as `Host`; only the names listed here are served.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// `host:port`, lower case (IPv6 in brackets).
    with_port: HashSet<String>,
    /// Names also allowed without a port (behind a proxy).
    bare: HashSet<String>,
}

impl AllowedHosts {
    /// The bound address; `localhost`, `127.0.0.1` and `[::1]` with its port when it is
    /// loopback or unspecified; `name` (the host name of `--addr`) with its port; and
    /// `extra` (`--allowed-host`: `NAME:PORT` exactly, `NAME` with the bound port or
    /// without a port).
    pub fn new(bound: SocketAddr, name: Option<&str>, extra: &[String]) -> Self {
        let port = bound.port();
        let mut hosts = Self::default();
        hosts.with_port.insert(bound.to_string());
        let ip = bound.ip();
        if ip.is_loopback() || ip.is_unspecified() {
            for local in ["localhost", "127.0.0.1", "[::1]"] {
                hosts.with_port.insert(format!("{local}:{port}"));
            }
        }
        if let Some(name) = name {
            hosts
                .with_port
                .insert(format!("{}:{port}", name.to_ascii_lowercase()));
        }
        for entry in extra {
            match split_host(entry) {
                Some((host, Some(p))) => drop(hosts.with_port.insert(format!("{host}:{p}"))),
                Some((host, None)) => {
                    hosts.with_port.insert(format!("{host}:{port}"));
                    hosts.bare.insert(host.to_owned());
                }
                None => {}
            }
        }
        hosts
    }

    /// Whether a `Host` header's value is served.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        match split_host(&host) {
            Some((name, Some(port))) => self.with_port.contains(&format!("{name}:{port}")),
            // No port: HTTP's default port.
            Some((name, None)) => {
                self.bare.contains(name) || self.with_port.contains(&format!("{name}:80"))
            }
            None => false,
        }
    }

    /// The names, for messages (sorted).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.with_port.iter().cloned().collect();
        names.extend(self.bare.iter().cloned());
        names.sort();
        names
    }
}

/// `host[:port]` → (host, port); IPv6 stays in brackets (`[::1]`). `None` when malformed.
fn split_host(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, rest) = if text.starts_with('[') {
        let end = text.find(']')?;
        text[1..end].parse::<Ipv6Addr>().ok()?;
        text.split_at(end + 1)
    } else {
        let end = text.find(':').unwrap_or(text.len());
        let (host, rest) = text.split_at(end);
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if !valid {
            return None;
        }
        (host, rest)
    };
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Some((host, None)),
        None => None,
        Some(port) => Some((host, Some(port.parse().ok()?))),
    }
}

/// Whether an address is one only this machine can reach (every address a name
/// resolves to, for a name).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4: Ipv4Addr| v4.is_loopback())
        }
    }
}

/// The checks, in order: `Host` (421), then for requests that change something
/// (`POST`, `PUT`, `PATCH`, `DELETE`) `Origin` (403), then for `POST`
/// `Content-Type` (415). Every answer gets `X-Frame-Options: DENY`,
/// `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
pub async fn check(hosts: Arc<AllowedHosts>, request: Request, next: Next) -> Response {
    let mut response = match refuse(&hosts, &request) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Why `request` is refused, if it is.
fn refuse(hosts: &AllowedHosts, request: &Request) -> Option<ApiError> {
    let headers = request.headers();
    let host = match headers.get(header::HOST).map(HeaderValue::to_str) {
        Some(Ok(host)) => host,
        _ => {
            return Some(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the request has no valid Host header",
            ));
        }
    };
    // An absolute request target (`GET http://name/ HTTP/1.1`) names the host too.
    let target = request.uri().authority().map(|a| a.as_str());
    if let Some(refused) = [Some(host), target]
        .into_iter()
        .flatten()
        .find(|h| !hosts.allows(h))
    {
        let refused: String = refused.chars().take(100).collect();
        return Some(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer to the host `{refused}`; it answers to {} \
                 (start it with --allowed-host NAME to add a name)",
                hosts.names().join(", ")
            ),
        ));
    }
    let method = request.method();
    let changes = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
    if changes {
        if let Some(error) = foreign_origin(headers, host) {
            return Some(error);
        }
    }
    if method == Method::POST && !is_json(headers) {
        let got = headers
            .get(header::CONTENT_TYPE)
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(100)
                    .collect()
            })
            .unwrap_or_else(|| "none".to_owned());
        return Some(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be JSON sent with `Content-Type: application/json` (got {got})"),
        ));
    }
    None
}

/// A 403 when the request has an `Origin` that is not this server (`Host`). A request
/// without `Origin` (curl, scripts) is not a browser's cross-site request.
fn foreign_origin(headers: &HeaderMap, host: &str) -> Option<ApiError> {
    let origin = headers.get(header::ORIGIN)?;
    let same = origin
        .to_str()
        .ok()
        .and_then(origin_host)
        .and_then(|(scheme, authority)| normalise(authority, scheme))
        .is_some_and(|origin| {
            [normalise(host, "http"), normalise(host, "https")].contains(&Some(origin))
        });
    if same {
        return None;
    }
    let shown: String = String::from_utf8_lossy(origin.as_bytes())
        .chars()
        .take(100)
        .collect();
    Some(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "requests from the origin `{shown}` are refused: only pages of this server may change runs"
        ),
    ))
}

/// `http://host:port` → (`http`, `host:port`).
fn origin_host(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    (!rest.is_empty() && !rest.contains('/')).then_some((scheme, rest))
}

/// `host[:port]` with the scheme's default port made explicit, lower case.
fn normalise(authority: &str, scheme: &str) -> Option<String> {
    let authority = authority.trim().to_ascii_lowercase();
    let (host, port) = split_host(&authority)?;
    let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some(format!("{host}:{port}"))
}

/// Whether the body is declared JSON (`application/json`, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_matched_with_their_port() {
        let bound: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let hosts = AllowedHosts::new(bound, None, &["demo.example".into(), "x.test:9".into()]);
        for ok in [
            "127.0.0.1:8000",
            "LOCALHOST:8000",
            "[::1]:8000",
            "demo.example:8000",
            "demo.example",
            "x.test:9",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example:8000",
            "localhost:8001",
            "localhost",
            "x.test",
            "127.0.0.1:8000:1",
            "[::1",
            "",
            "a b:8000",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }

    #[test]
    fn origins_are_compared_with_default_ports() {
        assert_eq!(
            normalise("Example.COM", "https"),
            Some("example.com:443".into())
        );
        assert_eq!(origin_host("http://a:1"), Some(("http", "a:1")));
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("file:///x"), None);
    }
}
