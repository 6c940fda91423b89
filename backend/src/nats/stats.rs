//! The bridge's counters, and the snapshot of them in `MetricsSnapshot::nats`.

use super::frame::FrameError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why an incoming frame or directory message was refused, beyond the decoder's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The decoder refused it.
    Frame(FrameError),
    /// No valid tag where the swarm key requires one.
    Unsigned,
    /// A tag that does not verify.
    BadTag,
    /// A tag made with a key this hub does not hold.
    UnknownKey,
    /// A sequence number already seen (a replay), or an old epoch or link instance.
    Replayed,
    /// A message claiming a sender that belongs to another hub, or a directory message
    /// that does not parse.
    BadSender,
}

impl Refusal {
    /// Every label, in index order.
    pub(crate) const LABELS: [&'static str; 11] = [
        "truncated",
        "bad_magic",
        "unknown_version",
        "too_large",
        "bad_field",
        "oversized_headers",
        "unsigned",
        "bad_tag",
        "unknown_key",
        "replayed",
        "bad_sender",
    ];

    fn index(self) -> usize {
        match self {
            // In the order of `FrameError`'s variants, which the labels follow.
            Refusal::Frame(e) => e as usize,
            Refusal::Unsigned => 6,
            Refusal::BadTag => 7,
            Refusal::UnknownKey => 8,
            Refusal::Replayed => 9,
            Refusal::BadSender => 10,
        }
    }
}

/// Counters of the bridge, shared by its tasks.
#[derive(Debug, Default)]
pub(crate) struct BridgeStats {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    rejected: [AtomicU64; Refusal::LABELS.len()],
    pub(crate) frames_lost: AtomicU64,
    pub(crate) messages_lost: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    /// Messages handed to the NATS client for remote hubs.
    pub(crate) messages_out: AtomicU64,
    /// `messages_out` as of the last flush the server confirmed.
    pub(crate) messages_confirmed: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) slow_consumer_events: AtomicU64,
    pub(crate) directory_publish_failures: AtomicU64,
    pub(crate) claim_conflicts: AtomicU64,
    pub(crate) node_clashes: AtomicU64,
    pub(crate) hellos_sent: AtomicU64,
    pub(crate) hellos_deferred: AtomicU64,
    pub(crate) nodes_expired: AtomicU64,
    pub(crate) nodes_revived: AtomicU64,
    pub(crate) replies_not_forwarded: AtomicU64,
    /// Local group or capability members left out of announcements (past one message).
    pub(crate) role_members_unannounced: AtomicU64,
    /// Remote groups or capabilities refused: past the bound of names per hub.
    pub(crate) roles_refused: AtomicU64,
    /// Durable: agents of a restarted hub's previous run that it did not register again
    /// within `directory_ttl`.
    pub(crate) agents_not_resumed: AtomicU64,
    pub(crate) connected: AtomicBool,
    /// Bumped on every lost connection.
    pub(crate) generation: AtomicU64,
}

impl BridgeStats {
    pub(crate) fn refuse(&self, why: Refusal) {
        self.refuse_n(why, 1);
    }

    pub(crate) fn refuse_n(&self, why: Refusal, n: u64) {
        self.rejected[why.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, node: String, buffered: u64, dir: (u64, u64)) -> NatsStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let out = get(&self.messages_out);
        NatsStats {
            node,
            connected: self.connected.load(Ordering::Relaxed),
            frames_sent: get(&self.frames_sent),
            frames_received: get(&self.frames_received),
            frames_rejected: Refusal::LABELS
                .iter()
                .zip(&self.rejected)
                .map(|(label, c)| (*label, get(c)))
                .collect(),
            frames_lost: get(&self.frames_lost),
            messages_lost: get(&self.messages_lost),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            messages_out: out,
            messages_unconfirmed: out.saturating_sub(get(&self.messages_confirmed)),
            messages_in: get(&self.messages_in),
            reconnects: get(&self.reconnects),
            disconnects: get(&self.disconnects),
            slow_consumer_events: get(&self.slow_consumer_events),
            directory_publish_failures: get(&self.directory_publish_failures),
            claim_conflicts: get(&self.claim_conflicts),
            node_clashes: get(&self.node_clashes),
            hellos_sent: get(&self.hellos_sent),
            hellos_deferred: get(&self.hellos_deferred),
            nodes_expired: get(&self.nodes_expired),
            nodes_revived: get(&self.nodes_revived),
            replies_not_forwarded: get(&self.replies_not_forwarded),
            role_members_unannounced: get(&self.role_members_unannounced),
            roles_refused: get(&self.roles_refused),
            agents_not_resumed: get(&self.agents_not_resumed),
            buffered,
            directory_nodes: dir.0,
            directory_agents: dir.1,
            durable: None,
        }
    }
}

