//! `MetricsSnapshot`: every figure of a hub at one instant, as `/api/stats` serves it.

use super::HistogramSnapshot;
use crate::pool::PoolStats;
use crate::AgentId;
use serde::Serialize;
use std::collections::BTreeMap;

/// A point-in-time copy of a hub's metrics; the same numbers `/metrics` exposes.
///
/// Counters are cumulative since the hub started. Send-side counters are added when a batch
/// leaves its sender, so they trail by at most one linger. Its fields are public; with the
/// `http` feature `/api/stats` serves it as JSON (it implements `Serialize`).
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use swarmbus::{Error, Hub, HubConfig};
///
/// let hub = Hub::start(HubConfig::default())?;
/// let alice = hub.register("alice")?;
/// let mut bob = hub.register("bob")?;
/// alice.send(bob.id(), "one").await?;
/// alice.send(bob.id(), "two").await?;
/// bob.recv().await.unwrap();
/// bob.recv().await.unwrap();
/// let carol = hub.register("carol")?;
/// let gone = carol.id();
/// drop(carol);
/// assert!(matches!(alice.send(gone, "hi?").await, Err(Error::UnknownAgent(_))));
///
/// let m = hub.metrics();
/// assert_eq!(m.agents, 2);
/// assert_eq!((m.messages_sent, m.messages_delivered), (2, 2));
/// assert!(m.batches_total() >= 1); // one batch, or two if the linger ran out between sends
/// assert_eq!(m.send_errors["unknown_agent"], 1);
/// assert_eq!(m.messages_dropped_total(), 0);
/// assert_eq!(m.queued_bytes, 0); // bob took both out of his mailbox
/// assert!(m.latency_p99_seconds >= 0.0);
/// hub.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Seconds since `Hub::start`.
    pub uptime_seconds: f64,
    /// Registered agents.
    pub agents: u64,
    /// Topics with at least one subscriber.
    pub topics: u64,
    /// Messages accepted by a send (one per recipient for fan-out).
    pub messages_sent: u64,
    /// Messages placed in a recipient's mailbox.
    pub messages_delivered: u64,
    /// Messages handed out by `recv` and `try_recv`. Counted per batch: those of the batch
    /// an agent is working through are added when it takes its next batch or leaves.
    pub messages_received: u64,
    /// Accepted messages dropped, by reason (`DropReason::as_str`: `drop_oldest`,
    /// `mailbox_full`, `recipient_gone`, `reply_orphaned`, `hub_closed`, `frame_too_large`,
    /// `publish_failed`, `lost_in_transit`, `hub_gone`, `unsent`, `memory_budget`,
    /// `payload_too_large`); every reason is present, zero or not.
    pub messages_dropped: BTreeMap<&'static str, u64>,
    /// Calls that returned an error, by kind.
    pub send_errors: BTreeMap<&'static str, u64>,
    /// Batches flushed, by reason (`size`, `linger`, `priority`, `explicit`, `shutdown`,
    /// `waiting`: taken by a recipient that was waiting for messages).
    pub batches_flushed: BTreeMap<&'static str, u64>,
    /// Messages per flushed batch.
    pub batch_size: HistogramSnapshot,
    /// Time from send to the recipient taking the message out of its mailbox.
    pub delivery_latency_seconds: HistogramSnapshot,
    /// Estimated median delivery latency.
    pub latency_p50_seconds: f64,
    /// Estimated 99th percentile delivery latency.
    pub latency_p99_seconds: f64,
    /// Payload bytes before compression.
    pub payload_bytes_raw: u64,
    /// Payload bytes as stored and moved (after compression).
    pub payload_bytes_wire: u64,
    /// Payloads stored gzip-compressed.
    pub compressed_messages: u64,
    /// Payloads over the threshold that gzip could not shrink (kept raw).
    pub incompressible_messages: u64,
    /// `payload_bytes_raw / payload_bytes_wire` (1 when nothing moved).
    pub compression_ratio: f64,
    /// Buffer pool counters.
    pub pools: Vec<PoolStats>,
    /// Bytes the queued messages of every mailbox are charged against
    /// `HubConfig::max_queued_bytes` (envelopes plus payload shares; see `max_queued_bytes`).
    pub queued_bytes: u64,
    /// `HubConfig::max_queued_bytes`.
    pub queued_bytes_budget: u64,
    /// Messages waiting in all mailboxes. Computed from the counters, so, like
    /// `messages_received`, it still counts the batch each agent is working through until
    /// that agent takes its next batch or leaves.
    pub mailbox_depth_total: u64,
    /// The deepest mailbox's depth.
    pub mailbox_depth_max: u64,
    /// Up to 10 deepest mailboxes, deepest first.
    pub deepest_mailboxes: Vec<MailboxDepth>,
    /// Requests sent.
    pub requests: u64,
    /// Replies sent.
    pub replies: u64,
    /// Requests waiting for their reply now (each holds an entry until it is answered,
    /// times out, or its future is dropped).
    pub pending_requests: u64,
    /// Streamed requests waiting for their chunks now (`request_stream`).
    pub open_streams: u64,
    /// Chunks of streamed replies handed to their streams (final chunks count as replies).
    pub chunks: u64,
    /// Requests cancelled, by who: `caller` (cancelled, or dropped its stream or request),
    /// `deadline`, `shutdown`.
    pub cancellations: BTreeMap<&'static str, u64>,
    /// Dead letters held now ([`Hub::dead_letters`](crate::Hub::dead_letters)).
    pub dead_letters: u64,
    /// Dead letters recorded since start, by reason (the reasons of `messages_dropped`;
    /// `lost_in_transit` never has one: the hub never held those messages).
    pub dead_letters_recorded: BTreeMap<&'static str, u64>,
    /// Dead letters pushed out of the store by newer ones (or not kept: `dead_letters` 0).
    pub dead_letters_evicted: u64,
    /// Dead letters kept without their payload (`dead_letter_payload_bytes` was spent, or a
    /// failed spawned handler had moved its message elsewhere).
    pub dead_letter_payloads_dropped: u64,
    /// Dead letters replayed, by result: `sent` (accepted again), `failed` (refused again;
    /// kept in the store).
    pub dead_letters_replayed: BTreeMap<&'static str, u64>,
    /// The worker pool.
    pub workers: crate::workers::WorkerStats,
    /// Spawned agents (`Hub::spawn`): handler failures, restarts, the recent ones.
    pub supervision: SupervisionStats,
    /// Groups with a member on this hub, largest first (at most 50), with each local
    /// member's mailbox depth.
    pub groups: Vec<GroupStats>,
    /// The NATS bridge, when the hub is part of a multi-host swarm.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    pub nats: Option<crate::nats::NatsStats>,
    /// The HTTP server's connection counters, when `metrics_addr` is set. They stay
    /// readable after `shutdown` stopped the server (with `connections_open` at 0).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub http: Option<crate::http::HttpStats>,
}

