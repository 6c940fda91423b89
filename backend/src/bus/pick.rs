//! Choosing the member of a group (or an agent with a capability) that a message goes to,
//! on this hub or another, and telling other hubs when this hub's members change.
//!
//! The rule: a local member with an empty mailbox wins at once (no hop, nobody waiting).
//! Else the least loaded member anywhere: a local member's load is its mailbox depth; a
//! remote member's is estimated as the larger of the depth its hub last announced and
//! what this hub sent it since (requests not answered yet, messages sent after that
//! announcement). A local member wins ties.

use super::groups::{GroupKind, Groups};
use super::registry::AgentSlot;
use super::state::Bus;
use super::transport::RemoteLoad;
use crate::metrics::{GroupMember, GroupStats};
use crate::{AgentId, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The member a message goes to.
#[derive(Debug)]
pub(crate) struct Picked {
    pub(crate) to: AgentId,
    /// Set for a member on another hub.
    remote: Option<Arc<RemoteLoad>>,
}

impl Picked {
    /// A message (not a request) went to it.
    pub(crate) fn sent(&self) {
        if let Some(load) = &self.remote {
            load.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request goes to it: counted in its load until the guard drops.
    pub(crate) fn in_flight(&self) -> InFlight {
        if let Some(load) = &self.remote {
            load.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(self.remote.clone())
    }
}

/// A request counted in a remote member's load while it is open.
#[derive(Debug)]
pub(crate) struct InFlight(Option<Arc<RemoteLoad>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(load) = &self.0 {
            load.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Bus {
    fn roles(&self, kind: GroupKind) -> &Groups {
        match kind {
            GroupKind::Group => &self.groups,
            GroupKind::Capability => &self.capabilities,
        }
    }

    /// `slot` joins group or capability `name`.
    ///
    /// # Errors
    /// `InvalidName`.
    pub(crate) fn join_role(&self, kind: GroupKind, slot: &AgentSlot, name: &str) -> Result<()> {
        let kept = match kind {
            GroupKind::Group => &slot.groups,
            GroupKind::Capability => &slot.capabilities,
        };
        let joined = self
            .roles(kind)
            .join(slot, name, kept)
            .or_else(|e| self.metrics.fail(e))?;
        if let (Some(name), Some(transport)) = (joined, self.transport()) {
            transport.roles_changed(kind, &name);
        }
        Ok(())
    }

    /// `slot` leaves group `name`; false when it was not in it.
    pub(crate) fn leave_group(&self, slot: &AgentSlot, name: &str) -> bool {
        let Some(name) = self.groups.leave(slot.id, name, &slot.groups) else {
            return false;
        };
        if let Some(transport) = self.transport() {
            transport.roles_changed(GroupKind::Group, &name);
        }
        true
    }

    /// `slot` leaves every group and capability (it leaves the hub).
    pub(crate) fn leave_roles(&self, slot: &AgentSlot) {
        let groups = self.groups.leave_all(slot.id, &slot.groups);
        let capabilities = self.capabilities.leave_all(slot.id, &slot.capabilities);
        if let Some(transport) = self.transport() {
            for name in &groups {
                transport.roles_changed(GroupKind::Group, name);
            }
            for name in &capabilities {
                transport.roles_changed(GroupKind::Capability, name);
            }
        }
    }

    /// The member of `name` a message goes to (see the module's rule).
    ///
    /// # Errors
    /// `UnknownGroup` or `NoCapableAgent` when `name` has no member on any hub.
    pub(crate) fn pick(&self, from: &AgentSlot, kind: GroupKind, name: &str) -> Result<Picked> {
        let turn = from.turn.fetch_add(1, Ordering::Relaxed);
        let local = self.roles(kind).pick(name, turn);
        if let Some((to, 0)) = local {
            return Ok(Picked { to, remote: None });
        }
        let remote = self
            .transport()
            .and_then(|transport| transport.remote_pick(kind, name));
        match (local, remote) {
            (Some((to, depth)), Some(r)) if depth as u64 <= r.load => {
                Ok(Picked { to, remote: None })
            }
            (_, Some(r)) => Ok(Picked {
                to: r.id,
                remote: Some(r.counters),
            }),
            (Some((to, _)), None) => Ok(Picked { to, remote: None }),
            (None, None) => self.metrics.fail(self.roles(kind).none(name)),
        }
    }

    /// The groups with a member here, largest first, at most `limit`.
    pub(crate) fn group_stats(&self, limit: usize) -> Vec<GroupStats> {
        self.groups
            .loads(limit)
            .into_iter()
            .map(|(name, members)| GroupStats {
                remote_members: self.transport().map_or(0, |t| {
                    t.remote_members(GroupKind::Group, &name).len() as u64
                }),
                members: members
                    .into_iter()
                    .map(|m| GroupMember {
                        id: m.id,
                        queued: m.queued,
                    })
                    .collect(),
                name,
            })
            .collect()
    }

    /// Every member of `name`: this hub's first, in the order they joined, then other hubs'.
    pub(crate) fn members(&self, kind: GroupKind, name: &str) -> Vec<AgentId> {
        let mut all = self.roles(kind).members(name);
        if let Some(transport) = self.transport() {
            all.extend(transport.remote_members(kind, name));
        }
        all
    }
}
