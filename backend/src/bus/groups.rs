//! Groups of agents that share the work sent to the group's name, and the capability
//! index (a capability is a group an agent joins by registering with it).
//!
//! A send to a group goes to one member, chosen by load: the member with the shortest
//! mailbox, starting from a round-robin turn, so equal members share the load equally and
//! one that falls behind gets less. The scan stops at the first member with an empty
//! mailbox, so under light load a pick reads one mailbox.

use super::mailbox::Mailbox;
use super::registry::AgentSlot;
use crate::{AgentId, Error, Result};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// Whether a name is for a group or a capability (in errors and on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GroupKind {
    Group,
    Capability,
}

#[derive(Debug)]
struct Member {
    id: AgentId,
    mailbox: Arc<Mailbox>,
}

/// Members a pick looks at, at most, from its turn on: a pick costs the same in a group of
/// 10 and of 100,000, and every member is looked at in turn.
pub(crate) const SCAN: usize = 8;

/// One member's load, for metrics and for other hubs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct MemberLoad {
    pub(crate) id: AgentId,
    pub(crate) queued: u64,
}

type Map = HashMap<Arc<str>, Vec<Member>>;

/// One copy of the names and their members, behind a lock of its own, on cache lines of
/// its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(RwLock<Map>);

/// Named sets of agents.
///
/// Kept in a few identical copies, each thread reading its own: a read lock writes its
/// lock's word, and one word that every sender writes bounced between the cores on each
/// send to a group (measured: half of a pick's cost, 7% of all cycles with two cores
/// sending to a group of 100). A change is made to every copy, in order, under `writer`.
#[derive(Debug)]
pub(crate) struct Groups {
    kind: GroupKind,
    shards: Box<[Shard]>,
    /// Serializes changes, so the copies see them in one order.
    writer: parking_lot::Mutex<()>,
}

/// How many copies: twice the cores (threads take them round-robin, so the runtime's
/// workers rarely share one), at most 16.
fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_mul(2)
        .clamp(1, 16)
}

/// This thread's copy, out of `n`: taken round-robin by each thread at its first read.
fn this_thread_shard(n: usize) -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let mut mine = MINE.get();
    if mine == usize::MAX {
        mine = NEXT.fetch_add(1, Ordering::Relaxed);
        MINE.set(mine);
    }
    mine % n
}

impl Groups {
    pub(crate) fn new(kind: GroupKind) -> Self {
        Self {
            kind,
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
            writer: parking_lot::Mutex::new(()),
        }
    }

    /// The copy for reads off the send path.
    fn any(&self) -> &RwLock<Map> {
        &self.shards[0].0
    }

    /// Applies `change` to every copy.
    fn change<T>(&self, mut change: impl FnMut(&mut Map) -> T) -> T {
        let _one_at_a_time = self.writer.lock();
        // There is always one copy at least (`shard_count`).
        let out = change(&mut self.shards[0].0.write());
        for shard in &self.shards[1..] {
            change(&mut shard.0.write());
        }
        out
    }