/// A group with members on this hub (`join_group`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Its members on this hub, in the order they joined, with their load.
    pub members: Vec<GroupMember>,
    /// Its members that other hubs announced.
    pub remote_members: u64,
}

/// A member of a group on this hub.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMember {
    /// The agent.
    pub id: AgentId,
    /// Messages waiting in its mailbox.
    pub queued: u64,
}

/// The figures of spawned agents (`Hub::spawn`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct SupervisionStats {
    /// Spawned agents running now.
    pub running: u64,
    /// Agents spawned since the hub started.
    pub spawned: u64,
    /// Handler calls that returned an error.
    pub handler_errors: u64,
    /// Handler calls that panicked.
    pub handler_panics: u64,
    /// Restarts after a failure.
    pub restarts: u64,
    /// Agents that reached their restart limit and stopped.
    pub gave_up: u64,
    /// The agents that failed most recently, newest first (at most 64): each agent once,
    /// with its restart count and its last failure.
    pub recent: Vec<RestartedAgent>,
}

/// A spawned agent whose handler failed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartedAgent {
    /// The agent.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// Its restarts so far.
    pub restarts: u32,
    /// What the last failure said (the handler's error, or the panic's message).
    pub last_failure: String,
    /// When it failed last.
    #[serde(serialize_with = "unix_millis")]
    pub at: std::time::SystemTime,
    /// Whether it reached its restart limit and stopped.
    pub gave_up: bool,
}

/// A time as milliseconds since 1970, for JSON.
fn unix_millis<S: serde::Serializer>(at: &std::time::SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    s.serialize_u64(ms)
}

/// One mailbox's backlog.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MailboxDepth {
    /// The agent.
    pub agent: AgentId,
    /// Its registered name.
    pub name: String,
    /// Messages waiting (queued, not yet received).
    pub depth: u64,
}

impl MetricsSnapshot {
    /// Total dropped messages, all reasons.
    pub fn messages_dropped_total(&self) -> u64 {
        self.messages_dropped.values().sum()
    }

    /// Total flushed batches, all reasons.
    pub fn batches_total(&self) -> u64 {
        self.batches_flushed.values().sum()
    }
}
