//! Settings of the NATS bridge.

use super::durable::DurableConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How a hub joins a swarm that spans hosts, through a NATS server.
///
/// ```
/// use swarmbus::nats::NatsConfig;
/// let mut nats = NatsConfig::new("nats://127.0.0.1:4222", "hub-a");
/// nats.swarm = "prod".into();
/// nats.validate().unwrap();
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct NatsConfig {
    /// Server URL(s), comma-separated. Default `nats://127.0.0.1:4222`.
    pub url: String,
    /// This hub's name, unique within the swarm: letters, digits, `-` and `_`.
    pub node: String,
    /// The swarm's name: subjects are namespaced `swarmbus.<swarm>.…`, so swarms sharing a
    /// server never see each other's traffic. Default `default`.
    pub swarm: String,
    /// Token authentication.
    pub token: Option<String>,
    /// User for user/password authentication.
    pub user: Option<String>,
    /// Password for user/password authentication.
    pub password: Option<String>,
    /// A `.creds` file (JWT + NKey).
    pub creds_file: Option<PathBuf>,
    /// Require TLS.
    pub tls_required: bool,
    /// Extra root certificates (PEM) to trust.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `tls_client_key`.
    pub tls_client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub tls_client_key: Option<PathBuf>,
    /// The swarm key, as hex (at least 32 bytes: `openssl rand -hex 32`). With a key, every
    /// frame and directory message carries an HMAC-SHA256 tag over its subject and bytes,
    /// and what arrives without a valid tag is refused and counted. Every hub of a swarm
    /// needs the same key. Default none (unsigned; see `docs/scale-out.md`).
    pub swarm_key: Option<String>,
    /// The swarm key read from a file (hex; the file must not be readable by others).
    /// Exclusive with `swarm_key`.
    pub swarm_key_file: Option<PathBuf>,
    /// Older keys still accepted on receipt (at most 4), for rotation without downtime.
    pub previous_keys: Vec<String>,
    /// Messages buffered per remote hub while it cannot be reached (the NATS connection is
    /// down or slow); beyond it sends fail with `MailboxFull`. Default 100,000.
    pub outage_buffer: usize,
    /// Messages per frame before a link flushes (it also flushes after the hub's `linger`).
    /// Links carry all traffic to one hub, so they batch more than a mailbox. Default 1,000.
    pub frame_messages: usize,
    /// Largest frame published, in bytes (must not exceed the server's `max_payload`,
    /// 1 MiB by default). Default 1,000,000.
    pub max_frame_bytes: usize,
    /// How often the hub announces itself. Default 500 ms.
    #[serde(with = "crate::duration")]
    pub heartbeat: Duration,
    /// A hub silent for this long is expired: sends to its agents fail with
    /// `UnknownAgent`. Silence is not counted while this hub is disconnected, nor for
    /// `node_timeout` after it reconnects or wakes from a pause. Default 2 s.
    #[serde(with = "crate::duration")]
    pub node_timeout: Duration,
    /// How long the messages buffered for an expired hub wait for it to come back with the
    /// same epoch; after that they are dropped (`hub_gone`). Default 30 s.
    #[serde(with = "crate::duration")]
    pub departed_retention: Duration,
    /// At shutdown, how long links may take to hand their messages to NATS; what is left
    /// after it is reported as dropped (`unsent`). Default 5 s.
    #[serde(with = "crate::duration")]
    pub shutdown_drain: Duration,
    /// Messages a NATS subscription may hold before the client drops them (a "slow
    /// consumer"). Default 262,144.
    pub subscription_capacity: usize,
    /// Commands the NATS client queues before `publish` waits. Default 8,192.
    pub client_capacity: usize,
    /// Durable delivery through JetStream (the server must run with `-js`); `None` (the
    /// default) keeps core NATS, at most once. Every hub of a swarm must use the same mode.
    pub durable: Option<DurableConfig>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            node: "hub".into(),
            swarm: "default".into(),
            token: None,
            user: None,
            password: None,
            creds_file: None,
            tls_required: false,
            tls_ca_file: None,
            tls_client_cert: None,
            tls_client_key: None,
            swarm_key: None,
            swarm_key_file: None,
            previous_keys: Vec::new(),
            outage_buffer: 100_000,
            frame_messages: 1_000,
            max_frame_bytes: 1_000_000,
            heartbeat: Duration::from_millis(500),
            node_timeout: Duration::from_secs(2),
            departed_retention: Duration::from_secs(30),
            shutdown_drain: Duration::from_secs(5),
            subscription_capacity: 262_144,
            client_capacity: 8_192,
            durable: None,
        }
    }
}

