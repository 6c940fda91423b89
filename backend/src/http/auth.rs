//! Bearer-token check for every route but `/healthz`.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Lets a request through when no token is configured or it carries the right one, in
/// `Authorization: Bearer <token>` or, for the dashboard page only (a browser cannot add a
/// header to a navigation), in `?token=<token>`.
pub(crate) async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/healthz" {
        return next.run(request).await;
    }
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
}
