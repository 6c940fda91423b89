//! The swarm's directory in JetStream key-value (bucket `SWARMBUS_<swarm>_DIR`), so a
//! hub that starts or restarts knows the swarm at once instead of after the next
//! announcements.
//!
//! Each hub keeps two kinds of entries:
//! - `<node>`: its heartbeat entry ([`HubEntry`]: epoch, number of parts, agent count),
//!   rewritten every heartbeat;
//! - `<node>.<i>`: part `i` of its agent list ([`PartEntry`], `roster.rs`), rewritten when
//!   it changes and at least every half of the bucket's `max_age`.
//!
//! Entries expire with the bucket's `max_age` (`directory_ttl`), so a hub that stops
//! without a goodbye drops out of what newly started hubs read; a goodbye removes them at
//! once (`Durable::forget_directory`). The bucket only speeds up a start: the
//! announcements on core NATS stay the truth, and a hello corrects what a stale entry
//! said. Values are sealed with the swarm key like every other message, and what fails to
//! open or parse is refused and counted.

use super::context::{hub_key, part_key, Durable};
use super::roster::Roster;
use crate::bus::Inbound;
use crate::nats::bridge::{signing_room, Bridge, LocalChange};
use crate::nats::stats::BridgeStats;
use crate::AgentId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// A hub's heartbeat entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HubEntry {
    pub(crate) epoch: u64,
    pub(crate) parts: u32,
    pub(crate) agents: u64,
}

/// One part of a hub's agent list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartEntry {
    pub(crate) epoch: u64,
    pub(crate) part: u32,
    pub(crate) agents: Vec<AgentId>,
}

/// Agents per part at most (a part of 4,096 ids is about 160 KB of JSON).
const PART_AGENTS: usize = 4096;
/// Keys read at start, at most.
const MAX_KEYS: usize = 1_000_000;
/// Reads in flight at once while loading.
const READS_IN_FLIGHT: usize = 32;

/// The subject a key's value is sealed for.
fn sealed_for(durable: &Durable, key: &str) -> String {
    format!("$KV.{}.{key}", durable.directory_bucket)
}

/// What one key held, once opened and parsed.
enum Read {
    Hub(String, HubEntry),
    Part(String, PartEntry),
}

/// Reads the bucket and puts every other hub it names, with its agents, in the
/// directory. Returns the agents learned. Bounded by `node_timeout`; a failure is logged
/// and counted, never fatal (the announcements follow anyway).
pub(crate) async fn load(bridge: &Arc<Bridge>, durable: &Durable) -> u64 {
    let limit = bridge.config.node_timeout;
    match tokio::time::timeout(limit, read_all(bridge, durable)).await {
        Ok(Ok(reads)) => apply(bridge, durable, reads),
        Ok(Err(e)) => {
            durable.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "swarmbus::nats", "directory bucket {}: {e}; the swarm is learned from announcements", durable.directory_bucket);
            0
        }
        Err(_) => {
            durable.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "swarmbus::nats", "directory bucket {} not read within {limit:?}; the swarm is learned from announcements", durable.directory_bucket);
            0
        }
    }
}

