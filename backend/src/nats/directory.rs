//! Which agent lives on which remote hub, learned from the hubs' announcements.
//!
//! Each remote hub has a link: a [`Mailbox`] whose batches a publisher task turns into
//! frames. Sending to a remote agent is therefore the same code path as a local send:
//! batching, the bound (the outage buffer), ordering and counting all come for free.

use crate::id::IdMap;
use crate::mailbox::Mailbox;
use crate::AgentId;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One remote hub.
#[derive(Debug)]
pub(crate) struct RemoteNode {
    pub(crate) name: String,
    pub(crate) epoch: u64,
    pub(crate) link: Arc<Mailbox>,
    last_seen: Mutex<Instant>,
    agents: Mutex<HashSet<AgentId>>,
    /// The sequence number expected on the next frame from this hub.
    pub(crate) next_seq: AtomicU64,
    /// The connection generation in which this hub was last heard.
    heard: AtomicU64,
}

impl RemoteNode {
    pub(crate) fn agent_count(&self) -> usize {
        self.agents.lock().len()
    }

    pub(crate) fn seen(&self, generation: u64) {
        *self.last_seen.lock() = Instant::now();
        self.heard.fetch_max(generation, Ordering::AcqRel);
    }

    /// The connection generation in which this hub was last heard.
    pub(crate) fn heard_in(&self) -> u64 {
        self.heard.load(Ordering::Acquire)
    }

    /// Frames missing before `seq` (0 when in order); remembers `seq`.
    pub(crate) fn gap_before(&self, seq: u64) -> u64 {
        let expected = self.next_seq.swap(seq + 1, Ordering::AcqRel);
        seq.saturating_sub(expected)
    }
}

/// Shards of the agent map, as in the local registry: senders on different cores rarely
/// share a lock word.
const SHARDS: usize = 64;

type Shard = RwLock<IdMap<AgentId, Arc<RemoteNode>>>;

/// The directory of remote agents.
#[derive(Debug)]
pub(crate) struct Directory {
    shards: Box<[Shard]>,
    nodes: Mutex<HashMap<String, Arc<RemoteNode>>>,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            nodes: Mutex::default(),
        }
    }
}

impl Directory {
    fn shard(&self, id: &AgentId) -> &Shard {
        &self.shards[id.as_uuid().as_bytes()[0] as usize % SHARDS]
    }

    /// Runs `f` on the link of the hub that hosts `id`.
    pub(crate) fn with_link<R>(
        &self,
        id: AgentId,
        f: impl FnOnce(&Arc<Mailbox>) -> R,
    ) -> Option<R> {
        self.shard(&id).read().get(&id).map(|node| f(&node.link))
    }

    pub(crate) fn node(&self, name: &str) -> Option<Arc<RemoteNode>> {
        self.nodes.lock().get(name).cloned()
    }

    /// The node `name` at `epoch`, created with `link` when new. A new epoch (the hub
    /// restarted) replaces the old entry, which is returned for closing.
    pub(crate) fn upsert(
        &self,
        name: &str,
        epoch: u64,
        link: impl FnOnce() -> Arc<Mailbox>,
    ) -> (Arc<RemoteNode>, bool, Option<Arc<RemoteNode>>) {
        let mut nodes = self.nodes.lock();
        if let Some(node) = nodes.get(name) {
            if node.epoch == epoch {
                return (node.clone(), false, None);
            }
        }
        let node = Arc::new(RemoteNode {
            name: name.to_string(),
            epoch,
            link: link(),
            last_seen: Mutex::new(Instant::now()),
            agents: Mutex::new(HashSet::new()),
            next_seq: AtomicU64::new(1),
            heard: AtomicU64::new(0),
        });
        let old = nodes.insert(name.to_string(), node.clone());
        drop(nodes);
        if let Some(old) = &old {
            self.forget_agents(old);
        }
        (node, true, old)
    }

    /// Replaces the node's agent list.
    pub(crate) fn set_agents(&self, node: &Arc<RemoteNode>, agents: &[AgentId]) {
        let old: Vec<AgentId> = node.agents.lock().drain().collect();
        self.unmap(node, &old);
        self.add_agents(node, agents);
    }

    pub(crate) fn add_agents(&self, node: &Arc<RemoteNode>, agents: &[AgentId]) {
        let mut mine = node.agents.lock();
        for &id in agents {
            mine.insert(id);
            self.shard(&id).write().insert(id, node.clone());
        }
    }

    pub(crate) fn remove_agents(&self, node: &Arc<RemoteNode>, agents: &[AgentId]) {
        {
            let mut mine = node.agents.lock();
            for id in agents {
                mine.remove(id);
            }
        }
        self.unmap(node, agents);
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

    /// Removes a node and its agents; returns it for closing its link.
    pub(crate) fn remove_node(&self, name: &str, epoch: Option<u64>) -> Option<Arc<RemoteNode>> {
        let mut nodes = self.nodes.lock();
        if epoch.is_some_and(|e| nodes.get(name).is_some_and(|n| n.epoch != e)) {
            return None;
        }
        let node = nodes.remove(name)?;
        drop(nodes);
        self.forget_agents(&node);
        Some(node)
    }

    fn forget_agents(&self, node: &Arc<RemoteNode>) {
        let ids: Vec<AgentId> = node.agents.lock().iter().copied().collect();
        self.remove_agents(node, &ids);
    }

    /// Nodes silent for longer than `timeout`.
    pub(crate) fn silent_for(&self, timeout: std::time::Duration) -> Vec<String> {
        self.nodes
            .lock()
            .values()
            .filter(|n| n.last_seen.lock().elapsed() > timeout)
            .map(|n| n.name.clone())
            .collect()
    }

    pub(crate) fn nodes(&self) -> Vec<Arc<RemoteNode>> {
        self.nodes.lock().values().cloned().collect()
    }

    /// (remote hubs, remote agents).
    pub(crate) fn size(&self) -> (usize, usize) {
        let agents = self.shards.iter().map(|s| s.read().len()).sum();
        (self.nodes.lock().len(), agents)
    }
}
