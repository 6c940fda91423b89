//! Settings of the NATS bridge.

use crate::config::duration_serde;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(with = "duration_serde")]
    pub heartbeat: Duration,
    /// A hub silent for this long is removed from the directory. Default 2 s.
    #[serde(with = "duration_serde")]
    pub node_timeout: Duration,
    /// Messages a NATS subscription may hold before the client drops them (a "slow
    /// consumer"). Default 262,144.
    pub subscription_capacity: usize,
    /// Commands the NATS client queues before `publish` waits. Default 8,192.
    pub client_capacity: usize,
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
            outage_buffer: 100_000,
            frame_messages: 1_000,
            max_frame_bytes: 1_000_000,
            heartbeat: Duration::from_millis(500),
            node_timeout: Duration::from_secs(2),
            subscription_capacity: 262_144,
            client_capacity: 8_192,
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

    /// Checks names and bounds.
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
        if self.outage_buffer == 0 {
            return bad("nats.outage_buffer must be at least 1".into());
        }
        if self.frame_messages == 0 {
            return bad("nats.frame_messages must be at least 1".into());
        }
        if self.max_frame_bytes < 4096 {
            return bad("nats.max_frame_bytes must be at least 4096".into());
        }
        if self.heartbeat.is_zero() || self.node_timeout <= self.heartbeat {
            return bad("nats.node_timeout must be longer than a non-zero nats.heartbeat".into());
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("nats.user and nats.password go together".into());
        }
        if self.tls_client_cert.is_some() != self.tls_client_key.is_some() {
            return bad("nats.tls_client_cert and nats.tls_client_key go together".into());
        }
        Ok(())
    }
}

/// A NATS subject token we allow in names.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
