//! Requests waiting for their replies, sharded so concurrent requesters rarely share a lock.

use crate::id::IdMap;
use crate::{Envelope, MessageId};
use parking_lot::Mutex;
use tokio::sync::oneshot;

const SHARDS: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Requests {
    shards: [Mutex<IdMap<MessageId, oneshot::Sender<Envelope>>>; SHARDS],
}

impl Requests {
    fn shard(&self, id: MessageId) -> &Mutex<IdMap<MessageId, oneshot::Sender<Envelope>>> {
        &self.shards[id.as_uuid().as_bytes()[15] as usize % SHARDS]
    }

    pub(crate) fn insert(&self, id: MessageId) -> oneshot::Receiver<Envelope> {
        let (tx, rx) = oneshot::channel();
        self.shard(id).lock().insert(id, tx);
        rx
    }

    pub(crate) fn take(&self, id: MessageId) -> Option<oneshot::Sender<Envelope>> {
        self.shard(id).lock().remove(&id)
    }

    /// Drops every waiting request (their requesters see the hub shut down).
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().clear();
        }
    }
}
