//! This hub's agents cut into parts of bounded size, for the directory in JetStream
//! key-value (`directory.rs`): one key per part, so a join or a leave rewrites one part,
//! never the whole list, and no value outgrows the server's `max_payload`.
//!
//! An agent keeps its part until it leaves; a newcomer takes the lowest part with room.
//! Every operation costs O(1) in the number of agents (the lowest open part comes from
//! an ordered set of part numbers).

use crate::AgentId;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// One part: its agents and when it was last written.
#[derive(Debug, Default)]
struct Part {
    agents: HashSet<AgentId>,
    dirty: bool,
    written: Option<Instant>,
}

/// A part due to be written: its number and its agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DuePart {
    pub(crate) index: u32,
    pub(crate) agents: Vec<AgentId>,
}

/// This hub's agents in parts.
#[derive(Debug)]
pub(crate) struct Roster {
    capacity: usize,
    parts: Vec<Part>,
    home: HashMap<AgentId, u32>,
    /// Parts with room.
    open: BTreeSet<u32>,
    /// Parts that disappeared from the end (their keys are to be deleted).
    removed: Vec<u32>,
}

impl Roster {
    /// An empty roster of parts of at most `capacity` agents (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            parts: Vec::new(),
            home: HashMap::new(),
            open: BTreeSet::new(),
            removed: Vec::new(),
        }
    }

    /// Agents in the roster.
    pub(crate) fn len(&self) -> usize {
        self.home.len()
    }

    /// Parts in use (numbered from 0).
    pub(crate) fn parts(&self) -> u32 {
        u32::try_from(self.parts.len()).unwrap_or(u32::MAX)
    }

    /// Adds an agent (again: nothing changes).
    pub(crate) fn join(&mut self, id: AgentId) {
        if self.home.contains_key(&id) {
            return;
        }
        let index = match self.open.first() {
            Some(&index) => index,
            None => {
                self.parts.push(Part::default());
                let index = self.parts() - 1;
                self.removed.retain(|&r| r != index);
                self.open.insert(index);
                index
            }
        };
        let part = &mut self.parts[index as usize];
        part.agents.insert(id);
        part.dirty = true;
        if part.agents.len() >= self.capacity {
            self.open.remove(&index);
        }
        self.home.insert(id, index);
    }

    /// Removes an agent (unknown: nothing changes). Empty parts at the end go away.
    pub(crate) fn leave(&mut self, id: AgentId) {
        let Some(index) = self.home.remove(&id) else {
            return;
        };
        let part = &mut self.parts[index as usize];
        part.agents.remove(&id);
        part.dirty = true;
        self.open.insert(index);
        while self.parts.last().is_some_and(|p| p.agents.is_empty()) {
            self.parts.pop();
            let gone = self.parts();
            self.open.remove(&gone);
            self.removed.push(gone);
        }
    }

    /// Parts to write now: changed ones, and those last written `refresh` ago or more (so
    /// no key outlives the bucket's `max_age` while the hub runs). Marked written at `now`.
    pub(crate) fn take_due(&mut self, now: Instant, refresh: Duration) -> Vec<DuePart> {
        let mut due = Vec::new();
        for (index, part) in self.parts.iter_mut().enumerate() {
            let stale = part
                .written
                .is_none_or(|at| now.saturating_duration_since(at) >= refresh);
            if part.dirty || stale {
                part.dirty = false;
                part.written = Some(now);
                due.push(DuePart {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    agents: part.agents.iter().copied().collect(),
                });
            }
        }
        due
    }

    /// A part whose write failed: written again at the next turn.
    pub(crate) fn failed(&mut self, index: u32) {
        if let Some(part) = self.parts.get_mut(index as usize) {
            part.dirty = true;
        }
    }

    /// Part numbers that went away since the last call (their keys are to be deleted).
    pub(crate) fn take_removed(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<AgentId> {
        (0..n).map(|_| AgentId::new_v4()).collect()
    }

    #[test]
    fn a_change_rewrites_only_its_part() {
        let mut r = Roster::new(10);
        let agents = ids(35);
        for &id in &agents {
            r.join(id);
        }
        assert_eq!(r.parts(), 4);
        let now = Instant::now();
        let refresh = Duration::from_secs(15);
        assert_eq!(
            r.take_due(now, refresh).len(),
            4,
            "first turn writes every part"
        );
        assert!(r.take_due(now, refresh).is_empty(), "nothing changed");
        r.leave(agents[12]);
        let due = r.take_due(now, refresh);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].index, 1);
        assert_eq!(due[0].agents.len(), 9);
        // The newcomer fills the hole, not a new part.
        r.join(AgentId::new_v4());
        assert_eq!(r.take_due(now, refresh)[0].index, 1);
        assert_eq!(r.parts(), 4);
        // Everything is rewritten once `refresh` has passed.
        assert_eq!(r.take_due(now + refresh, refresh).len(), 4);
    }

    #[test]
    fn empty_parts_at_the_end_are_removed_and_a_failed_write_is_retried() {
        let mut r = Roster::new(2);
        let agents = ids(5);
        for &id in &agents {
            r.join(id);
        }
        assert_eq!(r.parts(), 3);
        r.leave(agents[4]);
        r.leave(agents[3]);
        assert_eq!(r.parts(), 2, "part 2 is empty and at the end");
        assert_eq!(r.take_removed(), vec![2]);
        r.leave(agents[0]);
        r.leave(agents[1]);
        assert_eq!(r.parts(), 2, "part 0 is empty but part 1 is not");
        let now = Instant::now();
        let refresh = Duration::from_secs(60);
        let due = r.take_due(now, refresh);
        assert_eq!(due.len(), 2);
        r.failed(due[0].index);
        assert_eq!(r.take_due(now, refresh).len(), 1, "written again");
        r.leave(agents[2]);
        assert_eq!(r.parts(), 0);
        // A part number that comes back before the next turn is not deleted after all.
        r.join(agents[0]);
        assert_eq!(r.take_removed(), vec![1]);
    }

    proptest! {
        #[test]
        fn parts_hold_every_agent_once_within_capacity(
            ops in proptest::collection::vec((any::<bool>(), 0usize..64), 1..400),
            capacity in 1usize..9,
        ) {
            let pool = ids(64);
            let mut r = Roster::new(capacity);
            let mut want = HashSet::new();
            for (join, i) in ops {
                if join { r.join(pool[i]); want.insert(pool[i]); }
                else { r.leave(pool[i]); want.remove(&pool[i]); }
            }
            let due = r.take_due(Instant::now(), Duration::ZERO);
            let mut seen = HashSet::new();
            for part in &due {
                prop_assert!(part.agents.len() <= capacity);
                for id in &part.agents { prop_assert!(seen.insert(*id), "an agent in two parts"); }
            }
            prop_assert_eq!(&seen, &want);
            prop_assert_eq!(r.len(), want.len());
            prop_assert_eq!(due.len() as u32, r.parts());
            // Parts never outnumber what the agents need by more than the holes churn left.
            prop_assert!(r.parts() as usize <= 64usize.div_ceil(capacity).max(1));
        }
    }
}
