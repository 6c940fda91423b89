//! Requests waiting for their answers, sharded so concurrent requesters rarely share a lock.
//!
//! A plain request waits for one reply (a oneshot); a streamed one reads chunks from a
//! bounded channel until the final one. An entry is owned by its requester — a [`Pending`]
//! guard, or the `ReplyStream` — so it leaves the table whichever way the request ends:
//! answered, timed out, cancelled, or abandoned.

use crate::call::{Call, CancelBy};
use crate::id::IdMap;
use crate::{AgentId, Envelope, MessageId};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

const SHARDS: usize = 16;

/// Where the answer to a request goes.
#[derive(Debug)]
pub(crate) enum ReplyTo {
    /// `request`: the final chunk only.
    Once(oneshot::Sender<Envelope>),
    /// `request_stream`: every chunk, in order.
    Stream(flume::Sender<Envelope>),
}

/// A request waiting: who was asked, where the answer goes, and its cancellation state.
#[derive(Debug)]
struct Waiting {
    responder: AgentId,
    to: ReplyTo,
    call: Arc<Call>,
}

type Shard = Mutex<IdMap<MessageId, Waiting>>;

#[derive(Debug, Default)]
pub(crate) struct Requests {
    shards: [Shard; SHARDS],
    /// Streamed requests waiting now (a gauge; counting entries would cost per request).
    streams: AtomicUsize,
    /// Requests cancelled, by [`CancelBy`] (index `by as usize - 1`).
    cancels: [AtomicU64; 3],
}

/// Why a lookup gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotTaken {
    /// No such request waits (answered, timed out, or never asked).
    Missing,
    /// It waits, but not for this sender: the entry stays for the real answer.
    Refused,
}

/// What a chunk from the wire found.
#[derive(Debug)]
pub(crate) enum ChunkTo {
    /// A stream: send the chunk here.
    Stream(flume::Sender<Envelope>),
    /// A plain request, which takes only the final chunk.
    Once,
}

impl Requests {
    fn shard(&self, id: MessageId) -> &Shard {
        &self.shards[id.as_uuid().as_bytes()[15] as usize % SHARDS]
    }

    fn removed(&self, w: Waiting) -> Waiting {
        if matches!(w.to, ReplyTo::Stream(_)) {
            self.streams.fetch_sub(1, Ordering::Relaxed);
        }
        w
    }

    fn remove(&self, id: MessageId) -> Option<Waiting> {
        let w = self.shard(id).lock().remove(&id);
        w.map(|w| self.removed(w))
    }

