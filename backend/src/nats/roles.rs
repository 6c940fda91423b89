//! The groups and capabilities of one remote hub, as it announced them: for each name, its
//! members there with the mailbox depth each had, and what this hub sent each since.
//!
//! A hub announces a name's whole member list whenever it changes and every name again
//! with each heartbeat (which refreshes the loads and repairs a lost announcement); an
//! empty list removes the name. The entry goes with the hub's directory entry, so a hub
//! that leaves or expires takes its members with it.

use crate::bus::{GroupKind, MemberLoad, RemoteLoad};
use crate::AgentId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Names one remote hub may announce; more are refused (a bound on what a hub holds for
/// another).
pub(crate) const MAX_ROLES_PER_HUB: usize = 10_000;

/// Bytes of one member in a JSON announcement (`{"id":"<36>","queued":<20>},`).
pub(crate) const MEMBER_JSON_BYTES: usize = 72;

/// A remote member.
#[derive(Debug)]
pub(crate) struct RemoteMember {
    pub(crate) id: AgentId,
    /// Its mailbox depth when its hub last announced the name.
    queued: u64,
    pub(crate) counters: Arc<RemoteLoad>,
}

impl RemoteMember {
    /// The estimated load: the larger of the announced depth and what this hub sent it
    /// since (its own messages are in that depth, so the two are not added).
    pub(crate) fn load(&self) -> u64 {
        let ours = self.counters.in_flight.load(Ordering::Relaxed)
            + self.counters.sent.load(Ordering::Relaxed);
        self.queued.max(ours)
    }
}

/// Why an announcement was not taken whole.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RoleUpdate {
    /// The name was refused: over [`MAX_ROLES_PER_HUB`].
    pub(crate) refused: bool,
}

/// One remote hub's groups and capabilities.
#[derive(Debug, Default)]
pub(crate) struct RemoteRoles {
    /// Groups, then capabilities.
    maps: Mutex<[HashMap<Box<str>, Vec<RemoteMember>>; 2]>,
}

fn index(kind: GroupKind) -> usize {
    match kind {
        GroupKind::Group => 0,
        GroupKind::Capability => 1,
    }
}

impl RemoteRoles {
    /// Replaces the members of `name` (none: the name is gone from this hub). Counters of
    /// members that stay are kept, with `sent` reset: the new depth includes those.
    pub(crate) fn set(&self, kind: GroupKind, name: &str, members: Vec<MemberLoad>) -> RoleUpdate {
        let mut maps = self.maps.lock();
        if members.is_empty() {
            maps[index(kind)].remove(name);
            return RoleUpdate::default();
        }
        let old = maps[index(kind)].remove(name);
        if old.is_none() && maps.iter().map(HashMap::len).sum::<usize>() >= MAX_ROLES_PER_HUB {
            return RoleUpdate { refused: true };
        }
        let mut old: HashMap<AgentId, Arc<RemoteLoad>> = old
            .into_iter()
            .flatten()
            .map(|m| (m.id, m.counters))
            .collect();
        let mut seen = std::collections::HashSet::with_capacity(members.len());
        let fresh = members
            .into_iter()
            .filter(|m| seen.insert(m.id))
            .map(|m| {
                let counters = old.remove(&m.id).unwrap_or_default();
                counters.sent.store(0, Ordering::Relaxed);
                RemoteMember {
                    id: m.id,
                    queued: m.queued,
                    counters,
                }
            })
            .collect();
        maps[index(kind)].insert(name.into(), fresh);
        RoleUpdate::default()
    }

    /// Removes `agents` from every name (they left their hub).
    pub(crate) fn remove_agents(&self, agents: &[AgentId]) {
        if agents.is_empty() {
            return;
        }
        let gone: std::collections::HashSet<&AgentId> = agents.iter().collect();
        for map in self.maps.lock().iter_mut() {
            map.retain(|_, members| {
                members.retain(|m| !gone.contains(&m.id));
                !members.is_empty()
            });
        }
    }

    /// The members of `name`.
    pub(crate) fn members(&self, kind: GroupKind, name: &str) -> Vec<AgentId> {
        self.with(kind, name, |members| members.iter().map(|m| m.id).collect())
            .unwrap_or_default()
    }

    /// Runs `f` on the members of `name`, if this hub has any.
    pub(crate) fn with<R>(
        &self,
        kind: GroupKind,
        name: &str,
        f: impl FnOnce(&[RemoteMember]) -> R,
    ) -> Option<R> {
        self.maps.lock()[index(kind)].get(name).map(|m| f(m))
    }

    /// How many names this hub announced.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.maps.lock().iter().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(id: AgentId, queued: u64) -> MemberLoad {
        MemberLoad { id, queued }
    }

    #[test]
    fn an_announcement_replaces_the_list_and_keeps_open_requests() {
        let roles = RemoteRoles::default();
        let (a, b) = (AgentId::new_v4(), AgentId::new_v4());
        roles.set(
            GroupKind::Group,
            "g",
            vec![load(a, 3), load(b, 0), load(b, 9)],
        );
        assert_eq!(
            roles.members(GroupKind::Group, "g"),
            vec![a, b],
            "duplicates dropped"
        );
        let counters = roles
            .with(GroupKind::Group, "g", |m| m[0].counters.clone())
            .unwrap();
        counters.in_flight.store(5, Ordering::Relaxed);
        counters.sent.store(2, Ordering::Relaxed);
        assert_eq!(roles.with(GroupKind::Group, "g", |m| m[0].load()), Some(7));
        roles.set(GroupKind::Group, "g", vec![load(a, 1)]);
        // Open requests stay counted; messages sent before the announcement are in its depth.
        assert_eq!(roles.with(GroupKind::Group, "g", |m| m[0].load()), Some(5));
        assert!(
            roles.members(GroupKind::Capability, "g").is_empty(),
            "kinds are apart"
        );
        roles.remove_agents(&[a]);
        assert_eq!(roles.len(), 0, "a name without members is gone");
    }

    #[test]
    fn names_past_the_bound_are_refused() {
        let roles = RemoteRoles::default();
        let id = AgentId::new_v4();
        for i in 0..MAX_ROLES_PER_HUB {
            assert!(
                !roles
                    .set(GroupKind::Capability, &format!("c{i}"), vec![load(id, 0)])
                    .refused
            );
        }
        assert!(
            roles
                .set(GroupKind::Capability, "one-more", vec![load(id, 0)])
                .refused
        );
        // A known name is still updated, and removing one makes room.
        assert!(
            !roles
                .set(GroupKind::Capability, "c0", vec![load(id, 1)])
                .refused
        );
        roles.set(GroupKind::Capability, "c1", Vec::new());
        assert!(
            !roles
                .set(GroupKind::Capability, "one-more", vec![load(id, 0)])
                .refused
        );
        assert_eq!(roles.len(), MAX_ROLES_PER_HUB);
    }
}