impl NatsConfig {
    /// Defaults with a server URL and this hub's node name.
    pub fn new(url: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node: node.into(),
            ..Self::default()
        }
    }

    /// Checks names and bounds. [`HubConfig::validate`](crate::HubConfig::validate) calls
    /// it for `HubConfig::nats`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the setting: `node` or `swarm` not a name of letters,
    /// digits, `-` and `_` (`node` at most 64), a count or duration out of its range (see
    /// [`limits`](crate::nats::limits)), `heartbeat` under 10 ms or not shorter than
    /// `node_timeout`, `user` without `password` (or the reverse), `tls_client_cert`
    /// without `tls_client_key` (or the reverse), or an unusable swarm key: both
    /// `swarm_key` and `swarm_key_file` set, `previous_keys` without a current key, a key
    /// that is not hex or too short or long, a key file that cannot be read, is not a
    /// regular file, is over 4 KiB or (on Unix) is accessible to other users.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !is_token(&self.node) || self.node.len() > 64 {
            return bad(format!(
                "nats.node `{}` must be 1-64 letters, digits, `-` or `_`",
                self.node
            ));
        }
        if !is_token(&self.swarm) {
            return bad(format!(
                "nats.swarm `{}` must be letters, digits, `-` or `_`",
                self.swarm
            ));
        }
        let counts: [(&str, usize, usize); 5] = [
            ("outage_buffer", self.outage_buffer, MAX_OUTAGE_BUFFER),
            ("frame_messages", self.frame_messages, MAX_FRAME_MESSAGES),
            (
                "subscription_capacity",
                self.subscription_capacity,
                MAX_CAPACITY,
            ),
            ("client_capacity", self.client_capacity, MAX_CAPACITY),
            ("max_frame_bytes", self.max_frame_bytes, MAX_FRAME_BYTES),
        ];
        for (name, value, max) in counts {
            if value == 0 || value > max {
                return bad(format!(
                    "nats.{name} must be between 1 and {max} (got {value})"
                ));
            }
        }
        if self.max_frame_bytes < 4096 {
            return bad("nats.max_frame_bytes must be at least 4096".into());
        }
        let durations: [(&str, Duration); 4] = [
            ("heartbeat", self.heartbeat),
            ("node_timeout", self.node_timeout),
            ("departed_retention", self.departed_retention),
            ("shutdown_drain", self.shutdown_drain),
        ];
        for (name, value) in durations {
            if value > MAX_DURATION {
                return bad(format!(
                    "nats.{name} must be at most {MAX_DURATION:?} (got {value:?})"
                ));
            }
        }
        if self.heartbeat < Duration::from_millis(10) || self.node_timeout <= self.heartbeat {
            return bad(
                "nats.heartbeat must be at least 10ms and nats.node_timeout longer than it".into(),
            );
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("nats.user and nats.password go together".into());
        }
        if self.tls_client_cert.is_some() != self.tls_client_key.is_some() {
            return bad("nats.tls_client_cert and nats.tls_client_key go together".into());
        }
        if let Some(durable) = &self.durable {
            durable.validate()?;
            if durable.directory_ttl < self.heartbeat * 4 {
                return bad(format!(
                    "nats.durable.directory_ttl ({:?}) must be at least four heartbeats ({:?})",
                    durable.directory_ttl,
                    self.heartbeat * 4
                ));
            }
        }
        self.keyring().map(|_| ())
    }

    /// The swarm's keys, `None` for an unsigned swarm.
    pub(crate) fn keyring(&self) -> Result<Option<super::signing::Keyring>> {
        super::signing::Keyring::from_config(
            self.swarm_key.as_deref(),
            self.swarm_key_file.as_deref(),
            &self.previous_keys,
        )
    }
}

