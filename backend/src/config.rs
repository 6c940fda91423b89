//! Hub configuration: one `Default` that lists every default.

use crate::workers::WorkerConfig;
use crate::{Error, Priority, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
#[cfg(feature = "http")]
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Everything a hub can be told. `HubConfig::default()` is the design card: batches of 50
/// messages or 10 ms, gzip over 1024 bytes, pooled buffers, an elastic worker pool, no
/// metrics server.
///
/// Loads from TOML; unknown keys are an error, absent keys keep their default, durations
/// are strings such as `"10ms"`, `"250us"`, `"1s"`.
///
/// ```
/// use std::time::Duration;
/// use swarmbus::{HubConfig, OverflowPolicy};
///
/// let config = HubConfig::from_toml_str(r#"
///     max_messages = 100
///     linger = "5ms"
///     overflow = { policy = "reject" }
/// "#).unwrap();
/// assert_eq!(config.max_messages, 100);
/// assert_eq!(config.linger, Duration::from_millis(5));
/// assert_eq!(config.overflow, OverflowPolicy::Reject);
/// assert_eq!(config.compress_over, 1024); // untouched default
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HubConfig {
    /// A batch flushes when it holds this many messages. Default 50; 1 to 1,000,000.
    pub max_messages: usize,
    /// A batch flushes when its oldest message has waited this long. Default 10 ms; at
    /// most 1 minute.
    #[serde(with = "crate::duration")]
    pub linger: Duration,
    /// A message at or above this priority flushes its batch at once. Default `Critical`.
    pub flush_priority: Priority,
    /// Payloads larger than this many bytes are gzip-compressed (kept raw if gzip does not
    /// shrink them) where compression pays: on their way to another hub over NATS, and when
    /// they join a backlog (see `compress_backlog`). A local send to a recipient that keeps
    /// up shares the payload's bytes and never compresses. Default 1024. `usize::MAX`
    /// disables compression.
    pub compress_over: usize,
    /// A payload over `compress_over` sent to a local mailbox that already holds at least
    /// this many messages is compressed: it will wait, and compression saves backlog
    /// memory. Default 256; 0 compresses every local payload over `compress_over`.
    pub compress_backlog: usize,
    /// gzip level, 0-9. Default 1 (fast).
    pub compression_level: u32,
    /// Largest payload accepted, before compression, and the bound on decompression; a
    /// compressed payload's stored size must fit it too. Default 16 MiB; at most 1 GiB.
    pub max_payload: usize,
    /// Messages a mailbox holds before the overflow policy applies (queued plus in-flight
    /// batches). Default 65,536; 1 to 2^24.
    pub mailbox_capacity: usize,
    /// What a send does when the recipient's mailbox is full. Default `Block` for 1 s; a
    /// `Block` timeout is at most 1 hour.
    pub overflow: OverflowPolicy,
    /// Bytes every queued message together may take: the open batches and queues of all
    /// mailboxes. A message costs its 128-byte envelope plus its share of the payload's
    /// stored bytes (all of them for a direct send; `wire_len / recipients` for a broadcast
    /// or topic message, whose recipients share one buffer), from the moment it is sent
    /// until its agent takes it out of the mailbox. Default 1 GiB; at least
    /// `max_payload + 128`, at most 1 TiB.
    pub max_queued_bytes: u64,
    /// What a local send does when `max_queued_bytes` is spent. Default `Block` for 1 s.
    /// Messages from remote hubs never wait: over the budget they are dropped and counted
    /// (`memory_budget`).
    pub budget_policy: BudgetPolicy,
    /// Dead letters kept, the newest (see [`Hub::dead_letters`](crate::Hub::dead_letters)).
    /// Default 1,000; 0 keeps none (they are still counted); at most 1,000,000.
    pub dead_letters: usize,
    /// Payload bytes (as stored) the dead letters keep in all; one beyond it keeps its
    /// metadata only ([`DeadLetter::payload_dropped`](crate::DeadLetter::payload_dropped)).
    /// Default 1 MiB; at most 1 GiB.
    pub dead_letter_payload_bytes: usize,
    /// Buffer pools (each at most 1,000,000 items and 1 GiB; see [`limits`]).
    pub pools: PoolConfig,
    /// The elastic worker pool behind `Hub::submit`.
    pub workers: WorkerConfig,
    /// How long `shutdown` waits for spawned agents (`Hub::spawn`) to handle what is
    /// queued for them; those still busy after it are aborted and reported
    /// (`ShutdownReport::unhandled`). Default 10 s; at most 1 h.
    #[serde(with = "crate::duration")]
    pub agent_shutdown_timeout: Duration,
    /// Serve `/metrics`, `/api/stats`, `/` and `/healthz` here. Default none.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub metrics_addr: Option<SocketAddr>,
    /// When set, every HTTP route but `/healthz` requires `Authorization: Bearer <token>`.
    /// `Debug` prints it as `<redacted>`.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub auth_token: Option<String>,
    /// The HTTP server's connection limits (TOML section `[http]`): header-read timeout
    /// 10 s, idle timeout 60 s, at most 512 connections (see [`crate::http::HttpLimits`]).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub http: crate::http::HttpLimits,
    /// Join a multi-host swarm through NATS. Default none (this hub alone).
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    pub nats: Option<crate::nats::NatsConfig>,
}

impl fmt::Debug for HubConfig {
    /// Secrets stay out of logs: the bearer token prints as `<redacted>`, and the NATS
    /// settings redact their own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HubConfig");
        d.field("max_messages", &self.max_messages)
            .field("linger", &self.linger)
            .field("flush_priority", &self.flush_priority)
            .field("compress_over", &self.compress_over)
            .field("compress_backlog", &self.compress_backlog)
            .field("compression_level", &self.compression_level)
            .field("max_payload", &self.max_payload)
            .field("mailbox_capacity", &self.mailbox_capacity)
            .field("overflow", &self.overflow)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("budget_policy", &self.budget_policy)
            .field("dead_letters", &self.dead_letters)
            .field("dead_letter_payload_bytes", &self.dead_letter_payload_bytes)
            .field("pools", &self.pools)
            .field("workers", &self.workers)
            .field("agent_shutdown_timeout", &self.agent_shutdown_timeout);
        #[cfg(feature = "http")]
        d.field("metrics_addr", &self.metrics_addr)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("http", &self.http);
        #[cfg(feature = "nats")]
        d.field("nats", &self.nats);
        d.finish()
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_messages: 50,
            linger: Duration::from_millis(10),
            flush_priority: Priority::Critical,
            compress_over: 1024,
            compress_backlog: 256,
            compression_level: 1,
            max_payload: 16 * 1024 * 1024,
            mailbox_capacity: 65_536,
            overflow: OverflowPolicy::Block {
                timeout: Duration::from_secs(1),
            },
            max_queued_bytes: 1 << 30,
            budget_policy: BudgetPolicy::Block {
                timeout: Duration::from_secs(1),
            },
            dead_letters: 1_000,
            dead_letter_payload_bytes: 1 << 20,
            pools: PoolConfig::default(),
            workers: WorkerConfig::default(),
            agent_shutdown_timeout: Duration::from_secs(10),
            #[cfg(feature = "http")]
            metrics_addr: None,
            #[cfg(feature = "http")]
            auth_token: None,
            #[cfg(feature = "http")]
            http: crate::http::HttpLimits::default(),
            #[cfg(feature = "nats")]
            nats: None,
        }
    }
}

