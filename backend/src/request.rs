//! Requests waiting for their replies, sharded so concurrent requesters rarely share a lock.
//!
//! An entry is owned by a [`Pending`] guard held by the requesting future, so it leaves the
//! table whichever way the request ends: answered, timed out, failed, or abandoned.

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

    /// Registers a request; the entry lives as long as the returned guard (or until a
    /// reply or timeout takes it), so a requester that stops waiting leaves nothing behind.
    pub(crate) fn insert(&self, id: MessageId) -> (Pending<'_>, oneshot::Receiver<Envelope>) {
        let (tx, rx) = oneshot::channel();
        self.shard(id).lock().insert(id, tx);
        (Pending { requests: self, id }, rx)
    }

    pub(crate) fn take(&self, id: MessageId) -> Option<oneshot::Sender<Envelope>> {
        self.shard(id).lock().remove(&id)
    }

    /// Requests waiting for their reply now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Drops every waiting request (their requesters see the hub shut down).
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().clear();
        }
    }
}

/// Removes its request's entry when dropped: on return, on error, and when the future
/// awaiting the reply is dropped before it (a `select!` whose other branch won). Removing
/// an entry a reply already took is a no-op.
#[derive(Debug)]
pub(crate) struct Pending<'a> {
    requests: &'a Requests,
    id: MessageId,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.requests.take(self.id);
    }
}
