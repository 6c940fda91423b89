//! What the bus needs from a transport to other hubs (NATS today), as a trait of the bus:
//! the transport depends on the bus, never the reverse.
//!
//! Outbound, the transport hands the bus its links, mailboxes the bus fills like any
//! agent's; the transport drains them. Inbound, it delivers through [`super::Inbound`].

use super::mailbox::Mailbox;
use crate::metrics::FlushReason;
use crate::{AgentId, Result};
use std::sync::Arc;

/// Routing to agents on other hubs, fan-out to every other hub, and this hub's agents
/// coming and going.
pub(crate) trait Transport: Send + Sync + std::fmt::Debug {
    /// The link to the hub that hosts `to`, when another hub does.
    fn route(&self, to: AgentId) -> Option<Arc<Mailbox>>;

    /// The link that carries broadcasts (`topic: None`) or messages on `topic` to every
    /// other hub, after checking they can travel (a topic that maps to no subject, a
    /// payload of `wire_len` stored bytes over one frame): refused before any delivery.
    ///
    /// # Errors
    /// `InvalidTopic`, `PayloadTooLarge`.
    fn fan_out_link(&self, topic: Option<&str>, wire_len: usize) -> Result<Arc<Mailbox>>;

    /// The recipient that fan-out envelopes on the wire carry.
    fn fan_out_recipient(&self) -> AgentId;

    /// A local agent registered.
    fn joined(&self, id: AgentId);

    /// A local agent left.
    fn left(&self, id: AgentId);

    /// Flushes every link's open batch.
    fn flush(&self, reason: FlushReason);
}
