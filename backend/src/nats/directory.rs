//! Which agent lives on which remote hub, learned from the hubs' announcements.
//!
//! Each remote hub has a [`Link`]: a mailbox whose batches a publisher task turns into
//! frames. Sending to a remote agent is therefore the same code path as a local send:
//! batching, the bound (the outage buffer), ordering and counting all come for free.
//!
//! The directory trusts announcements only as far as they are consistent:
//! - an epoch is the sender's start time, so a restarted hub has a higher one; a message
//!   with an epoch lower than the one known for its node is stale (a replay) and refused;
//! - an agent belongs to the hub that first claimed it; a second hub's claim is refused
//!   and counted, and the owner is asked to say hello again, so a real move converges;
//! - a hub silent for `node_timeout` is *expired*, not forgotten: its agents become
//!   unknown, but its link keeps the messages buffered for it for `departed_retention`,
//!   and the hub gets them if it comes back with the same epoch (a pause, a partition);
//! - a hub that said bye, or whose retention ran out, leaves a tombstone, so its old
//!   messages cannot bring it back.
//!
//! Ids from the wire are chosen by others, so the maps use a hasher with a random key
//! (`id::KeyedIdState`), not the fast unseeded one of local ids.

use super::control::StreamEnd;
use super::link::Link;
use super::roles::RemoteRoles;
use crate::bus::{GroupKind, RemotePick};
use crate::id::KeyedIdState;
use crate::AgentId;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What was last received on one stream of frames from a hub.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StreamRx {
    started: bool,
    link: u64,
    last_seq: u64,
    next_msg: u64,
}

/// Frames and messages found missing by a frame that was accepted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    pub(crate) frames: u64,
    pub(crate) messages: u64,
}

impl StreamRx {
    /// Checks a frame's numbers against the stream: `Err(())` for a replay or an older
    /// link instance, else the gap it reveals. Arithmetic on the wire's numbers is checked.
    pub(crate) fn accept(
        &mut self,
        link: u64,
        seq: u64,
        msg_seq: u64,
        count: u64,
    ) -> Result<Gap, ()> {
        let next_msg = msg_seq.checked_add(count).ok_or(())?;
        if seq == 0 {
            return Err(());
        }
        let gap = if !self.started {
            // First frame seen of this stream (we may have started after the sender):
            // nothing before it is counted.
            Gap::default()
        } else if link > self.link {
            // A new link instance numbers from 1 and message 0.
            Gap {
                frames: seq - 1,
                messages: msg_seq,
            }
        } else if link < self.link || seq <= self.last_seq || msg_seq < self.next_msg {
            return Err(());
        } else {
            Gap {
                frames: seq - self.last_seq - 1,
                messages: msg_seq - self.next_msg,
            }
        };
        *self = StreamRx {
            started: true,
            link,
            last_seq: seq,
            next_msg,
        };
        Ok(gap)
    }

    /// Messages missing before `next_msg` on `link` (a bye's count), and catches up.
    pub(crate) fn settle(&mut self, link: u64, next_msg: u64) -> u64 {
        if !self.started || link != self.link || next_msg <= self.next_msg {
            return 0;
        }
        let lost = next_msg - self.next_msg;
        self.next_msg = next_msg;
        lost
    }
}

/// The three streams a hub receives from another: frames addressed to it, broadcasts and
/// topic messages (each arrives on its own subscription, in order).
pub(crate) const STREAMS: usize = 3;

/// A hello being received in parts.
#[derive(Debug)]
struct PartialHello {
    next_seq: u64,
    next_part: u32,
    parts: u32,
    agents: HashSet<AgentId>,
}

/// State of a node's directory messages.
#[derive(Debug, Default)]
struct ControlRx {
    last_seq: Option<u64>,
    hello: Option<PartialHello>,
    last_sync: Option<Instant>,
}

/// How many departed agents a remote hub's entry remembers (16 bytes each, twice).
const DEPARTED: usize = 65_536;

/// The most recent departures of one remote hub's agents, bounded in count.
#[derive(Debug, Default)]
struct DepartedAgents {
    ids: HashSet<AgentId>,
    order: VecDeque<AgentId>,
}

