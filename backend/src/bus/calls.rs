//! Requests from agents on other hubs that local agents are working on: a cancel frame
//! from the requester's hub finds its request here. Entries are weak (the request envelope
//! owns its call), so a request its callee dropped costs nothing but a pruned slot.

use crate::call::{Call, CancelBy};
use crate::id::IdMap;
use crate::{AgentId, MessageId};
use parking_lot::Mutex;
use std::sync::{Arc, Weak};

const SHARDS: usize = 16;
/// Inserts into one shard between two sweeps of its dead entries.
const SWEEP_EVERY: u32 = 1024;

#[derive(Debug, Default)]
struct Shard {
    calls: IdMap<MessageId, (AgentId, Weak<Call>)>,
    inserts: u32,
}

/// What a cancel from the wire found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    Cancelled,
    /// Already cancelled, answered, or dropped by its callee.
    AlreadyOver,
    /// No such request from that requester: unknown, or a forged requester.
    Unknown,
}

#[derive(Debug, Default)]
pub(crate) struct Calls {
    shards: [Mutex<Shard>; SHARDS],
}

impl Calls {
    fn shard(&self, id: MessageId) -> &Mutex<Shard> {
        &self.shards[id.as_uuid().as_bytes()[15] as usize % SHARDS]
    }

    /// A request from `requester` on another hub: its new call, tracked until it is over.
    pub(crate) fn open(&self, id: MessageId, requester: AgentId) -> Arc<Call> {
        let call = Arc::new(Call::default());
        let mut shard = self.shard(id).lock();
        shard.inserts += 1;
        if shard.inserts >= SWEEP_EVERY {
            shard.inserts = 0;
            shard.calls.retain(|_, (_, call)| call.strong_count() > 0);
        }
        shard.calls.insert(id, (requester, Arc::downgrade(&call)));
        call
    }

    /// The request was answered: no cancel needs to find it any more.
    pub(crate) fn close(&self, id: MessageId) {
        self.shard(id).lock().calls.remove(&id);
    }

    /// A cancel from the wire, sent by `from`: only the requester can cancel its request.
    pub(crate) fn cancel(&self, id: MessageId, from: AgentId) -> CancelOutcome {
        let mut shard = self.shard(id).lock();
        let Some((requester, call)) = shard.calls.get(&id) else {
            return CancelOutcome::Unknown;
        };
        if *requester != from {
            return CancelOutcome::Unknown;
        }
        let call = call.upgrade();
        shard.calls.remove(&id);
        drop(shard);
        match call {
            Some(call) if call.cancel(CancelBy::Caller) => CancelOutcome::Cancelled,
            _ => CancelOutcome::AlreadyOver,
        }
    }

    /// Requests from other hubs tracked now (dead entries included until swept).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().calls.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_requester_cancels_and_dead_entries_are_swept() {
        let calls = Calls::default();
        let (id, requester) = (MessageId::new_v4(), AgentId::new_v4());
        let call = calls.open(id, requester);
        assert_eq!(calls.cancel(id, AgentId::new_v4()), CancelOutcome::Unknown);
        assert!(call.cancelled_by().is_none(), "a stranger cannot cancel it");
        assert_eq!(calls.cancel(id, requester), CancelOutcome::Cancelled);
        assert_eq!(call.cancelled_by(), Some(CancelBy::Caller));
        assert_eq!(calls.cancel(id, requester), CancelOutcome::Unknown);

        // Calls whose request was dropped leave no entry behind for long.
        for _ in 0..(SWEEP_EVERY as usize * SHARDS * 2) {
            drop(calls.open(MessageId::new_v4(), requester));
        }
        assert!(
            calls.len() <= SWEEP_EVERY as usize * SHARDS,
            "{}",
            calls.len()
        );
    }
}
