//! Request/reply: waiting for a reply, and handing one to its requester. A reply bypasses
//! mailboxes: it goes straight to the requester's waiting future.

use super::requests::NotTaken;
use super::state::Bus;
use crate::metrics::{DropReason, FlushReason};
use crate::{AgentId, Envelope, Error, MessageId, Result};
use tokio::time::Instant;

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
            Ok(Ok(env)) => Ok(env),
            Ok(Err(_)) => self.metrics.fail(Error::ShuttingDown),
            // The caller's `Pending` guard removes the entry.
            Err(_) => self
                .metrics
                .fail(Error::RequestTimeout { id, after: timeout }),
        }
    }

    /// A reply that came from a remote hub: to a local requester, or dropped, and never
    /// sent on again (so forged directory entries cannot make hubs bounce replies).
    /// `sent_by_host` says whether the hub it came from hosts a given agent: a request
    /// takes its reply only from the hub of the agent it was sent to.
    pub(crate) fn deliver_reply_from_wire(
        &self,
        mut env: Envelope,
        request: MessageId,
        sent_by_host: impl FnOnce(AgentId) -> bool,
    ) -> WireReply {
        if !self.inbound_payload_fits(&env) {
            return WireReply::Dropped;
        }
        self.metrics.replies.add(1);
        env.sent_at = crate::envelope::nanos_since_epoch(Instant::now());
        let to = env.to;
        let outcome = match self.requests.take_if(request, sent_by_host) {
            Ok(tx) => match tx.send(env) {
                Ok(()) => return WireReply::Delivered,
                Err(_) => WireReply::Dropped,
            },
            Err(NotTaken::Refused) => return WireReply::Forged,
            Err(NotTaken::Missing) if !self.registry.contains(to) => WireReply::NotHere,
            Err(NotTaken::Missing) => WireReply::Dropped,
        };
        self.metrics.drop_n(DropReason::ReplyOrphaned, 1);
        outcome
    }

    /// Hands a reply to the waiting requester, bypassing mailboxes.
    pub(crate) fn deliver_reply(&self, mut env: Envelope, request: MessageId) {
        self.metrics.replies.add(1);
        env.sent_at = crate::envelope::nanos_since_epoch(Instant::now());
        let delivered = match self.requests.take(request) {
            Some(tx) => tx.send(env).is_ok(),
            // The requester lives on another hub: the reply travels in its own frame.
            None if !self.registry.contains(env.to) => self.enqueue_now(env, true).is_ok(),
            None => false,
        };
        if !delivered {
            self.metrics.drop_n(DropReason::ReplyOrphaned, 1);
        }
    }
}