impl DepartedAgents {
    fn push(&mut self, id: AgentId) {
        if self.ids.insert(id) {
            self.order.push_back(id);
        }
        while self.order.len() > DEPARTED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

/// One remote hub.
#[derive(Debug)]
pub(crate) struct RemoteNode {
    pub(crate) name: String,
    pub(crate) epoch: u64,
    pub(crate) link: Link,
    last_seen: Mutex<Instant>,
    agents: Mutex<HashSet<AgentId>>,
    /// Durable only: the agents of this hub's previous run that it has not registered
    /// again yet, kept known until a deadline (see [`Directory::upsert`]).
    inherited: Mutex<Option<Inherited>>,
    /// Agents this hub announced and then removed, newest last, at most [`DEPARTED`]: a
    /// reply or chunk they sent just before leaving still comes from their hub, though the
    /// frame carrying it may arrive after the directory message that removed them.
    departed: Mutex<DepartedAgents>,
    /// The connection generation in which this hub was last heard.
    heard: AtomicU64,
    /// False while expired (its link retained) or gone.
    live: AtomicBool,
    control: Mutex<ControlRx>,
    pub(crate) streams: Mutex<[StreamRx; STREAMS]>,
    /// Its groups and capabilities.
    pub(crate) roles: RemoteRoles,
}

impl RemoteNode {
    pub(crate) fn agent_count(&self) -> usize {
        self.agents.lock().len()
    }

    /// Whether this hub announced `id` (kept after it departs, for its last replies).
    pub(crate) fn hosts(&self, id: AgentId) -> bool {
        self.agents.lock().contains(&id) || self.departed.lock().ids.contains(&id)
    }

    pub(crate) fn seen(&self, generation: u64) {
        *self.last_seen.lock() = Instant::now();
        self.heard.fetch_max(generation, Ordering::AcqRel);
    }

    /// The connection generation in which this hub was last heard.
    pub(crate) fn heard_in(&self) -> u64 {
        self.heard.load(Ordering::Acquire)
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Accepts the next directory sequence number of this node; false for a replay.
    pub(crate) fn accept_control(&self, seq: u64) -> bool {
        let mut control = self.control.lock();
        if control.last_seq.is_some_and(|last| seq <= last) {
            return false;
        }
        control.last_seq = Some(seq);
        true
    }

    /// Whether a hello is half received (a beat's count may not match yet).
    pub(crate) fn hello_in_progress(&self) -> bool {
        self.control.lock().hello.is_some()
    }

    /// Whether to ask this node for a hello now: at most once per `every`.
    pub(crate) fn may_sync(&self, every: Duration) -> bool {
        let mut control = self.control.lock();
        let now = Instant::now();
        if control
            .last_sync
            .is_some_and(|at| now.duration_since(at) < every)
        {
            return false;
        }
        control.last_sync = Some(now);
        true
    }
}

/// A hub that left: a tombstone, an expired hub whose link is kept for a while, or a hub
/// that said bye, during the grace in which its last frames may still arrive.
#[derive(Debug)]
struct Departed {
    epoch: u64,
    at: Instant,
    /// Set while the link is retained.
    node: Option<Arc<RemoteNode>>,
    /// Set when it said bye: where its streams ended.
    bye: Option<Vec<StreamEnd>>,
}

/// Agents a restarted hub's previous run hosted, kept until `until` for it to register
/// them again.
#[derive(Debug)]
struct Inherited {
    until: Instant,
    ids: HashSet<AgentId>,
}

/// A node whose time in [`Directory::sweep`] is up.
#[derive(Debug)]
pub(crate) struct Swept {
    pub(crate) node: Arc<RemoteNode>,
    /// Where its streams ended, when it said bye.
    pub(crate) bye: Option<Vec<StreamEnd>>,
}

/// Tombstones kept at most (the oldest go first).
const MAX_DEPARTED: usize = 4096;

/// Shards of the agent map: senders on different cores rarely share a lock word.
const SHARDS: usize = 64;

type Shard = RwLock<HashMap<AgentId, Arc<RemoteNode>, KeyedIdState>>;

/// Agent claims refused by [`Directory::add_agents`].
#[derive(Debug, Default)]
pub(crate) struct Refused {
    pub(crate) count: u64,
    /// The other hubs that hold refused agents (each once).
    pub(crate) owners: Vec<Arc<RemoteNode>>,
}

/// What [`Directory::upsert`] found.
#[derive(Debug)]
pub(crate) enum Upsert {
    /// The node as known.
    Known(Arc<RemoteNode>),
    /// A new node (or a new epoch of a known one: `replaced` is the old entry, for closing).
    New {
        node: Arc<RemoteNode>,
        replaced: Option<Arc<RemoteNode>>,
    },
    /// An expired node came back with the same epoch and has its link again.
    Revived(Arc<RemoteNode>),
    /// The node said bye; its last frames are still accepted for a grace period.
    Leaving(Arc<RemoteNode>),
    /// An epoch older than the known one, or one that said bye: refused.
    Stale,
}

/// The directory of remote agents.
#[derive(Debug)]
pub(crate) struct Directory {
    shards: Box<[Shard]>,
    nodes: Mutex<HashMap<String, Arc<RemoteNode>>>,
    departed: Mutex<HashMap<String, Departed>>,
    /// Round-robin turn among equally loaded remote group members.
    turn: AtomicU64,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(KeyedIdState::default())))
                .collect(),
            nodes: Mutex::default(),
            departed: Mutex::default(),
            turn: AtomicU64::new(0),
        }
    }
}