    /// Checks a name: the rules of topic names.
    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        super::registry::validate_topic(name).map_err(|_| Error::InvalidName {
            what: match self.kind {
                GroupKind::Group => "group",
                GroupKind::Capability => "capability",
            },
            name: name.chars().take(64).collect(),
        })
    }

    /// Adds `slot` to `name`, which it returns (`None`: it was a member already). The slot
    /// remembers it in `kept`.
    pub(crate) fn join(
        &self,
        slot: &AgentSlot,
        name: &str,
        kept: &parking_lot::Mutex<Vec<Arc<str>>>,
    ) -> Result<Option<Arc<str>>> {
        self.validate(name)?;
        let mut kept = kept.lock();
        if kept.iter().any(|g| &**g == name) {
            return Ok(None);
        }
        // Under the maps' locks: a group that loses its last member leaves the maps under
        // them too, so a member is never added to a group that is no longer there.
        let mut key: Option<Arc<str>> = None;
        self.change(|map| {
            let k = key
                .get_or_insert_with(|| match map.get_key_value(name) {
                    Some((k, _)) => k.clone(),
                    None => name.into(),
                })
                .clone();
            map.entry(k).or_default().push(Member {
                id: slot.id,
                mailbox: slot.mailbox.clone(),
            });
        });
        let key = key.unwrap_or_else(|| name.into());
        kept.push(key.clone());
        Ok(Some(key))
    }

    /// Removes `id` from `name`, which it returns (`None`: it was not a member).
    pub(crate) fn leave(
        &self,
        id: AgentId,
        name: &str,
        kept: &parking_lot::Mutex<Vec<Arc<str>>>,
    ) -> Option<Arc<str>> {
        let mut kept = kept.lock();
        let at = kept.iter().position(|g| &**g == name)?;
        let key = kept.swap_remove(at);
        self.remove(id, name);
        Some(key)
    }

    /// Removes `id` from every group in `kept` (the agent leaves the hub); returns them.
    pub(crate) fn leave_all(
        &self,
        id: AgentId,
        kept: &parking_lot::Mutex<Vec<Arc<str>>>,
    ) -> Vec<Arc<str>> {
        let names = std::mem::take(&mut *kept.lock());
        for name in &names {
            self.remove(id, name);
        }
        names
    }

    fn remove(&self, id: AgentId, name: &str) {
        self.change(|map| {
            let Some(members) = map.get_mut(name) else {
                return;
            };
            if let Some(at) = members.iter().position(|m| m.id == id) {
                // Order is not kept: the turn rotates over whatever order there is.
                members.swap_remove(at);
            }
            if members.is_empty() {
                map.remove(name);
            }
        });
    }

    /// The error for a name without members.
    pub(crate) fn none(&self, name: &str) -> Error {
        let name = name.chars().take(64).collect();
        match self.kind {
            GroupKind::Group => Error::UnknownGroup(name),
            GroupKind::Capability => Error::NoCapableAgent(name),
        }
    }

    /// The local member to send to, with its queue's depth: the shortest queue among the
    /// [`SCAN`] members from `turn` on (the sender's round-robin counter), the first empty
    /// one at once. Messages still in an open batch are not counted: they are at most one
    /// batch (50 messages, 10 ms), and reading them takes the mailbox's lock. `None` when
    /// `name` has no local member.
    pub(crate) fn pick(&self, name: &str, turn: usize) -> Option<(AgentId, usize)> {
        let map = self.shards[this_thread_shard(self.shards.len())].0.read();
        let members = map.get(name)?;
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = turn % n;
        let mut best = start;
        let mut least = members[start].mailbox.depth();
        let mut k = 1;
        while least > 0 && k < n.min(SCAN) {
            let i = (start + k) % n;
            let depth = members[i].mailbox.depth();
            if depth < least {
                (best, least) = (i, depth);
            }
            k += 1;
        }
        Some((members[best].id, least))
    }

    /// The members of `name` (none when it has none).
    pub(crate) fn members(&self, name: &str) -> Vec<AgentId> {
        self.any()
            .read()
            .get(name)
            .map_or_else(Vec::new, |g| g.iter().map(|m| m.id).collect())
    }

    /// The members of `name` with their mailbox depths (to announce to other hubs).
    pub(crate) fn loads_of(&self, name: &str) -> Vec<MemberLoad> {
        self.any().read().get(name).map_or_else(Vec::new, |g| {
            g.iter()
                .map(|m| MemberLoad {
                    id: m.id,
                    queued: m.mailbox.waiting() as u64,
                })
                .collect()
        })
    }

    /// The names that have members.
    pub(crate) fn names(&self) -> Vec<Arc<str>> {
        self.any().read().keys().cloned().collect()
    }

    /// Every group with its members' loads, largest groups first, at most `limit`.
    pub(crate) fn loads(&self, limit: usize) -> Vec<(String, Vec<MemberLoad>)> {
        let mut all: Vec<(String, Vec<MemberLoad>)> = self
            .any()
            .read()
            .iter()
            .map(|(name, g)| {
                let members = g
                    .iter()
                    .map(|m| MemberLoad {
                        id: m.id,
                        queued: m.mailbox.waiting() as u64,
                    })
                    .collect();
                (name.to_string(), members)
            })
            .collect();
        all.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }
}