impl HubConfig {
    /// Parses TOML; absent keys keep their defaults. The result is validated.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for TOML that does not parse, an unknown key (naming the cargo
    /// feature when the key belongs to one this build leaves out), or a value out of range.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let config: HubConfig =
            toml::from_str(text).map_err(|e| Error::Config(hint_feature(e.to_string())))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Config`] as for
    /// [`from_toml_str`](Self::from_toml_str) (bad TOML, an unknown key, a value out of
    /// range).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::from_toml_str(&text)
    }

    /// Checks that every value is in its documented range and that they make sense
    /// together. `Hub::start` calls it, so a hub never runs with a value that could
    /// overflow a deadline or allocate without bound.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field out of range, with its bound.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(1..=limits::MAX_MESSAGES).contains(&self.max_messages) {
            return bad(format!(
                "max_messages must be 1-{} (got {})",
                limits::MAX_MESSAGES,
                self.max_messages
            ));
        }
        if self.linger > limits::MAX_LINGER {
            return bad(format!(
                "linger must be at most {} (got {:?})",
                crate::duration::format_duration(limits::MAX_LINGER),
                self.linger
            ));
        }
        if !(1..=limits::MAX_MAILBOX_CAPACITY).contains(&self.mailbox_capacity) {
            return bad(format!(
                "mailbox_capacity must be 1-{} (got {})",
                limits::MAX_MAILBOX_CAPACITY,
                self.mailbox_capacity
            ));
        }
        if self.agent_shutdown_timeout > Duration::from_secs(3600) {
            return bad(format!(
                "agent_shutdown_timeout must be at most 1h (got {:?})",
                self.agent_shutdown_timeout
            ));
        }
        if self.dead_letters > limits::MAX_DEAD_LETTERS {
            return bad(format!(
                "dead_letters must be at most {} (got {})",
                limits::MAX_DEAD_LETTERS,
                self.dead_letters
            ));
        }
        if self.dead_letter_payload_bytes > limits::MAX_PAYLOAD {
            return bad(format!(
                "dead_letter_payload_bytes must be at most {} (got {})",
                limits::MAX_PAYLOAD,
                self.dead_letter_payload_bytes
            ));
        }
        if self.compression_level > 9 {
            return bad(format!(
                "compression_level must be 0-9 (got {})",
                self.compression_level
            ));
        }
        if !(1..=limits::MAX_PAYLOAD).contains(&self.max_payload) {
            return bad(format!(
                "max_payload must be 1-{} bytes (got {})",
                limits::MAX_PAYLOAD,
                self.max_payload
            ));
        }
        #[cfg(feature = "http")]
        if self.auth_token.as_deref() == Some("") {
            return bad("auth_token must not be empty (leave it out for no token)".to_string());
        }
        if let OverflowPolicy::Block { timeout } = self.overflow {
            if timeout > limits::MAX_BLOCK_TIMEOUT {
                return bad(format!(
                    "overflow.timeout must be at most {} (got {timeout:?})",
                    crate::duration::format_duration(limits::MAX_BLOCK_TIMEOUT)
                ));
            }
        }
        let smallest =
            (self.max_payload as u64).saturating_add(std::mem::size_of::<crate::Envelope>() as u64);
        if !(smallest..=limits::MAX_QUEUED_BYTES).contains(&self.max_queued_bytes) {
            return bad(format!(
                "max_queued_bytes must be {smallest} (max_payload + 128, one message of the largest size) to {} (got {})",
                limits::MAX_QUEUED_BYTES,
                self.max_queued_bytes
            ));
        }
        if let BudgetPolicy::Block { timeout } = self.budget_policy {
            if timeout > limits::MAX_BLOCK_TIMEOUT {
                return bad(format!(
                    "budget_policy.timeout must be at most {} (got {timeout:?})",
                    crate::duration::format_duration(limits::MAX_BLOCK_TIMEOUT)
                ));
            }
        }
        self.pools.validate()?;
        #[cfg(feature = "http")]
        self.http.validate()?;
        #[cfg(feature = "nats")]
        if let Some(nats) = &self.nats {
            nats.validate()?;
        }
        self.workers.validate()
    }

    /// Batching off: every message is its own batch (used by `--mode baseline`).
    pub fn without_batching(mut self) -> Self {
        self.max_messages = 1;
        self.linger = Duration::ZERO;
        self
    }

    /// Compression off.
    pub fn without_compression(mut self) -> Self {
        self.compress_over = usize::MAX;
        self
    }

    /// Pools off: every buffer is a fresh allocation.
    pub fn without_pools(mut self) -> Self {
        self.pools.enabled = false;
        self
    }
}

/// What a send does when the recipient's mailbox is full (`HubConfig::mailbox_capacity`
/// messages, its open batch and queue together).
///
/// It applies to sends to local agents. [`try_send`](crate::AgentSender::try_send) never
/// waits, so under `Block` it fails at once like `Reject`. A broadcast or topic message
/// counts a recipient whose mailbox stays full as dropped (`mailbox_full`; under `Block`,
/// after one timeout shared by all its recipients) instead of failing. A
/// send to an agent on another hub meets its link's outage buffer instead, which always
/// rejects.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use std::time::Duration;
/// use swarmbus::{Error, Hub, HubConfig, OverflowPolicy};
///
/// let config = |overflow| {
///     let mut config = HubConfig::default();
///     config.mailbox_capacity = 2;
///     config.overflow = overflow;
///     config
/// };
///
/// // Reject: a full mailbox refuses at once, from `try_send` and `send` alike.
/// let hub = Hub::start(config(OverflowPolicy::Reject))?;
/// let alice = hub.register("alice")?;
/// let mut bob = hub.register("bob")?;
/// alice.try_send(bob.id(), "1")?;
/// alice.send(bob.id(), "2").await?;
/// let full = alice.try_send(bob.id(), "3").unwrap_err();
/// assert!(matches!(full, Error::MailboxFull(id) if id == bob.id()));
/// assert!(matches!(alice.send(bob.id(), "3").await, Err(Error::MailboxFull(_))));
/// bob.recv().await.unwrap(); // bob takes the batch out of his mailbox: room again
/// alice.try_send(bob.id(), "3")?;
/// hub.shutdown().await?;
///
/// // DropOldest: a full mailbox accepts, evicting its oldest message of the lowest priority.
/// let hub = Hub::start(config(OverflowPolicy::DropOldest))?;
/// let alice = hub.register("alice")?;
/// let mut bob = hub.register("bob")?;
/// for text in ["1", "2", "3"] {
///     alice.try_send(bob.id(), text)?; // never `MailboxFull`
/// }
/// assert_eq!(&*bob.recv().await.unwrap().payload().bytes()?, b"2");
/// assert_eq!(&*bob.recv().await.unwrap().payload().bytes()?, b"3");
/// assert_eq!(hub.metrics().messages_dropped["drop_oldest"], 1);
/// hub.shutdown().await?;
///
/// // Block (the default, for 1 s): `send` waits for room, then gives up.
/// let timeout = Duration::from_millis(1);
/// let hub = Hub::start(config(OverflowPolicy::Block { timeout }))?;
/// let alice = hub.register("alice")?;
/// let bob = hub.register("bob")?;
/// alice.send(bob.id(), "1").await?;
/// alice.send(bob.id(), "2").await?;
/// assert!(matches!(alice.send(bob.id(), "3").await, Err(Error::MailboxFull(_)))); // after 1 ms
/// hub.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum OverflowPolicy {
    /// Wait for room up to `timeout`, then `Error::MailboxFull`.
    Block {
        /// How long a sender may wait.
        #[serde(with = "crate::duration")]
        timeout: Duration,
    },
    /// `Error::MailboxFull` at once.
    Reject,
    /// Accept, and evict the oldest queued message of the lowest priority (counted as
    /// dropped with reason `drop_oldest`).
    DropOldest,
}

/// What a local send does when the hub's queued messages reach `max_queued_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetPolicy {
    /// Wait for queued messages to be received, up to `timeout`, then
    /// `Error::Overloaded`. A fan-out waits at most one `timeout` in all; recipients still
    /// over budget then are dropped (`memory_budget`).
    Block {
        /// How long a sender may wait.
        #[serde(with = "crate::duration")]
        timeout: Duration,
    },
    /// `Error::Overloaded` at once (a fan-out drops the recipients over budget).
    Reject,
}

pub use crate::pool::{PoolConfig, PoolSizing};

/// A TOML error about a key that belongs to a cargo feature this build leaves out, with a
/// hint naming the feature (the key is refused either way: a setting must never be ignored).
fn hint_feature(message: String) -> String {
    let feature = [
        ("metrics_addr", "http", cfg!(feature = "http")),
        ("auth_token", "http", cfg!(feature = "http")),
        ("http", "http", cfg!(feature = "http")),
        ("nats", "nats", cfg!(feature = "nats")),
    ]
    .into_iter()
    .find(|(key, _, on)| !on && message.contains(&format!("unknown field `{key}`")));
    match feature {
        Some((key, feature, _)) => {
            format!("{message}\n(`{key}` needs swarmbus built with the `{feature}` cargo feature)")
        }
        None => message,
    }
}

/// The ranges [`HubConfig::validate`] enforces. Each bound is far above any value a
/// working hub needs and below what would overflow a deadline or exhaust memory up front.
pub mod limits {
    use std::time::Duration;

