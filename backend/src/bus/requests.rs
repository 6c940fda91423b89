//! Requests waiting for their replies, sharded so concurrent requesters rarely share a lock.
//!
//! An entry is owned by a [`Pending`] guard held by the requesting future, so it leaves the
//! table whichever way the request ends: answered, timed out, failed, or abandoned.

use crate::id::IdMap;
use crate::{AgentId, Envelope, MessageId};
use parking_lot::Mutex;
use tokio::sync::oneshot;

const SHARDS: usize = 16;

/// A request waiting: who was asked, and where the reply goes.
#[derive(Debug)]
struct Waiting {
    responder: AgentId,
    tx: oneshot::Sender<Envelope>,
}

type Shard = Mutex<IdMap<MessageId, Waiting>>;

#[derive(Debug, Default)]
pub(crate) struct Requests {
    shards: [Shard; SHARDS],
}

/// Why [`Requests::take_if`] gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotTaken {
    /// No such request waits (answered, timed out, or never asked).
    Missing,
    /// It waits, but not for this sender: the entry stays for the real reply.
    Refused,
}

impl Requests {
    fn shard(&self, id: MessageId) -> &Shard {
        &self.shards[id.as_uuid().as_bytes()[15] as usize % SHARDS]
    }

    /// Registers a request to `responder`; the entry lives as long as the returned guard
    /// (or until a reply or timeout takes it), so a requester that stops waiting leaves
    /// nothing behind.
    pub(crate) fn insert(
        &self,
        id: MessageId,
        responder: AgentId,
    ) -> (Pending<'_>, oneshot::Receiver<Envelope>) {
        let (tx, rx) = oneshot::channel();
        self.shard(id).lock().insert(id, Waiting { responder, tx });
        (
            Pending {
                requests: self,
                id,
                armed: true,
            },
            rx,
        )
    }

    pub(crate) fn take(&self, id: MessageId) -> Option<oneshot::Sender<Envelope>> {
        self.shard(id).lock().remove(&id).map(|w| w.tx)
    }

    /// Takes the request only if `may_answer` accepts the agent it was sent to (a reply
    /// from the wire must come from the hub that hosts that agent).
    pub(crate) fn take_if(
        &self,
        id: MessageId,
        may_answer: impl FnOnce(AgentId) -> bool,
    ) -> Result<oneshot::Sender<Envelope>, NotTaken> {
        let mut shard = self.shard(id).lock();
        let responder = shard.get(&id).ok_or(NotTaken::Missing)?.responder;
        if !may_answer(responder) {
            return Err(NotTaken::Refused);
        }
        shard.remove(&id).map(|w| w.tx).ok_or(NotTaken::Missing)
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
    armed: bool,
}

impl Pending<'_> {
    /// The reply (or shutdown) already removed the entry: skip the second lookup, which
    /// was 3% of a round trip.
    pub(crate) fn answered(mut self) {
        self.armed = false;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.requests.take(self.id);
        }
    }
}
