//! Who may ask: a bearer token on every route but `/healthz` when one is configured, and,
//! without a token, a `Host` header that names this hub (against DNS rebinding).
//!
//! # Why the Host check
//!
//! Without a token the routes answer anyone who reaches the socket. A web page on
//! `http://evil.example:9464/` whose DNS name the attacker then re-points at 127.0.0.1
//! ("DNS rebinding") is same-origin with its own name and can read `/api/stats` from a
//! victim's browser; the browser still sends `Host: evil.example:9464`. So, with no token,
//! a request must carry a Host (and, in absolute form, a target authority) whose host part is
//! `localhost`, a loopback IP literal, the bound IP, or any IP literal when the server is bound
//! to an unspecified address (`0.0.0.0`, `[::]`): a page whose origin is an IP literal is
//! served by that IP, so it cannot rebind. The port must be the bound port; it may be left
//! out only when the bound port is 80, because browsers send `host:port` unless the port is
//! the scheme's default. Other requests get `421 Misdirected Request`, counted. `/healthz` is
//! exempt, so liveness probes may use any name. With a token the token is the guard and Host
//! is not checked.

use super::conn::HttpCounters;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the access layer needs: the token, or else the Host rule; and where to count.
#[derive(Clone)]
pub(crate) struct AuthState {
    /// The bearer token, when one is configured.
    pub(crate) token: Option<Arc<str>>,
    /// The Host rule, when no token is configured.
    pub(crate) hosts: Option<HostRule>,
    /// The server's counters (Host refusals).
    pub(crate) counters: Arc<HttpCounters>,
}

impl std::fmt::Debug for AuthState {
    /// The token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// Which `Host` values name this hub (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostRule {
    bound: SocketAddr,
}

impl HostRule {
    /// The rule for a server bound to `bound` (with its real port).
    pub(crate) fn new(bound: SocketAddr) -> HostRule {
        HostRule { bound }
    }

    /// Whether `authority` (`host`, `host:port`, `[v6]:port`) names this hub.
    pub(crate) fn allows(&self, authority: &str) -> bool {
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        let port_ok = match port {
            Some(p) => p == self.bound.port(),
            None => self.bound.port() == 80,
        };
        if !port_ok {
            return false;
        }
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match host_ip(host) {
            Some(ip) => {
                ip.is_loopback() || ip == self.bound.ip() || self.bound.ip().is_unspecified()
            }
            None => false,
        }
    }
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when it is not of that form (userinfo, an
/// empty or non-numeric port, an empty host).
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() || authority.contains(['@', '/', ' ', '\\']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&authority[..v6.len() + 2], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

/// The IP of an IPv4 literal or a bracketed IPv6 literal.
fn host_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// Whether the request names this hub: exactly one `Host` header that the rule allows, and
/// an absolute-form target's authority too.
fn names_this_hub(rule: &HostRule, request: &Request) -> bool {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().ok(),
        _ => None,
    };
    let target_ok = request
        .uri()
        .authority()
        .is_none_or(|a| rule.allows(a.as_str()));
    target_ok && host.is_some_and(|h| rule.allows(h))
}

/// Lets a request through when it may ask (see the module docs). With a token: it carries
/// the right one, in `Authorization: Bearer <token>` or, for the dashboard page only (a
/// browser cannot add a header to a navigation), in `?token=<token>`.
pub(crate) async fn require_token(
    State(auth): State<AuthState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" {
        return next.run(request).await;
    }
    let Some(expected) = auth.token else {
        if let Some(rule) = &auth.hosts {
            if !names_this_hub(rule, &request) {
                auth.counters.host_refused();
                return (
                    StatusCode::MISDIRECTED_REQUEST,
                    "misdirected request: the Host header does not name this hub (use \
                     127.0.0.1, localhost or the bound address with its port, or set an auth \
                     token)\n",
                )
                    .into_response();
            }
        }
        return next.run(request).await;
    };
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| ct_eq(t.trim().as_bytes(), expected.as_bytes()))
        .unwrap_or(false);
    let from_query = path == "/"
        && request
            .uri()
            .query()
            .and_then(query_token)
            .is_some_and(|t| ct_eq(t.as_bytes(), expected.as_bytes()));
    if from_header || from_query {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"swarmbus\"")],
            "unauthorized\n",
        )
            .into_response()
    }
}

/// Compares in time that depends only on the lengths, so a wrong guess does not reveal how
/// many leading bytes were right.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The percent-decoded value of `token` in a query string.
pub(crate) fn query_token(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .and_then(|(_, v)| percent_decode(v))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(!ct_eq(b"", b"x"));
    }

    #[test]
    fn reads_token_from_query() {
        assert_eq!(query_token("token=abc").as_deref(), Some("abc"));
        assert_eq!(query_token("x=1&token=a%2Fb%3D").as_deref(), Some("a/b="));
        assert_eq!(query_token("tokens=abc"), None);
        assert_eq!(query_token("token=%zz"), None);
        assert_eq!(query_token("token=%4"), None);
    }

    #[test]
    fn host_rule_for_a_loopback_bind() {
        let rule = HostRule::new("127.0.0.1:9464".parse().unwrap());
        for ok in [
            "127.0.0.1:9464",
            "localhost:9464",
            "LOCALHOST:9464",
            "[::1]:9464",
            "127.0.0.2:9464",
        ] {
            assert!(rule.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:9464",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "localhost:9465",
            "localhost:",
            ":9464",
            "localhost.:9464",
            "10.0.0.1:9464",
            "[::1]9464",
            "[::1:9464",
            "u@localhost:9464",
            "localhost:9464:1",
            "localhost:+9464",
            "localhost:99999",
            "",
        ] {
            assert!(!rule.allows(bad), "{bad}");
        }
    }

    #[test]
    fn host_rule_without_a_port_only_on_port_80() {
        let rule = HostRule::new("127.0.0.1:80".parse().unwrap());
        assert!(rule.allows("localhost"));
        assert!(rule.allows("127.0.0.1"));
        assert!(rule.allows("[::1]"));
        assert!(rule.allows("localhost:80"));
        assert!(!rule.allows("evil.example"));
    }

    #[test]
    fn host_rule_for_a_specific_and_an_unspecified_bind() {
        let rule = HostRule::new("192.0.2.7:9464".parse().unwrap());
        assert!(rule.allows("192.0.2.7:9464"));
        assert!(rule.allows("localhost:9464"));
        assert!(!rule.allows("192.0.2.8:9464"));
        assert!(!rule.allows("hub.example:9464"));
        let rule = HostRule::new("0.0.0.0:9464".parse().unwrap());
        assert!(rule.allows("192.0.2.8:9464"));
        assert!(rule.allows("[2001:db8::1]:9464"));
        assert!(!rule.allows("hub.example:9464"));
        assert!(!rule.allows("192.0.2.8:9465"));
        let rule = HostRule::new("[::]:9464".parse().unwrap());
        assert!(rule.allows("[2001:db8::1]:9464"));
        assert!(rule.allows("192.0.2.8:9464"));
    }
}
