//! Hub configuration: one `Default` that lists every default.

use crate::workers::WorkerConfig;
use crate::{Error, Priority, Result};
use serde::{Deserialize, Serialize};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HubConfig {
    /// A batch flushes when it holds this many messages. Default 50.
    pub max_messages: usize,
    /// A batch flushes when its oldest message has waited this long. Default 10 ms.
    #[serde(with = "duration_serde")]
    pub linger: Duration,
    /// A message at or above this priority flushes its batch at once. Default `Critical`.
    pub flush_priority: Priority,
    /// Payloads larger than this many bytes are gzip-compressed (kept raw if gzip does not
    /// shrink them). Default 1024. `usize::MAX` disables compression.
    pub compress_over: usize,
    /// gzip level, 0-9. Default 1 (fast).
    pub compression_level: u32,
    /// Largest payload accepted, before compression, and the bound on decompression.
    /// Default 16 MiB.
    pub max_payload: usize,
    /// Messages a mailbox holds before the overflow policy applies (queued plus in-flight
    /// batches). Default 65,536.
    pub mailbox_capacity: usize,
    /// What a send does when the recipient's mailbox is full. Default `Block` for 1 s.
    pub overflow: OverflowPolicy,
    /// Buffer pools.
    pub pools: PoolConfig,
    /// The elastic worker pool behind `Hub::submit`.
    pub workers: WorkerConfig,
    /// Serve `/metrics`, `/api/stats`, `/` and `/healthz` here. Default none.
    pub metrics_addr: Option<SocketAddr>,
    /// When set, every HTTP route but `/healthz` requires `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Join a multi-host swarm through NATS. Default none (this hub alone).
    pub nats: Option<crate::nats::NatsConfig>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_messages: 50,
            linger: Duration::from_millis(10),
            flush_priority: Priority::Critical,
            compress_over: 1024,
            compression_level: 1,
            max_payload: 16 * 1024 * 1024,
            mailbox_capacity: 65_536,
            overflow: OverflowPolicy::Block {
                timeout: Duration::from_secs(1),
            },
            pools: PoolConfig::default(),
            workers: WorkerConfig::default(),
            metrics_addr: None,
            auth_token: None,
            nats: None,
        }
    }
}

impl HubConfig {
    /// Parses TOML; absent keys keep their defaults. The result is validated.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let config: HubConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::from_toml_str(&text)
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.max_messages == 0 {
            return bad("max_messages must be at least 1");
        }
        if self.mailbox_capacity == 0 {
            return bad("mailbox_capacity must be at least 1");
        }
        if self.compression_level > 9 {
            return bad("compression_level must be 0-9");
        }
        if self.max_payload == 0 {
            return bad("max_payload must be at least 1");
        }
        if self.auth_token.as_deref() == Some("") {
            return bad("auth_token must not be empty (leave it out for no token)");
        }
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

/// What a send does when the recipient's mailbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum OverflowPolicy {
    /// Wait for room up to `timeout`, then `Error::MailboxFull`.
    Block {
        /// How long a sender may wait.
        #[serde(with = "duration_serde")]
        timeout: Duration,
    },
    /// `Error::MailboxFull` at once.
    Reject,
    /// Accept, and evict the oldest queued message of the lowest priority (counted as
    /// dropped with reason `drop_oldest`).
    DropOldest,
}

/// Settings of the buffer pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolConfig {
    /// `false` allocates every buffer fresh (for baseline measurements).
    pub enabled: bool,
    /// String buffers: 500 of 1 KiB.
    pub strings: PoolSizing,
    /// Byte buffers (compression scratch): 200 of 4 KiB.
    pub bytes: PoolSizing,
    /// UUID vectors (fan-out recipient lists): 100 of 64 ids.
    pub uuids: PoolSizing,
    /// Batch buffers, recycled from receivers back to senders: 64 of 64 messages.
    pub batches: PoolSizing,
    /// A pool that has had no miss for this long shrinks back to its initial size.
    #[serde(with = "duration_serde")]
    pub idle_shrink_after: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            strings: PoolSizing {
                initial: 500,
                max: 2_000,
                item_capacity: 1024,
            },
            bytes: PoolSizing {
                initial: 200,
                max: 1_000,
                item_capacity: 4096,
            },
            uuids: PoolSizing {
                initial: 100,
                max: 400,
                item_capacity: 64,
            },
            batches: PoolSizing {
                initial: 64,
                max: 4_096,
                item_capacity: 64,
            },
            idle_shrink_after: Duration::from_secs(30),
        }
    }
}

