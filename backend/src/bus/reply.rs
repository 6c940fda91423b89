//! Request/reply: waiting for a reply, and handing one to its requester. A reply bypasses
//! mailboxes: it goes straight to the requester's waiting future.

use super::requests::{ChunkTo, NotTaken, ReplyTo};
use super::state::Bus;
use crate::envelope::Kind;
use crate::metrics::{DropReason, FlushReason};
use crate::{AgentId, Envelope, Error, MessageId, Priority, Result};
use tokio::time::Instant;

/// The error a requester sees for a final chunk of kind `Failed`, or `None`.
pub(crate) fn failure(env: &Envelope) -> Option<Error> {
    match env.kind {
        Kind::Failed(_) => Some(Error::StreamFailed(
            env.payload()
                .to_text()
                .unwrap_or_else(|_| "the responder failed".into()),
        )),
        _ => None,
    }
}

/// Why a stream ended without its final chunk.
pub(crate) const RESPONDER_GONE: &str = "the responder went away before finishing";

/// What became of a reply from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireReply {
    Delivered,
    /// Its requester stopped waiting (counted `reply_orphaned`).
    Dropped,
    /// Its requester is not on this hub; it is not sent on (counted `reply_orphaned`).
    NotHere,
    /// It came from a hub that does not host the agent asked: refused, not counted as a
    /// drop (nobody accepted it).
    Forged,
}

impl Bus {
    /// Flushes the open batch of `to` (before a reply, so earlier messages land first).
    pub(crate) fn flush_to(&self, to: AgentId) {
        self.route(to, |mailbox| mailbox.flush(FlushReason::Explicit));
    }

    /// Waits for the reply to a request already sent.
    pub(crate) async fn await_reply(
        &self,
        id: MessageId,
        reply: tokio::sync::oneshot::Receiver<Envelope>,
        timeout: std::time::Duration,
    ) -> Result<Envelope> {
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(env)) => match failure(&env) {
                Some(e) => Err(e),
                None => Ok(env),
            },
            Ok(Err(_)) if self.is_closing() => self.metrics.fail(Error::ShuttingDown),
            // The responder dropped its `Responder` unfinished.
            Ok(Err(_)) => Err(Error::StreamFailed(RESPONDER_GONE.into())),
            // The caller's `Pending` guard removes the entry.
            Err(_) => self
                .metrics
                .fail(Error::RequestTimeout { id, after: timeout }),
        }
    }

    /// An answer that came from a remote hub (a reply, a chunk, a failure): to a local
    /// requester, or dropped, and never sent on again (so forged directory entries cannot
    /// make hubs bounce replies). `sent_by_host` says whether the hub it came from hosts a
    /// given agent: a request takes its answers only from the hub of the agent it asked.
    pub(crate) fn deliver_reply_from_wire(
        &self,
        mut env: Envelope,
        request: MessageId,
        sent_by_host: impl FnOnce(AgentId) -> bool,
    ) -> WireReply {
        if !self.inbound_payload_fits(&env) {
            return WireReply::Dropped;
        }
        env.sent_at = crate::envelope::nanos_since_epoch(Instant::now());
        let to = env.to;
        if let Kind::Chunk(_) = env.kind {
            return match self.requests.chunk_to(request, sent_by_host) {
                Ok(ChunkTo::Stream(tx)) => self.push_chunk(&tx, env, request),
                Ok(ChunkTo::Once) => {
                    self.dead_letter(DropReason::StreamGone, env);
                    WireReply::Dropped
                }
                Err(NotTaken::Refused) => WireReply::Forged,
                Err(NotTaken::Missing) => {
                    self.dead_letter(DropReason::StreamGone, env);
                    if self.registry.contains(to) {
                        WireReply::Dropped
                    } else {
                        WireReply::NotHere
                    }
                }
            };
        }
        self.metrics.replies.add(1);
        // A stream's failure for a request nobody waits for is a chunk like any other.
        let orphaned = match env.kind {
            Kind::Failed(_) => DropReason::StreamGone,
            _ => DropReason::ReplyOrphaned,
        };
        let (outcome, env) = match self.requests.take_if(request, sent_by_host) {
            Ok(ReplyTo::Once(tx)) => match tx.send(env) {
                Ok(()) => return WireReply::Delivered,
                Err(env) => (WireReply::Dropped, env),
            },
            Ok(ReplyTo::Stream(tx)) => return self.push_chunk(&tx, env, request),
            Err(NotTaken::Refused) => return WireReply::Forged,
            Err(NotTaken::Missing) if !self.registry.contains(to) => (WireReply::NotHere, env),
            Err(NotTaken::Missing) => (WireReply::Dropped, env),
        };
        self.dead_letter(orphaned, env);
        outcome
    }

    /// A chunk for a stream waiting on this hub, without waiting: a stream whose reader
    /// fell a whole channel behind is ended (its reader sees an error) and the chunk is
    /// counted, never silently lost.
    fn push_chunk(
        &self,
        tx: &flume::Sender<Envelope>,
        env: Envelope,
        request: MessageId,
    ) -> WireReply {
        let is_chunk = matches!(env.kind, Kind::Chunk(_));
        match tx.try_send(env) {
            Ok(()) => {
                if is_chunk {
                    self.metrics.chunks.add(1);
                }
                WireReply::Delivered
            }
            Err(flume::TrySendError::Full(env)) => {
                self.requests.close(request);
                self.dead_letter(DropReason::StreamOverflow, env);
                WireReply::Dropped
            }
            Err(flume::TrySendError::Disconnected(env)) => {
                self.dead_letter(DropReason::StreamGone, env);
                WireReply::Dropped
            }
        }
    }

    /// Tells the callee on another hub that its request was cancelled. A cancel goes at
    /// `Critical` priority, ahead of anything queued for that hub, and never waits; a link
    /// with no room drops it (counted).
    pub(crate) fn send_cancel(&self, request: MessageId, from: AgentId, to: AgentId) {
        if self.registry.contains(to) {
            return; // the callee shares the call: it already sees the cancel
        }
        let env = self.envelope(
            from,
            to,
            Kind::Cancel(request),
            Priority::Critical,
            None,
            crate::Payload::new(bytes::Bytes::new()),
        );
        if let Err(refused) = self.enqueue_now(env, true) {
            self.dead_letter_refused(DropReason::StreamGone, refused);
        }
    }

    /// Hands a reply to the waiting requester, bypassing mailboxes.
    pub(crate) fn deliver_reply(&self, mut env: Envelope, request: MessageId) {
        self.metrics.replies.add(1);
        env.sent_at = crate::envelope::nanos_since_epoch(Instant::now());
        let reason = DropReason::ReplyOrphaned;
        match self.requests.take(request) {
            Some(ReplyTo::Once(tx)) => {
                if let Err(env) = tx.send(env) {
                    self.dead_letter(reason, env);
                }
            }
            Some(ReplyTo::Stream(tx)) => {
                if let Err(e) = tx.try_send(env) {
                    self.dead_letter(reason, e.into_inner());
                }
            }
            // The requester lives on another hub: the reply travels in its own frame.
            None if !self.registry.contains(env.to) => {
                if let Err(refused) = self.enqueue_now(env, true) {
                    self.dead_letter_refused(reason, refused);
                }
            }
            None => self.dead_letter(reason, env),
        }
    }
}