/// The bridge's figures, in `MetricsSnapshot::nats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[non_exhaustive]
pub struct NatsStats {
    /// This hub's node name.
    pub node: String,
    /// Connected to the server now.
    pub connected: bool,
    /// Frames published.
    pub frames_sent: u64,
    /// Frames received, verified and decoded.
    pub frames_received: u64,
    /// Frames and directory messages refused, by reason: the decoder's (`truncated`,
    /// `bad_magic`, `unknown_version`, `too_large`, `bad_field`), the swarm key's
    /// (`unsigned`, `bad_tag`, `unknown_key`), `replayed` (a sequence number, epoch or link
    /// instance already seen) and `bad_sender` (a sender that belongs to another hub).
    pub frames_rejected: BTreeMap<&'static str, u64>,
    /// Frames missing from a remote hub's sequence (lost in transit).
    pub frames_lost: u64,
    /// Messages in those missing frames, from the frames' message sequence numbers.
    pub messages_lost: u64,
    /// Bytes published.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Messages handed to the NATS client for remote hubs.
    pub messages_out: u64,
    /// Of `messages_out`, those not yet covered by a flush the server confirmed.
    pub messages_unconfirmed: u64,
    /// Messages received from remote hubs.
    pub messages_in: u64,
    /// Reconnections after a lost connection.
    pub reconnects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Times the NATS client reported a subscription overflowing. The messages lost then
    /// are counted in `messages_lost` from the sequence numbers.
    pub slow_consumer_events: u64,
    /// Directory announcements the client refused to publish.
    pub directory_publish_failures: u64,
    /// Agents claimed by a second hub while another one holds them (refused).
    pub claim_conflicts: u64,
    /// Directory messages from another hub using this hub's node name.
    pub node_clashes: u64,
    /// Full agent lists published (hello), all parts counted once.
    pub hellos_sent: u64,
    /// Hello requests folded into a later hello by the rate limit.
    pub hellos_deferred: u64,
    /// Remote hubs expired for silence.
    pub nodes_expired: u64,
    /// Expired hubs that came back with the same epoch and got their link back.
    pub nodes_revived: u64,
    /// Replies from the wire whose requester is not here (never forwarded again).
    pub replies_not_forwarded: u64,
    /// This hub's group or capability members left out of announcements: past what one
    /// directory message holds (other hubs do not see them).
    pub role_members_unannounced: u64,
    /// Other hubs' groups or capabilities refused: past 10,000 names per hub.
    pub roles_refused: u64,
    /// Durable delivery: agents of another hub's previous run that the restarted hub did
    /// not register again within `directory_ttl` (sends to them were accepted until then).
    pub agents_not_resumed: u64,
    /// Messages waiting for remote hubs (the outage buffer in use).
    pub buffered: u64,
    /// Remote hubs known.
    pub directory_nodes: u64,
    /// Remote agents known.
    pub directory_agents: u64,
    /// Durable delivery's figures; `None` on core NATS.
    pub durable: Option<DurableStats>,
}

/// The figures of durable delivery (`NatsConfig::durable`), in `NatsStats::durable`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[non_exhaustive]
pub struct DurableStats {
    /// The swarm's JetStream stream.
    pub stream: String,
    /// Frames acknowledged to the server: every message in them taken by its agent or
    /// dead-lettered.
    pub acks: u64,
    /// Frames handed back to be delivered again (a recipient not there yet, a full mailbox,
    /// a message returned untaken at shutdown).
    pub naks: u64,
    /// Frames reported in progress to the server: their messages waited in mailboxes for
    /// half of `ack_wait` (a slow agent), so the server does not deliver them again.
    pub in_progress: u64,
    /// Frames that arrived on a second or later delivery.
    pub redelivered: u64,
    /// Messages dropped on arrival because this hub had them already (exactly once for
    /// the agent).
    pub messages_deduplicated: u64,
    /// Messages the hub remembers now, in the frames that carried them (pending and done).
    pub dedup_ids: u64,
    /// Publishes retried because the server did not confirm them.
    pub publish_retries: u64,
    /// Frames the server confirmed as duplicates (a retried publish it had stored).
    pub publish_duplicates: u64,
    /// JetStream calls that failed (publishes, acknowledgements, pulls, info).
    pub jetstream_errors: u64,
    /// Frames refused for good (forged, corrupt) and terminated.
    pub frames_terminated: u64,
    /// Messages published to this hub and not yet acknowledged (sampled every second).
    pub stream_lag: u64,
    /// Dead letters published to the dead-letter stream.
    pub dead_letters_published: u64,
    /// Entries this hub wrote to the swarm's directory bucket (its heartbeat entry and the
    /// parts of its agent list).
    pub directory_writes: u64,
    /// Remote agents this hub learned from the directory bucket at start.
    pub directory_agents_loaded: u64,
    /// Directory entries refused when read (unsigned, a bad tag, not parsable).
    pub directory_entries_refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_own_label() {
        let all = [
            Refusal::Frame(FrameError::Truncated),
            Refusal::Frame(FrameError::BadMagic),
            Refusal::Frame(FrameError::UnknownVersion),
            Refusal::Frame(FrameError::TooLarge),
            Refusal::Frame(FrameError::BadField),
            Refusal::Frame(FrameError::OversizedHeaders),
            Refusal::Unsigned,
            Refusal::BadTag,
            Refusal::UnknownKey,
            Refusal::Replayed,
            Refusal::BadSender,
        ];
        let stats = BridgeStats::default();
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i);
            stats.refuse(*r);
        }
        let snap = stats.snapshot(String::new(), 0, (0, 0));
        assert_eq!(snap.frames_rejected["too_large"], 1);
        assert_eq!(snap.frames_rejected["bad_field"], 1);
        assert_eq!(snap.frames_rejected.len(), Refusal::LABELS.len());
    }
}