/// How big one pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSizing {
    /// Items created up front, and the size an idle pool shrinks back to.
    pub initial: usize,
    /// Items kept at most; a returned item beyond this is freed.
    pub max: usize,
    /// Capacity of each new item (bytes, chars or ids). Items that grew past 4× this are
    /// freed on return rather than kept.
    pub item_capacity: usize,
}

/// Parses a duration such as `"500ms"`, `"250us"`, `"1.5s"`, `"2m"` or `"1h"` (the unit is
/// required), as the configuration file and the command lines take them.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(swarmbus::config::parse_duration("10ms").unwrap(), Duration::from_millis(10));
/// assert!(swarmbus::config::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration> {
    duration_serde::parse_duration(text).ok_or_else(|| {
        Error::Config(format!(
            "invalid duration `{text}`: expected e.g. 500ms, 10s, 2m"
        ))
    })
}

/// Serde for durations as human strings (`"10ms"`, `"250us"`, `"1.5s"`, `"2m"`) or integer
/// milliseconds.
pub(crate) mod duration_serde {
    use serde::{de, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"10ms\" or integer milliseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_millis(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_millis)
                    .map_err(|_| E::custom("negative duration"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).ok_or_else(|| E::custom(format!("invalid duration `{v}`")))
            }
        }
        d.deserialize_any(V)
    }

    /// Parses `"10ms"`, `"250us"`, `"1.5s"`, `"2m"`, `"100ns"`.
    pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (num, unit) = text.split_at(split);
        let value: f64 = num.parse().ok()?;
        let secs = match unit.trim() {
            "ns" => value / 1e9,
            "us" | "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            _ => return None,
        };
        Duration::try_from_secs_f64(secs).ok()
    }

    pub(crate) fn format_duration(d: Duration) -> String {
        let nanos = d.as_nanos();
        if nanos.is_multiple_of(1_000_000_000) {
            format!("{}s", d.as_secs())
        } else if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", d.as_millis())
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", d.as_micros())
        } else {
            format!("{nanos}ns")
        }
    }
}

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
        assert!(c.metrics_addr.is_none());
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
        let c = HubConfig::from_toml_str(
            "overflow = { policy = \"block\", timeout = \"250ms\" }\nmetrics_addr = \"127.0.0.1:9464\"",
        )
        .unwrap();
        assert_eq!(
            c.overflow,
            OverflowPolicy::Block {
                timeout: Duration::from_millis(250)
            }
        );
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/operations.md");
        let start = doc
            .find("```toml")
            .expect("a toml block in docs/operations.md")
            + 7;
        let end = start + doc[start..].find("```").expect("the block ends");
        let c = HubConfig::from_toml_str(&doc[start..end]).unwrap();
        assert_eq!(c.workers.max_workers, 8);
        assert_eq!(c.nats.as_ref().map(|n| n.node.as_str()), Some("hub-a"));
    }

    #[test]
    fn durations_parse() {
        use duration_serde::parse_duration as p;
        assert_eq!(p("10ms"), Some(Duration::from_millis(10)));
        assert_eq!(p("250us"), Some(Duration::from_micros(250)));
        assert_eq!(p("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(p("2m"), Some(Duration::from_secs(120)));
        assert_eq!(p("fast"), None);
        assert_eq!(p("10"), None, "a unit is required");
        assert_eq!(p("-1s"), None);
    }
}