impl Directory {
    fn shard(&self, id: &AgentId) -> &Shard {
        // Which shard does not need to be unguessable: a shard is a whole hash map.
        &self.shards[id.as_uuid().as_bytes()[0] as usize % SHARDS]
    }

    /// Runs `f` on the node that hosts `id`.
    pub(crate) fn with_node<R>(
        &self,
        id: AgentId,
        f: impl FnOnce(&Arc<RemoteNode>) -> R,
    ) -> Option<R> {
        self.shard(&id).read().get(&id).map(f)
    }

    /// The node that hosts `id`, if any.
    pub(crate) fn owner(&self, id: AgentId) -> Option<Arc<RemoteNode>> {
        self.with_node(id, Arc::clone)
    }

    /// The node `name` at `epoch`, created with `link` when new; see [`Upsert`].
    ///
    /// With `inherit` (durable delivery), a new epoch of a known hub (a restart) takes over
    /// the agents of the old one for that long: messages sent to them meanwhile wait in the
    /// stream for the restarted hub, which registers them again with
    /// `Hub::register_with_id`. Those it has not named by then are forgotten
    /// ([`end_inheritance`](Self::end_inheritance)). Without it, a restart starts afresh.
    pub(crate) fn upsert(
        &self,
        name: &str,
        epoch: u64,
        inherit: Option<Duration>,
        link: impl FnOnce() -> Link,
    ) -> Upsert {
        let mut nodes = self.nodes.lock();
        let mut departed = self.departed.lock();
        let mut replaced = None;
        if let Some(node) = nodes.get(name) {
            if node.epoch == epoch {
                return Upsert::Known(node.clone());
            }
            if epoch < node.epoch {
                return Upsert::Stale;
            }
            replaced = nodes.remove(name);
        } else if let Some(gone) = departed.get(name) {
            if epoch == gone.epoch && gone.bye.is_some() {
                return match &gone.node {
                    Some(node) => Upsert::Leaving(node.clone()),
                    None => Upsert::Stale,
                };
            }
            if epoch < gone.epoch || (epoch == gone.epoch && gone.node.is_none()) {
                return Upsert::Stale;
            }
            if let Some(gone) = departed.remove(name) {
                match gone.node {
                    Some(node) if node.epoch == epoch => {
                        node.live.store(true, Ordering::Release);
                        *node.last_seen.lock() = Instant::now();
                        nodes.insert(name.to_string(), node.clone());
                        drop((nodes, departed));
                        let agents: Vec<AgentId> = node.agents.lock().iter().copied().collect();
                        self.map(&node, &agents);
                        return Upsert::Revived(node);
                    }
                    retained => replaced = retained,
                }
            }
        }
        let node = Arc::new(RemoteNode {
            name: name.to_string(),
            epoch,
            link: link(),
            last_seen: Mutex::new(Instant::now()),
            agents: Mutex::new(HashSet::new()),
            departed: Mutex::new(DepartedAgents::default()),
            heard: AtomicU64::new(0),
            live: AtomicBool::new(true),
            control: Mutex::default(),
            streams: Mutex::new([StreamRx::default(); STREAMS]),
            roles: RemoteRoles::default(),
            inherited: Mutex::new(None),
        });
        nodes.insert(name.to_string(), node.clone());
        drop((nodes, departed));
        if let Some(old) = &replaced {
            // Remapped before it is marked dead, so a send in between finds a link.
            match inherit {
                Some(grace) => self.inherit(old, &node, grace),
                None => self.unmap_all(old),
            }
            old.live.store(false, Ordering::Release);
        }
        Upsert::New { node, replaced }
    }