    /// Largest `max_messages` (messages per batch).
    pub const MAX_MESSAGES: usize = 1_000_000;
    /// Longest `linger`.
    pub const MAX_LINGER: Duration = Duration::from_secs(60);
    /// Largest `mailbox_capacity` (messages; 2^24, 2 GiB of envelopes).
    pub const MAX_MAILBOX_CAPACITY: usize = 1 << 24;
    /// Largest `dead_letters` (dead letters kept).
    pub const MAX_DEAD_LETTERS: usize = 1_000_000;
    /// Largest `max_payload` (1 GiB), and of `dead_letter_payload_bytes`.
    pub const MAX_PAYLOAD: usize = 1 << 30;
    /// Largest `max_queued_bytes` (1 TiB).
    pub const MAX_QUEUED_BYTES: u64 = 1 << 40;
    /// Longest `OverflowPolicy::Block` (and `BudgetPolicy::Block`) timeout.
    pub const MAX_BLOCK_TIMEOUT: Duration = Duration::from_secs(3600);
    pub use crate::pool::limits::{
        MAX_IDLE_SHRINK_AFTER, MAX_POOL_BYTES, MAX_POOL_ITEMS, MAX_POOL_ITEM_CAPACITY,
    };
}

pub use crate::duration::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_design_card() {
        let c = HubConfig::default();
        assert_eq!(c.max_messages, 50);
        assert_eq!(c.linger, Duration::from_millis(10));
        assert_eq!(c.compress_over, 1024);
        assert_eq!(c.flush_priority, Priority::Critical);
        assert_eq!(c.pools.strings.initial, 500);
        assert_eq!(c.pools.bytes.initial, 200);
        assert_eq!(c.pools.bytes.item_capacity, 4096);
        assert_eq!(c.pools.uuids.initial, 100);
        #[cfg(feature = "http")]
        assert!(c.metrics_addr.is_none());
        assert_eq!(c.max_queued_bytes, 1 << 30);
        assert_eq!(
            c.budget_policy,
            BudgetPolicy::Block {
                timeout: Duration::from_secs(1)
            }
        );
        c.validate().unwrap();
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = HubConfig::default();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(HubConfig::from_toml_str(&text).unwrap(), c);
        assert!(matches!(
            HubConfig::from_toml_str("max_mesages = 3"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            HubConfig::from_toml_str("max_messages = 0"),
            Err(Error::Config(_))
        ));
        let c = HubConfig::from_toml_str("overflow = { policy = \"block\", timeout = \"250ms\" }")
            .unwrap();
        assert_eq!(
            c.overflow,
            OverflowPolicy::Block {
                timeout: Duration::from_millis(250)
            }
        );
    }

    #[cfg(feature = "http")]
    #[test]
    fn the_http_keys_parse_and_the_token_stays_out_of_debug() {
        let c = HubConfig::from_toml_str(
            "metrics_addr = \"127.0.0.1:9464\"\nauth_token = \"s3cr3t-t0ken\"",
        )
        .unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cr3t-t0ken"), "{shown}");
        assert!(
            shown.contains("auth_token: Some(\"<redacted>\")"),
            "{shown}"
        );
    }

    /// A key of a feature this build leaves out is refused (never ignored), and the error
    /// names the feature.
    #[cfg(not(all(feature = "http", feature = "nats")))]
    #[test]
    fn keys_of_a_missing_feature_are_refused_with_its_name() {
        let cases = [
            (
                "metrics_addr = \"127.0.0.1:9464\"",
                "http",
                cfg!(feature = "http"),
            ),
            ("[nats]\nnode = \"a\"", "nats", cfg!(feature = "nats")),
        ];
        for (text, feature, built_in) in cases {
            if built_in {
                continue;
            }
            match HubConfig::from_toml_str(text) {
                Err(Error::Config(m)) => {
                    assert!(m.contains(&format!("`{feature}` cargo feature")), "{m}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[cfg(all(feature = "http", feature = "nats"))]
    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/operations.md");
        let start = doc
            .find("```toml")
            .expect("a toml block in docs/operations.md")
            + 7;
        let end = start + doc[start..].find("```").expect("the block ends");
        // The example names a key file; validation reads it, so give it a real one.
        let dir = std::env::temp_dir().join(format!("swarmbus-doc-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("swarm.key");
        std::fs::write(&key, "ab".repeat(32)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let example = &doc[start..end];
        assert!(example.contains("\"/etc/swarmbus/swarm.key\""));
        let text = example.replace("/etc/swarmbus/swarm.key", &key.display().to_string());
        let parsed = HubConfig::from_toml_str(&text);
        let _ = std::fs::remove_dir_all(&dir);
        let c = parsed.unwrap();
        assert_eq!(c.workers.max_workers, 8);
        assert_eq!(c.workers.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.http, crate::http::HttpLimits::default());
        assert_eq!(c.max_queued_bytes, 1 << 30);
        let nats = c.nats.as_ref().expect("[nats]");
        assert_eq!(nats.node, "hub-a");
        assert_eq!(nats.departed_retention, Duration::from_secs(30));
        assert_eq!(nats.shutdown_drain, Duration::from_secs(5));
        assert!(nats.swarm_key.is_none() && nats.swarm_key_file.is_some());
    }

    /// Values that used to pass `validate` and then panicked (an `Instant` overflow on the
    /// first send) or aborted (a pool allocating 10^11 items) are refused, by name.
    #[test]
    fn out_of_range_values_are_refused_by_name() {
        let huge = Duration::from_secs(10_000_000_000_000_000_000);
        type Change = Box<dyn Fn(&mut HubConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("linger", Box::new(move |c| c.linger = huge)),
            ("linger", Box::new(|c| c.linger = Duration::from_secs(61))),
            (
                "overflow.timeout",
                Box::new(move |c| c.overflow = OverflowPolicy::Block { timeout: huge }),
            ),
            ("max_messages", Box::new(|c| c.max_messages = 1_000_001)),
            ("max_messages", Box::new(|c| c.max_messages = usize::MAX)),
            (
                "mailbox_capacity",
                Box::new(|c| c.mailbox_capacity = usize::MAX),
            ),
            ("max_payload", Box::new(|c| c.max_payload = (1 << 30) + 1)),
            ("dead_letters", Box::new(|c| c.dead_letters = 1_000_001)),
            (
                "dead_letter_payload_bytes",
                Box::new(|c| c.dead_letter_payload_bytes = usize::MAX),
            ),
            (
                "pools.strings.initial",
                Box::new(|c| c.pools.strings.initial = 100_000_000_000),
            ),
            (
                "pools.bytes.max",
                Box::new(|c| {
                    c.pools.bytes.initial = 0;
                    c.pools.bytes.max = 100_000_000_000;
                }),
            ),
            (
                "pools.uuids.item_capacity",
                Box::new(|c| c.pools.uuids.item_capacity = 100_000_000_000),
            ),
            (
                "pools.batches",
                Box::new(|c| {
                    c.pools.batches.max = 100_000;
                    c.pools.batches.item_capacity = 100_000;
                }),
            ),
            (
                "budget_policy.timeout",
                Box::new(move |c| c.budget_policy = BudgetPolicy::Block { timeout: huge }),
            ),
            (
                "max_queued_bytes",
                Box::new(|c| c.max_queued_bytes = 1 << 41),
            ),
            (
                "max_queued_bytes",
                Box::new(|c| c.max_queued_bytes = c.max_payload as u64),
            ),
            (
                "pools.idle_shrink_after",
                Box::new(move |c| c.pools.idle_shrink_after = huge),
            ),
        ];
        for (field, change) in cases {
            let mut c = HubConfig::default();
            change(&mut c);
            match c.validate() {
                Err(Error::Config(message)) => {
                    assert!(message.contains(field), "{field}: {message}")
                }
                other => panic!("{field}: accepted ({other:?})"),
            }
        }
        // The maxima themselves are accepted.
        let longest = Duration::from_secs(3600);
        let c = HubConfig {
            linger: Duration::from_secs(60),
            overflow: OverflowPolicy::Block { timeout: longest },
            max_messages: 1_000_000,
            max_payload: 1 << 30,
            max_queued_bytes: limits::MAX_QUEUED_BYTES,
            budget_policy: BudgetPolicy::Block { timeout: longest },
            ..HubConfig::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn an_absurd_linger_in_toml_is_refused() {
        let err = HubConfig::from_toml_str("linger = \"10000000000000000000s\"").unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("linger")),
            "{err:?}"
        );
        let err = HubConfig::from_toml_str(
            "[pools.bytes]\ninitial = 100000000000\nmax = 100000000000\nitem_capacity = 4096",
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("pools.bytes")),
            "{err:?}"
        );
    }

    #[test]
    fn durations_parse() {
        use crate::duration::parse_text as p;
        assert_eq!(p("10ms"), Some(Duration::from_millis(10)));
        assert_eq!(p("250us"), Some(Duration::from_micros(250)));
        assert_eq!(p("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(p("2m"), Some(Duration::from_secs(120)));
        assert_eq!(p("fast"), None);
        assert_eq!(p("10"), None, "a unit is required");
        assert_eq!(p("-1s"), None);
    }
}