/// Longest duration any NATS setting takes.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Largest `outage_buffer`.
pub const MAX_OUTAGE_BUFFER: usize = 100_000_000;
/// Largest `frame_messages`.
pub const MAX_FRAME_MESSAGES: usize = 1_000_000;
/// Largest `subscription_capacity` and `client_capacity`.
pub const MAX_CAPACITY: usize = 16_777_216;
/// Largest `max_frame_bytes` (the NATS server refuses more than 64 MiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

impl std::fmt::Debug for NatsConfig {
    /// Secrets stay out of logs: the token, the password and any password in the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsConfig")
            .field("url", &redact_urls_in(&self.url))
            .field("node", &self.node)
            .field("swarm", &self.swarm)
            .field("token", &secret(&self.token))
            .field("user", &self.user)
            .field("password", &secret(&self.password))
            .field("creds_file", &self.creds_file)
            .field("tls_required", &self.tls_required)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
            .field("swarm_key", &secret(&self.swarm_key))
            .field("swarm_key_file", &self.swarm_key_file)
            .field(
                "previous_keys",
                &format_args!("[{} redacted]", self.previous_keys.len()),
            )
            .field("outage_buffer", &self.outage_buffer)
            .field("frame_messages", &self.frame_messages)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("heartbeat", &self.heartbeat)
            .field("node_timeout", &self.node_timeout)
            .field("departed_retention", &self.departed_retention)
            .field("shutdown_drain", &self.shutdown_drain)
            .field("subscription_capacity", &self.subscription_capacity)
            .field("client_capacity", &self.client_capacity)
            .field("durable", &self.durable)
            .finish()
    }
}

/// A NATS failure as an `Error` that keeps the client's error, with any credentials in URLs
/// blanked out of its text.
pub(crate) fn nats_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    let message = redact_urls_in(&e.to_string());
    Error::Nats(crate::error::NatsError::new(
        redact_urls_in(what),
        message,
        e,
    ))
}

/// Blanks the secret part of every `scheme://secret@host` in `text` (`nats://user:***@host`):
/// a password after `user:`, or a whole token without a user.
pub(crate) fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, or another scheme's comma.
        let end = tail
            .find(|c: char| c == '/' || c == ',' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A NATS subject token we allow in names.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let mut c = NatsConfig::new(
            "nats://admin:hunter2@10.0.0.1:4222,nats://tok3n@h2:4222",
            "a",
        );
        c.password = Some("hunter2".into());
        c.token = Some("s3cret".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert_eq!(
            redact_urls_in("connect to nats://admin:hunter2@h:4222 failed"),
            "connect to nats://admin:***@h:4222 failed"
        );
        assert_eq!(redact_urls_in("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_urls_in("tls://a@b@h"), "tls://***@h");
    }

    #[test]
    fn values_that_would_break_later_are_refused() {
        let check = |f: fn(&mut NatsConfig), field: &str| {
            let mut c = NatsConfig::default();
            f(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        };
        check(|c| c.subscription_capacity = 0, "subscription_capacity");
        check(|c| c.client_capacity = 0, "client_capacity");
        check(|c| c.client_capacity = usize::MAX, "client_capacity");
        check(|c| c.outage_buffer = usize::MAX, "outage_buffer");
        check(|c| c.frame_messages = 0, "frame_messages");
        check(|c| c.max_frame_bytes = usize::MAX, "max_frame_bytes");
        check(
            |c| c.node_timeout = Duration::from_secs(u64::MAX),
            "node_timeout",
        );
        check(
            |c| c.departed_retention = Duration::from_secs(1 << 40),
            "departed_retention",
        );
        check(|c| c.shutdown_drain = Duration::MAX, "shutdown_drain");
        check(|c| c.heartbeat = Duration::ZERO, "heartbeat");
        check(
            |c| {
                c.durable = Some(crate::nats::DurableConfig::default());
                c.heartbeat = Duration::from_secs(10);
                c.node_timeout = Duration::from_secs(20);
            },
            "directory_ttl",
        );
        NatsConfig::default().validate().unwrap();
    }
}