    /// Registers a plain request to `responder`; the entry lives as long as the returned
    /// guard (or until a reply, timeout or shutdown takes it).
    /// `abandoned` runs when the guard drops unanswered (the callee on another hub must
    /// hear of it).
    pub(crate) fn insert<'a>(
        &'a self,
        id: MessageId,
        responder: AgentId,
        call: Arc<Call>,
        abandoned: Option<Abandoned<'a>>,
    ) -> (Pending<'a>, oneshot::Receiver<Envelope>) {
        let (tx, rx) = oneshot::channel();
        let waiting = Waiting {
            responder,
            to: ReplyTo::Once(tx),
            call: call.clone(),
        };
        self.shard(id).lock().insert(id, waiting);
        (
            Pending {
                requests: self,
                id,
                call,
                abandoned,
                armed: true,
            },
            rx,
        )
    }

    /// Registers a streamed request; the caller removes it with [`close`](Self::close).
    pub(crate) fn insert_stream(
        &self,
        id: MessageId,
        responder: AgentId,
        call: Arc<Call>,
        capacity: usize,
    ) -> flume::Receiver<Envelope> {
        let (tx, rx) = flume::bounded(capacity);
        let waiting = Waiting {
            responder,
            to: ReplyTo::Stream(tx),
            call,
        };
        self.shard(id).lock().insert(id, waiting);
        self.streams.fetch_add(1, Ordering::Relaxed);
        rx
    }

    /// Removes a request (its requester stopped waiting, or its responder went away).
    pub(crate) fn close(&self, id: MessageId) {
        self.remove(id);
    }

    /// Takes the request for its final answer.
    pub(crate) fn take(&self, id: MessageId) -> Option<ReplyTo> {
        self.remove(id).map(|w| w.to)
    }

    /// Takes the request only if `may_answer` accepts the agent it was sent to (an answer
    /// from the wire must come from the hub that hosts that agent).
    pub(crate) fn take_if(
        &self,
        id: MessageId,
        may_answer: impl FnOnce(AgentId) -> bool,
    ) -> Result<ReplyTo, NotTaken> {
        let mut shard = self.shard(id).lock();
        let responder = shard.get(&id).ok_or(NotTaken::Missing)?.responder;
        if !may_answer(responder) {
            return Err(NotTaken::Refused);
        }
        let w = shard.remove(&id).ok_or(NotTaken::Missing)?;
        drop(shard);
        Ok(self.removed(w).to)
    }

    /// Where a non-final chunk for `id` goes, if `may_answer` accepts its sender; the entry
    /// stays.
    pub(crate) fn chunk_to(
        &self,
        id: MessageId,
        may_answer: impl FnOnce(AgentId) -> bool,
    ) -> Result<ChunkTo, NotTaken> {
        let shard = self.shard(id).lock();
        let w = shard.get(&id).ok_or(NotTaken::Missing)?;
        if !may_answer(w.responder) {
            return Err(NotTaken::Refused);
        }
        Ok(match &w.to {
            ReplyTo::Stream(tx) => ChunkTo::Stream(tx.clone()),
            ReplyTo::Once(_) => ChunkTo::Once,
        })
    }

    /// Requests waiting for their answer now.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Streamed requests waiting now.
    pub(crate) fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Cancels `call` for `by`, counting it when this was the first cancel.
    pub(crate) fn cancel(&self, call: &Call, by: CancelBy) -> bool {
        let first = call.cancel(by);
        if first {
            self.cancels[by as usize - 1].fetch_add(1, Ordering::Relaxed);
        }
        first
    }

    /// Requests cancelled so far, in the order of [`CancelBy::ALL`].
    pub(crate) fn cancels(&self) -> [u64; 3] {
        std::array::from_fn(|i| self.cancels[i].load(Ordering::Relaxed))
    }

    /// Ends every waiting request: their requesters see the hub shut down, and callees on
    /// this hub see them cancelled. Returns how many were cancelled.
    pub(crate) fn clear(&self) -> u64 {
        let mut cancelled = 0;
        for shard in &self.shards {
            let drained: Vec<Waiting> = shard.lock().drain().map(|(_, w)| w).collect();
            for w in drained {
                cancelled += u64::from(self.cancel(&w.call, CancelBy::Shutdown));
                self.removed(w);
            }
        }
        cancelled
    }
}

/// Removes its request's entry when dropped: on return, on error, and when the future
/// awaiting the reply is dropped before it (a `select!` whose other branch won). Removing
/// an entry a reply already took is a no-op. A request dropped unanswered is cancelled.
pub(crate) struct Pending<'a> {
    requests: &'a Requests,
    id: MessageId,
    call: Arc<Call>,
    abandoned: Option<Abandoned<'a>>,
    armed: bool,
}

/// What a request dropped unanswered does besides cancelling its call.
pub(crate) type Abandoned<'a> = Box<dyn FnOnce(CancelBy) + Send + 'a>;

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.id)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl Pending<'_> {
    /// The reply (or shutdown) already removed the entry: skip the second lookup, which
    /// was 3% of a round trip.
    pub(crate) fn answered(mut self) {
        self.armed = false;
    }

    /// No reply came in time: the callee's work is cancelled for the deadline.
    pub(crate) fn expired(mut self) {
        self.end(CancelBy::Deadline);
    }

    fn end(&mut self, by: CancelBy) {
        if !std::mem::take(&mut self.armed) {
            return;
        }
        self.requests.remove(self.id);
        if self.requests.cancel(&self.call, by) {
            if let Some(abandoned) = self.abandoned.take() {
                abandoned(by);
            }
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.end(CancelBy::Caller);
    }
}
