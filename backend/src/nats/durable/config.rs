//! Settings of durable delivery (`NatsConfig::durable`).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Durable delivery between hubs through NATS JetStream: messages from one hub to agents
/// of another go into a JetStream stream of the swarm, and each hub reads what is
/// addressed to it through a durable consumer named after it, so nothing accepted is lost
/// when a hub or the server restarts. See `docs/scale-out.md` for the guarantees.
///
/// ```
/// use swarmbus::nats::{DurableConfig, NatsConfig};
/// let mut nats = NatsConfig::new("nats://127.0.0.1:4222", "hub-a");
/// nats.durable = Some(DurableConfig::default());
/// nats.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DurableConfig {
    /// The stream's name. Default `SWARMBUS_<swarm>`.
    pub stream: Option<String>,
    /// Create the stream (and the dead-letter stream) when missing. With `false`, a
    /// missing stream is an error at start. Default true.
    pub create: bool,
    /// Largest size of the stream in bytes; when full, publishes are refused (counted,
    /// retried), never old messages discarded. Default 1 GiB.
    pub max_bytes: i64,
    /// How long an unread message stays in the stream. Default 24 h.
    #[serde(with = "crate::duration")]
    pub max_age: Duration,
    /// The window in which JetStream drops a frame published twice (a retried publish).
    /// Default 2 min.
    #[serde(with = "crate::duration")]
    pub duplicate_window: Duration,
    /// A frame not acknowledged for this long is delivered again. Default 5 s.
    #[serde(with = "crate::duration")]
    pub ack_wait: Duration,
    /// Deliveries of a frame before what is still undeliverable in it becomes a dead
    /// letter (kept by the hub and published to the dead-letter stream). Default 10.
    pub max_deliver: u32,
    /// How long a frame with a message its recipient cannot take yet (not registered, a
    /// full mailbox) waits before it is delivered again. Default 250 ms.
    #[serde(with = "crate::duration")]
    pub retry_delay: Duration,
    /// Frames delivered to this hub and not yet acknowledged, at most. Default 256.
    pub max_ack_pending: u32,
    /// Frames published and not yet confirmed by the server, at most, per link. Default 64.
    pub publish_window: u32,
    /// Messages remembered (in the frames that carried them) to drop what is delivered
    /// twice; settled frames beyond it are forgotten oldest first. Size it to at least the
    /// peak rate into the hub times `ack_wait`. Default 1,000,000.
    pub dedup_window: usize,
    /// How long the swarm's directory in JetStream key-value (`SWARMBUS_<swarm>_DIR`)
    /// remembers a hub after its last heartbeat: a hub rewrites its entries within half
    /// of it, so a hub that stopped without saying goodbye drops out of what newly
    /// started hubs read. Applies when this hub creates the bucket. Default 30 s.
    #[serde(with = "crate::duration")]
    pub directory_ttl: Duration,
}

impl Default for DurableConfig {
    fn default() -> Self {
        Self {
            stream: None,
            create: true,
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(5),
            max_deliver: 10,
            retry_delay: Duration::from_millis(250),
            max_ack_pending: 256,
            publish_window: 64,
            dedup_window: 1_000_000,
            directory_ttl: Duration::from_secs(30),
        }
    }
}

/// Longest `duplicate_window`, `ack_wait` and `retry_delay` (the bound of every NATS
/// duration setting).
const HOUR: Duration = Duration::from_secs(3600);

/// Longest `directory_ttl`.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Largest `dedup_window`.
pub const MAX_DEDUP_WINDOW: usize = 100_000_000;

impl DurableConfig {
    /// The stream's name for `swarm`.
    pub(crate) fn stream_name(&self, swarm: &str) -> String {
        self.stream
            .clone()
            .unwrap_or_else(|| format!("SWARMBUS_{swarm}"))
    }

    /// Checks names and bounds (`NatsConfig::validate` calls it).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the setting: a stream name that is not letters, digits,
    /// `-` and `_`, a size, count or duration of zero or out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if let Some(name) = &self.stream {
            let token = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if name.is_empty() || !name.chars().all(token) || name.len() > 200 {
                return bad(format!(
                    "nats.durable.stream `{name}` must be 1-200 letters, digits, `-` or `_`"
                ));
            }
        }
        if self.max_bytes <= 0 {
            return bad("nats.durable.max_bytes must be positive".into());
        }
        let durations = [
            (
                "max_age",
                self.max_age,
                Duration::from_secs(365 * 24 * 3600),
            ),
            ("duplicate_window", self.duplicate_window, HOUR),
            ("ack_wait", self.ack_wait, HOUR),
            ("retry_delay", self.retry_delay, HOUR),
            ("directory_ttl", self.directory_ttl, DAY),
        ];
        for (name, value, max) in durations {
            if value < Duration::from_millis(10) || value > max {
                return bad(format!(
                    "nats.durable.{name} must be between 10ms and {max:?} (got {value:?})"
                ));
            }
        }
        if self.duplicate_window > self.max_age {
            return bad("nats.durable.duplicate_window must not exceed max_age".into());
        }
        let counts = [
            ("max_deliver", self.max_deliver as usize, 1_000),
            ("max_ack_pending", self.max_ack_pending as usize, 1_000_000),
            ("publish_window", self.publish_window as usize, 100_000),
            ("dedup_window", self.dedup_window, MAX_DEDUP_WINDOW),
        ];
        for (name, value, max) in counts {
            if value == 0 || value > max {
                return bad(format!(
                    "nats.durable.{name} must be between 1 and {max} (got {value})"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked_and_named() {
        DurableConfig::default().validate().unwrap();
        let check = |f: fn(&mut DurableConfig), field: &str| {
            let mut c = DurableConfig::default();
            f(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        };
        check(|c| c.stream = Some("a.b".into()), "stream");
        check(|c| c.stream = Some(String::new()), "stream");
        check(|c| c.max_bytes = 0, "max_bytes");
        check(|c| c.ack_wait = Duration::ZERO, "ack_wait");
        check(|c| c.ack_wait = Duration::MAX, "ack_wait");
        check(|c| c.max_deliver = 0, "max_deliver");
        check(|c| c.max_ack_pending = 0, "max_ack_pending");
        check(|c| c.publish_window = u32::MAX, "publish_window");
        check(|c| c.dedup_window = 0, "dedup_window");
        check(|c| c.directory_ttl = Duration::ZERO, "directory_ttl");
        check(
            |c| c.duplicate_window = Duration::from_secs(7200),
            "duplicate_window",
        );
        assert_eq!(
            DurableConfig::default().stream_name("prod"),
            "SWARMBUS_prod"
        );
    }
}
