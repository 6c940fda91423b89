//! Directory control messages: what a hub announces about itself on
//! `swarmbus.<swarm>.dir`, and how long lists are split to fit the server's `max_payload`.
//!
//! Every message names its sender (`node`, `epoch`) and carries a sequence number that
//! rises by one per message of that sender, so a replayed or stale announcement is refused.
//! Agent lists travel in parts of at most [`agents_per_part`] ids: a hub with 100,000
//! agents says hello in four parts of a 1 MiB server, never in one message the server
//! refuses.

use crate::bus::{GroupKind, MemberLoad};
use crate::AgentId;
use serde::{Deserialize, Serialize};

/// One directory message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Announcement {
    pub(crate) node: String,
    pub(crate) epoch: u64,
    /// Rises by one per announcement of this (node, epoch).
    pub(crate) seq: u64,
    pub(crate) body: Control,
}

/// What an announcement says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Control {
    /// Part `part` of `parts` of the sender's full agent list (`total` agents); `reply`
    /// asks every other hub to say hello too. The parts of one hello have consecutive
    /// sequence numbers.
    Hello {
        part: u32,
        parts: u32,
        total: u64,
        agents: Vec<AgentId>,
        reply: bool,
    },
    /// Agents that registered since the last announcement.
    Join { agents: Vec<AgentId> },
    /// Agents that left.
    Leave { agents: Vec<AgentId> },
    /// "Still here, with this many agents."
    Beat { agents: u64 },
    /// Asks `target` to say hello again (its count did not match).
    Sync { target: String },
    /// Asks whether a hub named `target` runs already; that hub answers with a beat.
    Probe { target: String },
    /// The sender's members of group or capability `name`, each with its mailbox depth:
    /// the whole list (none: the name is gone from the sender).
    Role {
        kind: GroupKind,
        name: String,
        members: Vec<MemberLoad>,
    },
    /// The sender stops. `sent` gives, per stream, the message sequence number reached, so
    /// receivers can count messages lost at the end of a stream.
    Bye { sent: Vec<StreamEnd> },
}

/// Where a stream of frames ended: which stream (0 direct, 1 broadcast, 2 topics), the
/// receiver's node name for a direct stream (`""` otherwise), the link instance and the
/// next message sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamEnd {
    pub(crate) stream: u8,
    pub(crate) to: String,
    pub(crate) link: u64,
    pub(crate) next_msg: u64,
}

/// Bytes of one id in a JSON list: 36 characters, two quotes and a comma.
const ID_JSON_BYTES: usize = 39;
/// Room for the envelope of a message around its list (names, numbers, the tag).
const OVERHEAD_BYTES: usize = 1024;

/// How many ids fit one message of at most `max_bytes`.
pub(crate) fn agents_per_part(max_bytes: usize) -> usize {
    (max_bytes.saturating_sub(OVERHEAD_BYTES) / ID_JSON_BYTES).max(1)
}

/// Splits a list into parts that each fit a message of `max_bytes` (at least one part, so
/// an empty hello still says "no agents").
pub(crate) fn parts(agents: &[AgentId], max_bytes: usize) -> Vec<&[AgentId]> {
    if agents.is_empty() {
        return vec![agents];
    }
    agents.chunks(agents_per_part(max_bytes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_a_large_hello_fits_the_limit() {
        let agents: Vec<AgentId> = (0..100_000).map(|_| AgentId::new_v4()).collect();
        let limit = 1024 * 1024;
        let split = parts(&agents, limit);
        assert_eq!(split.len(), 4);
        assert_eq!(split.iter().map(|p| p.len()).sum::<usize>(), 100_000);
        for (i, part) in split.iter().enumerate() {
            let msg = Announcement {
                node: "n".repeat(64),
                epoch: u64::MAX,
                seq: u64::MAX,
                body: Control::Hello {
                    part: i as u32,
                    parts: split.len() as u32,
                    total: 100_000,
                    agents: part.to_vec(),
                    reply: true,
                },
            };
            let bytes = serde_json::to_vec(&msg).unwrap();
            assert!(bytes.len() + 64 <= limit, "{} bytes", bytes.len());
            let back: Announcement = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn tiny_limits_still_make_progress() {
        let agents: Vec<AgentId> = (0..3).map(|_| AgentId::new_v4()).collect();
        assert_eq!(parts(&agents, 10).len(), 3);
        assert_eq!(parts(&[], 10).len(), 1);
    }
}
