//! What the bus needs from a transport to other hubs (NATS today), as a trait of the bus:
//! the transport depends on the bus, never the reverse.
//!
//! Outbound, the transport hands the bus its links, mailboxes the bus fills like any
//! agent's; the transport drains them. Inbound, it delivers through [`super::Inbound`].

use super::groups::GroupKind;
use super::mailbox::Mailbox;
use crate::metrics::FlushReason;
use crate::{AgentId, Result};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What this hub knows of a remote group member's load: its mailbox depth as its hub last
/// announced it, and what this hub sent it since (requests still open, and messages sent
/// after that announcement).
#[derive(Debug, Default)]
pub(crate) struct RemoteLoad {
    /// Requests from this hub it has not answered yet.
    pub(crate) in_flight: AtomicU64,
    /// Messages (not requests) this hub sent it since its hub's last announcement.
    pub(crate) sent: AtomicU64,
}

/// A remote member chosen by load, with its load's estimate.
#[derive(Debug)]
pub(crate) struct RemotePick {
    pub(crate) id: AgentId,
    pub(crate) load: u64,
    pub(crate) counters: Arc<RemoteLoad>,
}

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

    /// This hub's members of group or capability `name` changed.
    fn roles_changed(&self, kind: GroupKind, name: &Arc<str>);

    /// The members of `name` that other hubs announced.
    fn remote_members(&self, kind: GroupKind, name: &str) -> Vec<AgentId>;

    /// The least loaded member of `name` on another hub, ties broken round-robin.
    fn remote_pick(&self, kind: GroupKind, name: &str) -> Option<RemotePick>;
}
