//! `GET /api/dead-letters` (the dead letters as JSON, newest first) and
//! `POST /api/dead-letters/replay` (send them again), behind the same auth as every route.

use crate::{AgentId, DeadLetter};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::UNIX_EPOCH;

/// `?reason=R&limit=N` for the list; `?reason=R&to=AGENT` for a replay.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filter {
    pub(super) reason: Option<String>,
    limit: Option<usize>,
    to: Option<String>,
}

/// One dead letter as JSON.
#[derive(Debug, Serialize)]
struct Letter {
    reason: &'static str,
    /// Milliseconds since 1970 (UTC).
    at_unix_ms: u128,
    id: String,
    from: String,
    to: String,
    kind: &'static str,
    priority: crate::Priority,
    topic: Option<String>,
    correlation_id: String,
    content_type: Option<String>,
    trace_parent: Option<String>,
    payload_bytes: usize,
    payload_dropped: bool,
    /// The payload as text when it is UTF-8 ...
    payload_text: Option<String>,
    /// ... and always as base64 (standard alphabet, padded) when kept.
    payload_base64: Option<String>,
}

impl From<&DeadLetter> for Letter {
    fn from(d: &DeadLetter) -> Self {
        let env = d.envelope();
        let bytes = (!d.payload_dropped())
            .then(|| env.payload().bytes().ok())
            .flatten();
        Letter {
            reason: d.reason(),
            at_unix_ms: d
                .at()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.as_millis()),
            id: env.id().to_string(),
            from: env.from().to_string(),
            to: env.to().to_string(),
            kind: env.kind_name(),
            priority: env.priority(),
            topic: env.topic().map(str::to_string),
            correlation_id: env.correlation_id().to_string(),
            content_type: env.content_type().map(str::to_string),
            trace_parent: env.trace_parent().map(str::to_string),
            payload_bytes: env.payload().len(),
            payload_dropped: d.payload_dropped(),
            payload_text: bytes
                .as_ref()
                .and_then(|b| std::str::from_utf8(b).ok().map(str::to_string)),
            payload_base64: bytes.as_ref().map(|b| base64(b)),
        }
    }
}

pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

fn bad_request(why: String) -> Response {
    (StatusCode::BAD_REQUEST, why + "\n").into_response()
}

/// The answer to `GET /api/dead-letters` with `f`, from the hub's letters.
pub(super) fn list(letters: &[DeadLetter], f: &Filter) -> Response {
    if f.to.is_some() {
        return bad_request("`to` belongs to a replay (POST /api/dead-letters/replay)".into());
    }
    let limit = f.limit.unwrap_or(usize::MAX);
    let out: Vec<Letter> = letters
        .iter()
        .filter(|d| f.reason.as_deref().is_none_or(|r| d.reason() == r))
        .take(limit)
        .map(Letter::from)
        .collect();
    json(StatusCode::OK, &out)
}

/// Where `POST /api/dead-letters/replay` with `f` sends the letters, or why it refuses.
///
/// The one route that changes something: a web page must not trigger it (a cross-site
/// form POST passes the Host check without a token; browsers always say their Origin).
pub(super) fn replay_to(
    headers: &HeaderMap,
    f: &Filter,
) -> Result<Option<AgentId>, (StatusCode, String)> {
    if headers.contains_key(header::ORIGIN) {
        return Err((
            StatusCode::FORBIDDEN,
            "replay is for `swarmbus dlq replay`, not for browsers\n".into(),
        ));
    }
    if f.limit.is_some() {
        return Err((
            StatusCode::BAD_REQUEST,
            "`limit` belongs to the list (GET /api/dead-letters)\n".into(),
        ));
    }
    f.to.as_deref()
        .map(str::parse::<AgentId>)
        .transpose()
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("`to` is not an agent id: {e}\n"),
            )
        })
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