    /// Moves `old`'s agents to `new` (its next run) until `grace` has passed.
    fn inherit(&self, old: &Arc<RemoteNode>, new: &Arc<RemoteNode>, grace: Duration) {
        let ids: HashSet<AgentId> = std::mem::take(&mut *old.agents.lock());
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            let mut shard = self.shard(id).write();
            if shard.get(id).is_some_and(|n| Arc::ptr_eq(n, old)) {
                shard.insert(*id, new.clone());
            }
        }
        let mut agents = new.agents.lock();
        agents.extend(ids.iter().copied());
        *new.inherited.lock() = Some(Inherited {
            until: Instant::now() + grace,
            ids,
        });
    }

    /// Forgets the inherited agents that their hub has not registered again within the
    /// grace. Returns how many.
    pub(crate) fn end_inheritance(&self) -> u64 {
        let now = Instant::now();
        let nodes: Vec<Arc<RemoteNode>> = self.nodes.lock().values().cloned().collect();
        let mut forgotten = 0;
        for node in nodes {
            let ids: Vec<AgentId> = {
                let mut inherited = node.inherited.lock();
                match &*inherited {
                    Some(i) if i.until <= now => {
                        let ids = i.ids.iter().copied().collect();
                        *inherited = None;
                        ids
                    }
                    _ => continue,
                }
            };
            forgotten += ids.len() as u64;
            self.remove_agents(&node, &ids);
        }
        forgotten
    }

    /// Adds agents claimed by `node`. An id that another live hub holds, or that
    /// `is_local` says is ours, is refused.
    pub(crate) fn add_agents(
        &self,
        node: &Arc<RemoteNode>,
        agents: &[AgentId],
        is_local: impl Fn(AgentId) -> bool,
    ) -> Refused {
        let mut refused = Refused::default();
        let mut mine = node.agents.lock();
        for &id in agents {
            if is_local(id) {
                refused.count += 1;
                continue;
            }
            let mut shard = self.shard(&id).write();
            match shard.get(&id) {
                Some(owner) if !Arc::ptr_eq(owner, node) && owner.is_live() => {
                    refused.count += 1;
                    if !refused.owners.iter().any(|o| Arc::ptr_eq(o, owner)) {
                        refused.owners.push(owner.clone());
                    }
                }
                _ => {
                    shard.insert(id, node.clone());
                    mine.insert(id);
                }
            }
        }
        drop(mine);
        if let Some(inherited) = node.inherited.lock().as_mut() {
            for id in agents {
                inherited.ids.remove(id);
            }
        }
        refused
    }

    pub(crate) fn remove_agents(&self, node: &Arc<RemoteNode>, agents: &[AgentId]) {
        {
            let mut mine = node.agents.lock();
            let mut departed = node.departed.lock();
            for id in agents {
                if mine.remove(id) {
                    departed.push(*id);
                }
            }
        }
        if let Some(inherited) = node.inherited.lock().as_mut() {
            for id in agents {
                inherited.ids.remove(id);
            }
        }
        self.unmap(node, agents);
        node.roles.remove_agents(agents);
    }

    /// The members of group or capability `name` on live remote hubs.
    pub(crate) fn role_members(&self, kind: GroupKind, name: &str) -> Vec<AgentId> {
        let mut all = Vec::new();
        for node in self.nodes() {
            if node.is_live() {
                all.extend(node.roles.members(kind, name));
            }
        }
        all
    }

    /// The least loaded member of `name` on a live remote hub; among equals, the next in
    /// turn.
    pub(crate) fn pick_role(&self, kind: GroupKind, name: &str) -> Option<RemotePick> {
        let mut least: Vec<RemotePick> = Vec::new();
        for node in self.nodes() {
            if !node.is_live() {
                continue;
            }
            node.roles.with(kind, name, |members| {
                for m in members {
                    let load = m.load();
                    if least.first().is_some_and(|l| load > l.load) {
                        continue;
                    }
                    if least.first().is_some_and(|l| load < l.load) {
                        least.clear();
                    }
                    least.push(RemotePick {
                        id: m.id,
                        load,
                        counters: m.counters.clone(),
                    });
                }
            });
        }
        if least.is_empty() {
            return None;
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let at = usize::try_from(turn % least.len() as u64).unwrap_or(0);
        Some(least.swap_remove(at))
    }

    /// Takes one part of a hello (its sequence number `seq`). Agents of every part are
    /// added at once; when the last part arrives, agents the hello did not name are
    /// removed. A part out of order abandons the hello (the next beat's count asks again).
    /// Returns the refused claims.
    pub(crate) fn hello_part(
        &self,
        node: &Arc<RemoteNode>,
        seq: u64,
        part: u32,
        parts: u32,
        agents: &[AgentId],
        is_local: impl Fn(AgentId) -> bool,
    ) -> Refused {
        let refused = self.add_agents(node, agents, is_local);
        let complete = {
            let mut control = node.control.lock();
            let mut hello = match control.hello.take() {
                Some(h) if h.next_seq == seq && h.next_part == part && h.parts == parts => h,
                _ if part == 0 && parts > 0 => PartialHello {
                    next_seq: seq,
                    next_part: 0,
                    parts,
                    agents: HashSet::new(),
                },
                _ => return refused,
            };
            hello.agents.extend(agents.iter().copied());
            hello.next_part += 1;
            hello.next_seq = seq.saturating_add(1);
            if hello.next_part < hello.parts {
                control.hello = Some(hello);
                None
            } else {
                Some(hello.agents)
            }
        };
        if let Some(named) = complete {
            // An inherited agent is not stale for not being named yet: the restarted hub
            // says hello before it registers its agents again.
            let agents = node.agents.lock();
            let inherited = node.inherited.lock();
            let pending = |id: &AgentId| inherited.as_ref().is_some_and(|i| i.ids.contains(id));
            let stale: Vec<AgentId> = agents
                .iter()
                .filter(|id| !named.contains(id) && !pending(id))
                .copied()
                .collect();
            drop((inherited, agents));
            self.remove_agents(node, &stale);
        }
        refused
    }

    /// Removes `agents` from the map where they still point at `node`.
    fn unmap(&self, node: &Arc<RemoteNode>, agents: &[AgentId]) {
        for id in agents {
            let mut shard = self.shard(id).write();
            if shard.get(id).is_some_and(|n| Arc::ptr_eq(n, node)) {
                shard.remove(id);
            }
        }
    }

    /// Puts `agents` (already in the node's set) back in the map, where free.
    fn map(&self, node: &Arc<RemoteNode>, agents: &[AgentId]) {
        for &id in agents {
            let mut shard = self.shard(&id).write();
            match shard.get(&id) {
                Some(owner) if owner.is_live() && !Arc::ptr_eq(owner, node) => {}
                _ => {
                    shard.insert(id, node.clone());
                }
            }
        }
    }

    fn unmap_all(&self, node: &Arc<RemoteNode>) {
        let ids: Vec<AgentId> = node.agents.lock().iter().copied().collect();
        self.unmap(node, &ids);
    }

    /// A node said bye: its agents become unknown at once; its last frames are accepted
    /// until [`sweep`](Self::sweep) finds its grace over. Returns whether it was live.
    pub(crate) fn remove_node(&self, name: &str, epoch: u64, ends: Vec<StreamEnd>) -> bool {
        self.depart(name, Some(epoch), Some(ends))
    }

    /// A node went silent: its agents become unknown, its link is kept (see the module
    /// docs). Returns whether it was live.
    pub(crate) fn expire(&self, name: &str) -> bool {
        self.depart(name, None, None)
    }

    fn depart(&self, name: &str, epoch: Option<u64>, bye: Option<Vec<StreamEnd>>) -> bool {
        let mut nodes = self.nodes.lock();
        if nodes
            .get(name)
            .is_none_or(|n| epoch.is_some_and(|e| n.epoch != e))
        {
            return false;
        }
        let Some(node) = nodes.remove(name) else {
            return false;
        };
        let mut departed = self.departed.lock();
        bury(&mut departed, name, node.epoch, Some(node.clone()), bye);
        drop((nodes, departed));
        node.live.store(false, Ordering::Release);
        self.unmap_all(&node);
        true
    }

    /// Departed nodes whose time is up: bye'd ones after `grace`, expired ones after
    /// `retention`. They become tombstones and are returned for closing their links.
    pub(crate) fn sweep(&self, grace: Duration, retention: Duration) -> Vec<Swept> {
        let mut departed = self.departed.lock();
        let mut out = Vec::new();
        for gone in departed.values_mut() {
            let wait = if gone.bye.is_some() { grace } else { retention };
            if gone.node.is_some() && gone.at.elapsed() >= wait {
                if let Some(node) = gone.node.take() {
                    out.push(Swept {
                        node,
                        bye: gone.bye.clone(),
                    });
                }
            }
        }
        out
    }

    /// Live nodes silent for longer than `timeout`, counting silence only from `floor`
    /// (this hub's last reconnection or pause: before it, nobody could be heard).
    pub(crate) fn silent_for(&self, timeout: Duration, floor: Instant) -> Vec<String> {
        self.nodes
            .lock()
            .values()
            .filter(|n| {
                let seen = (*n.last_seen.lock()).max(floor);
                seen.elapsed() > timeout
            })
            .map(|n| n.name.clone())
            .collect()
    }

    /// Live nodes.
    pub(crate) fn nodes(&self) -> Vec<Arc<RemoteNode>> {
        self.nodes.lock().values().cloned().collect()
    }

    /// Live nodes and expired ones whose links are retained.
    pub(crate) fn all_links(&self) -> Vec<Arc<RemoteNode>> {
        let mut all = self.nodes();
        all.extend(self.departed.lock().values().filter_map(|d| d.node.clone()));
        all
    }

    /// (remote hubs, remote agents).
    pub(crate) fn size(&self) -> (usize, usize) {
        let agents = self.shards.iter().map(|s| s.read().len()).sum();
        (self.nodes.lock().len(), agents)
    }
}