async fn read_all(bridge: &Bridge, durable: &Durable) -> Result<Vec<Read>, String> {
    use futures_util::{StreamExt, TryStreamExt};
    let kv = &durable.directory;
    let keys: Vec<String> = kv
        .keys()
        .await
        .map_err(|e| e.to_string())?
        .take(MAX_KEYS)
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let reads = futures_util::stream::iter(keys)
        .map(|key| async move {
            let value = kv.get(key.as_str()).await;
            (key, value)
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::with_capacity(reads.len());
    for (key, value) in reads {
        match value {
            // Gone since it was listed (expired, purged).
            Ok(None) => {}
            Ok(Some(value)) => match parse(bridge, durable, &key, value) {
                Some(read) => out.push(read),
                None => {
                    durable
                        .stats
                        .directory_refused
                        .fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(e) => return Err(format!("reading {key}: {e}")),
        }
    }
    Ok(out)
}

/// Opens and parses one value; `None` for what is refused.
fn parse(bridge: &Bridge, durable: &Durable, key: &str, value: bytes::Bytes) -> Option<Read> {
    let body = bridge.open(&sealed_for(durable, key), value).ok()?;
    let (node, part) = match key.split_once('.') {
        Some((node, part)) => (node, Some(part)),
        None => (key, None),
    };
    if !crate::nats::config::is_token(node) || node.len() > 64 {
        return None;
    }
    match part {
        None => {
            let entry: HubEntry = serde_json::from_slice(&body).ok()?;
            (entry.epoch > 0).then(|| Read::Hub(node.to_string(), entry))
        }
        Some(part) => {
            let entry: PartEntry = serde_json::from_slice(&body).ok()?;
            (part.parse::<u32>().ok()? == entry.part).then(|| Read::Part(node.to_string(), entry))
        }
    }
}

/// Puts what was read in the directory: a hub's agents are the parts of its current
/// epoch named by its heartbeat entry. Returns the agents learned.
fn apply(bridge: &Arc<Bridge>, durable: &Durable, reads: Vec<Read>) -> u64 {
    let mut hubs = HashMap::new();
    let mut parts: HashMap<String, Vec<PartEntry>> = HashMap::new();
    for read in reads {
        match read {
            Read::Hub(node, entry) => {
                hubs.insert(node, entry);
            }
            Read::Part(node, entry) => parts.entry(node).or_default().push(entry),
        }
    }
    let mut learned = 0;
    for (name, hub) in hubs {
        if name == bridge.config.node {
            // Our own entry, from before a restart: rewritten by this instance.
            continue;
        }
        let agents: Vec<AgentId> = parts
            .remove(&name)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.epoch == hub.epoch && p.part < hub.parts)
            .flat_map(|p| p.agents)
            .collect();
        let Some(node) = crate::nats::outbound::node_entry(bridge, &name, hub.epoch, false) else {
            // An older instance than one we know, or a hub that said goodbye.
            continue;
        };
        node.seen(bridge.generation());
        let refused = bridge
            .directory
            .add_agents(&node, &agents, |id| bridge.bus.hosts(id));
        if refused.count > 0 {
            BridgeStats::add(&bridge.stats.claim_conflicts, refused.count);
        }
        learned += (agents.len() as u64).saturating_sub(refused.count);
    }
    durable
        .stats
        .directory_loaded
        .fetch_add(learned, Ordering::Relaxed);
    if learned > 0 {
        tracing::info!(target: "swarmbus::nats", "directory bucket: {learned} remote agents known at start");
    }
    learned
}

/// The writer: keeps this hub's entries in the bucket until the hub is gone.
pub(crate) async fn run(
    bus: Inbound,
    bridge: Arc<Bridge>,
    durable: Arc<Durable>,
    changes: flume::Receiver<LocalChange>,
) {
    let room = bridge.max_message.saturating_sub(signing_room());
    let capacity = crate::nats::control::agents_per_part(room).min(PART_AGENTS);
    let mut roster = Roster::new(capacity);
    // Changes queued before this snapshot are applied after it: a join is idempotent and
    // a leave of an agent the snapshot lacks changes nothing.
    for id in bus.agents() {
        roster.join(id);
    }
    let writer = Writer {
        bridge,
        durable,
        roster,
    };
    writer.run(bus, changes).await;
}

struct Writer {
    bridge: Arc<Bridge>,
    durable: Arc<Durable>,
    roster: Roster,
}

impl Writer {
    async fn run(mut self, bus: Inbound, changes: flume::Receiver<LocalChange>) {
        let mut beat = tokio::time::interval(self.bridge.config.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = changes.recv_async() => {
                    let Ok(change) = change else { return };
                    for change in std::iter::once(change).chain(changes.try_iter()) {
                        match change {
                            LocalChange::Joined(id) => self.roster.join(id),
                            LocalChange::Left(id) => self.roster.leave(id),
                            LocalChange::Role(..) => {}
                        }
                    }
                }
                _ = beat.tick() => {
                    if bus.is_gone() {
                        return;
                    }
                    if self.bridge.is_connected() {
                        self.write().await;
                    }
                }
            }
        }
    }

    /// One turn: the parts due, the parts gone, then the heartbeat entry (which names the
    /// parts, so a reader never looks for a part not written yet).
    async fn write(&mut self) {
        let node = self.bridge.config.node.clone();
        let epoch = self.bridge.epoch;
        for part in self
            .roster
            .take_due(Instant::now(), self.durable.directory_refresh)
        {
            let entry = PartEntry {
                epoch,
                part: part.index,
                agents: part.agents,
            };
            if !self.put(&part_key(&node, part.index), &entry).await {
                self.roster.failed(part.index);
            }
        }
        for gone in self.roster.take_removed() {
            let key = part_key(&node, gone);
            if let Err(e) = self.durable.directory.purge(&key).await {
                // It expires with the bucket's max_age; readers ignore it meanwhile (the
                // heartbeat entry no longer names it).
                self.durable.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "swarmbus::nats", "directory: could not remove {key}: {e}");
            }
        }
        let parts = self.roster.parts();
        self.durable
            .directory_parts
            .fetch_max(parts, Ordering::AcqRel);
        let entry = HubEntry {
            epoch,
            parts,
            agents: self.roster.len() as u64,
        };
        self.put(&hub_key(&node), &entry).await;
    }

    /// Writes one sealed value; false when it failed (counted and logged).
    async fn put(&self, key: &str, value: &impl Serialize) -> bool {
        let result = match serde_json::to_vec(value) {
            Ok(json) => {
                let mut body = bytes::BytesMut::with_capacity(json.len() + signing_room());
                body.extend_from_slice(&json);
                let sealed = self.bridge.seal(&sealed_for(&self.durable, key), body);
                self.durable
                    .directory
                    .put(key, sealed)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                self.durable
                    .stats
                    .directory_writes
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.durable.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "swarmbus::nats", "directory: could not write {key}: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_as_json() {
        let part = PartEntry {
            epoch: 7,
            part: 2,
            agents: vec![AgentId::new_v4(), AgentId::new_v4()],
        };
        let json = serde_json::to_vec(&part).unwrap();
        assert_eq!(serde_json::from_slice::<PartEntry>(&json).unwrap(), part);
        let hub = HubEntry {
            epoch: 7,
            parts: 3,
            agents: 9000,
        };
        let json = serde_json::to_vec(&hub).unwrap();
        assert_eq!(serde_json::from_slice::<HubEntry>(&json).unwrap(), hub);
    }

    #[test]
    fn a_full_part_fits_a_one_mebibyte_server() {
        let part = PartEntry {
            epoch: u64::MAX,
            part: u32::MAX,
            agents: (0..PART_AGENTS).map(|_| AgentId::new_v4()).collect(),
        };
        let json = serde_json::to_vec(&part).unwrap();
        assert!(json.len() + signing_room() < 1 << 20, "{}", json.len());
    }
}