fn bury(
    departed: &mut HashMap<String, Departed>,
    name: &str,
    epoch: u64,
    node: Option<Arc<RemoteNode>>,
    bye: Option<Vec<StreamEnd>>,
) {
    if departed.len() >= MAX_DEPARTED {
        // Forget the oldest tombstone; a retained link is never forgotten here.
        let oldest = departed
            .iter()
            .filter(|(_, d)| d.node.is_none())
            .min_by_key(|(_, d)| d.at)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            departed.remove(&key);
        }
    }
    departed.insert(
        name.to_string(),
        Departed {
            epoch,
            at: Instant::now(),
            node,
            bye,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departed_agents_are_remembered_for_their_last_replies_within_a_bound() {
        let mut d = DepartedAgents::default();
        let first = AgentId::new_v4();
        d.push(first);
        d.push(first);
        assert_eq!(d.order.len(), 1, "a departure is remembered once");
        for _ in 0..DEPARTED {
            d.push(AgentId::new_v4());
        }
        assert_eq!((d.ids.len(), d.order.len()), (DEPARTED, DEPARTED));
        assert!(!d.ids.contains(&first), "the oldest is forgotten first");
    }

    #[test]
    fn ids_crafted_to_collide_do_not_collide_in_the_directory() {
        use std::hash::BuildHasher;
        // The unseeded id hasher folds the id's two 8-byte words as h = (h ^ w) * K from 0:
        // choosing the second word from the first gives every id the same hash.
        let k = 0x9E37_79B9_7F4A_7C15u64;
        let h0 = 0u64;
        let ids: Vec<AgentId> = (0..1000u64)
            .map(|w1| {
                let w2 = 0x5eed ^ (h0 ^ w1).wrapping_mul(k);
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&w1.to_le_bytes());
                b[8..].copy_from_slice(&w2.to_le_bytes());
                AgentId::from(uuid::Uuid::from_bytes(b))
            })
            .collect();
        let fast = crate::id::UuidBuildHasher::default();
        let unseeded: HashSet<u64> = ids.iter().map(|id| fast.hash_one(id)).collect();
        assert_eq!(
            unseeded.len(),
            1,
            "the crafted ids collide under the unseeded hasher"
        );
        let dir = Directory::default();
        let seeded = *dir.shards[0].read().hasher();
        let spread: HashSet<u64> = ids.iter().map(|id| seeded.hash_one(id)).collect();
        assert!(spread.len() > 990, "{} distinct hashes", spread.len());
    }

    fn link() -> Link {
        let (mailbox, _) = crate::bus::Mailbox::standalone(16, crate::OverflowPolicy::Reject, 4);
        Link::new(1, mailbox)
    }

    fn new_node(upsert: Upsert) -> Arc<RemoteNode> {
        match upsert {
            Upsert::New { node, .. } => node,
            other => panic!("expected a new node, got {other:?}"),
        }
    }

    /// Durable: a restarted hub says hello before it registers its agents again; the
    /// old run's agents stay known (on the new run) until it does, or until the grace ends.
    #[test]
    fn a_restarted_hubs_agents_stay_known_while_it_registers_them_again() {
        let dir = Directory::default();
        let hour = Some(Duration::from_secs(3600));
        let first = new_node(dir.upsert("b", 1, hour, link));
        let (kept, gone) = (AgentId::new_v4(), AgentId::new_v4());
        dir.add_agents(&first, &[kept, gone], |_| false);
        // The restart: epoch 2, whose first hello names nobody yet.
        let second = new_node(dir.upsert("b", 2, hour, link));
        assert!(!first.is_live());
        for id in [kept, gone] {
            let owner = dir.owner(id).expect("still known after the restart");
            assert!(Arc::ptr_eq(&owner, &second), "on the new run");
        }
        dir.hello_part(&second, 1, 0, 1, &[], |_| false);
        assert!(dir.owner(kept).is_some() && dir.owner(gone).is_some());
        dir.add_agents(&second, &[kept], |_| false);
        assert_eq!(dir.end_inheritance(), 0, "the grace is not over");
        // A later complete hello that does not name `kept` removes it: it is claimed now.
        dir.hello_part(&second, 2, 0, 1, &[], |_| false);
        assert!(
            dir.owner(kept).is_none(),
            "claimed agents follow the hellos again"
        );
        assert!(dir.owner(gone).is_some(), "still inherited");

        // With no grace left, what was not registered again is forgotten and counted.
        let third = new_node(dir.upsert("b", 3, Some(Duration::ZERO), link));
        let resumed = AgentId::new_v4();
        dir.add_agents(&third, &[resumed], |_| false);
        assert!(Arc::ptr_eq(&dir.owner(gone).unwrap(), &third));
        assert_eq!(dir.end_inheritance(), 1);
        assert!(dir.owner(gone).is_none());
        assert!(dir.owner(resumed).is_some());
        assert_eq!(dir.end_inheritance(), 0, "counted once");

        // Without durable delivery a restart starts afresh.
        let fresh = new_node(dir.upsert("b", 4, None, link));
        assert!(dir.owner(resumed).is_none());
        assert_eq!(fresh.agent_count(), 0);
    }

    #[test]
    fn streams_refuse_replays_and_count_gaps() {
        let mut rx = StreamRx::default();
        assert_eq!(rx.accept(1, 5, 100, 10), Ok(Gap::default()));
        assert_eq!(rx.accept(1, 5, 110, 1), Err(()), "same seq again");
        assert_eq!(rx.accept(1, 4, 90, 1), Err(()), "older seq");
        assert_eq!(
            rx.accept(1, 8, 130, 5),
            Ok(Gap {
                frames: 2,
                messages: 20
            })
        );
        assert_eq!(rx.accept(0, 9, 135, 1), Err(()), "older link instance");
        // A new link instance starts again at 1 / 0: not a loss.
        assert_eq!(rx.accept(2, 1, 0, 3), Ok(Gap::default()));
        assert_eq!(rx.accept(2, 2, 3, 1), Ok(Gap::default()));
        // Overflowing numbers are refused, not wrapped.
        assert_eq!(rx.accept(2, u64::MAX, u64::MAX, 1), Err(()));
        assert_eq!(rx.accept(2, 3, 4, u64::MAX), Err(()));
        assert_eq!(rx.accept(2, 0, 4, 1), Err(()));
        // A bye tells where the stream ended.
        assert_eq!(rx.settle(2, 9), 5);
        assert_eq!(rx.settle(2, 9), 0);
    }
}
