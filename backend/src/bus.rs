//! The path of a message: `send` → the sender's batch → the recipient's mailbox.
//!
//! Every send goes through the sender's outbox lock, which is what makes per-pair FIFO
//! hold and what lets shutdown flush without losing a message: a send that took the lock
//! before shutdown did lands in a batch that shutdown flushes; one that takes it after sees
//! `closing` and is refused.

use crate::batch::{Outbox, Pending};
use crate::envelope::Kind;
use crate::hub::Shared;
use crate::mailbox::Mailbox;
use crate::metrics::{DropReason, FlushReason};
use crate::registry::AgentSlot;
use crate::{AgentId, Envelope, Error, MessageId, OverflowPolicy, Payload, Priority, Result};
use std::collections::hash_map::Entry;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

/// Why `try_enqueue` did not take a message.
enum Refused {
    /// The mailbox is full; the envelope comes back for a retry.
    Full(Box<(Envelope, Arc<Mailbox>)>),
    Error(Error),
}

/// Who a fan-out reaches.
pub(crate) enum Audience<'a> {
    Everyone,
    Topic(&'a str),
}

/// How a single send behaves when the mailbox is full.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Per the overflow policy.
    Policy,
    /// Never wait (`try_send`).
    Never,
}

impl Shared {
    /// Checks the size and compresses when it pays.
    pub(crate) fn prepare(&self, mut payload: Payload) -> Result<Payload> {
        if payload.len() > self.config.max_payload {
            return self.metrics.fail(Error::PayloadTooLarge {
                size: payload.len(),
                max: self.config.max_payload,
            });
        }
        if payload.len() > self.config.compress_over {
            let counter = if payload.compress_if_worth(
                self.config.compress_over,
                self.config.compression_level,
                &self.pools.bytes,
            ) {
                &self.metrics.compressed
            } else {
                &self.metrics.incompressible
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(payload)
    }

    /// Puts one envelope in the sender's batch for its recipient, flushing when due.
    fn try_enqueue(
        &self,
        slot: &Arc<AgentSlot>,
        outbox: &mut Outbox,
        env: Envelope,
        policy: OverflowPolicy,
        lookup: impl FnOnce(AgentId) -> Option<Arc<Mailbox>>,
    ) -> Result<(), Refused> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Refused::Error(Error::ShuttingDown));
        }
        let to = env.to;
        let mut opened = false;
        let pending = match outbox.batches.entry(to) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let Some(mailbox) = lookup(to) else {
                    return Err(Refused::Error(Error::UnknownAgent(to)));
                };
                opened = true;
                entry.insert(Pending {
                    mailbox,
                    envelopes: Vec::with_capacity(self.config.max_messages.min(64)),
                    opened: Instant::now(),
                    mask: 0,
                })
            }
        };
        if pending.mailbox.is_gone() {
            outbox.flush_one(to, FlushReason::Explicit, policy, &self.metrics);
            return Err(Refused::Error(Error::UnknownAgent(to)));
        }
        if !pending.mailbox.try_reserve(policy) {
            let mailbox = pending.mailbox.clone();
            if pending.envelopes.is_empty() {
                outbox.batches.remove(&to);
            }
            return Err(Refused::Full(Box::new((env, mailbox))));
        }
        let priority = env.priority;
        let (raw, wire) = (env.payload.len() as u64, env.payload.wire_len() as u64);
        pending.mask |= 1 << priority.index();
        pending.envelopes.push(env);
        let full = pending.envelopes.len() >= self.config.max_messages;
        outbox.raw_bytes += raw;
        outbox.wire_bytes += wire;
        let reason = if full {
            Some(FlushReason::Size)
        } else if priority >= self.config.flush_priority {
            Some(FlushReason::Priority)
        } else if self.config.linger.is_zero() {
            Some(FlushReason::Linger)
        } else {
            None
        };
        match reason {
            Some(reason) => outbox.flush_one(to, reason, policy, &self.metrics),
            None if opened && !outbox.scheduled => {
                outbox.scheduled = true;
                let at = Instant::now() + self.config.linger;
                // The timer task only stops when the hub is gone, so this cannot fail while
                // a sender holds the hub.
                let _ = self
                    .linger
                    .send(crate::linger::Command::Schedule(at, slot.clone()));
            }
            None => {}
        }
        Ok(())
    }

    pub(crate) fn envelope(
        &self,
        from: AgentId,
        to: AgentId,
        kind: Kind,
        priority: Priority,
        topic: Option<Arc<str>>,
        payload: Payload,
    ) -> Envelope {
        Envelope {
            id: MessageId::new_v4(),
            from,
            to,
            kind,
            priority,
            topic,
            payload,
            sent_at: Instant::now(),
        }
    }

    /// Sends one envelope, waiting for room per the policy; flushes its batch at once with
    /// `flush_now` (requests).
    pub(crate) async fn send_one(
        &self,
        slot: &Arc<AgentSlot>,
        mut env: Envelope,
        wait: Wait,
        flush_now: bool,
    ) -> Result<MessageId> {
        let id = env.id;
        let to = env.to;
        let policy = self.config.overflow;
        let deadline = match (wait, policy) {
            (Wait::Policy, OverflowPolicy::Block { timeout }) => Some(Instant::now() + timeout),
            _ => None,
        };
        loop {
            let mailbox = {
                let mut outbox = slot.outbox.lock();
                match self.try_enqueue(slot, &mut outbox, env, policy, |to| {
                    self.registry.mailbox(to)
                }) {
                    Ok(()) => {
                        if flush_now {
                            outbox.flush_one(to, FlushReason::Explicit, policy, &self.metrics);
                        }
                        return Ok(id);
                    }
                    Err(Refused::Error(e)) => return self.metrics.fail(e),
                    Err(Refused::Full(refused)) => {
                        let (back, mailbox) = *refused;
                        env = back;
                        // What we already batched for this recipient must become receivable,
                        // or we could wait on room that only our own batch holds.
                        outbox.flush_one(to, FlushReason::Explicit, policy, &self.metrics);
                        mailbox
                    }
                }
            };
            let Some(deadline) = deadline else {
                return self.metrics.fail(Error::MailboxFull(to));
            };
            if !mailbox.wait_for_room(deadline).await {
                return self.metrics.fail(Error::MailboxFull(to));
            }
        }
    }

    /// Sends one payload to many recipients, sharing it. Returns how many accepted it;
    /// recipients whose mailbox stayed full are counted as dropped (`mailbox_full`).
    pub(crate) async fn fan_out(
        &self,
        slot: &Arc<AgentSlot>,
        audience: Audience<'_>,
        priority: Priority,
        payload: Payload,
    ) -> Result<usize> {
        let policy = self.config.overflow;
        let (topic, ids) = match audience {
            Audience::Everyone => (None, None),
            Audience::Topic(name) => match self.registry.subscribers(name, &self.pools.uuids) {
                Ok((topic, ids)) => (topic, Some(ids)),
                Err(e) => return self.metrics.fail(e),
            },
        };
        let mut accepted = 0;
        let mut full = self.pools.uuids.take();
        {
            let mut outbox = slot.outbox.lock();
            let agents = self.registry.agents.read();
            let mut each = |to: AgentId| -> Result<()> {
                if to == slot.id {
                    return Ok(());
                }
                let env = self.envelope(
                    slot.id,
                    to,
                    Kind::Message,
                    priority,
                    topic.clone(),
                    payload.clone(),
                );
                let lookup = |id| agents.get(&id).map(|s| s.mailbox.clone());
                match self.try_enqueue(slot, &mut outbox, env, policy, lookup) {
                    Ok(()) => accepted += 1,
                    Err(Refused::Full(_)) => full.push(to),
                    // A subscriber that left between the two lookups: not a recipient.
                    Err(Refused::Error(Error::UnknownAgent(_))) => {}
                    Err(Refused::Error(e)) => return Err(e),
                }
                Ok(())
            };
            let result = match &ids {
                Some(ids) => ids.iter().try_for_each(|&to| each(to)),
                None => agents.keys().try_for_each(|&to| each(to)),
            };
            if let Err(e) = result {
                return self.metrics.fail(e);
            }
        }
        for &to in full.iter() {
            let env = self.envelope(
                slot.id,
                to,
                Kind::Message,
                priority,
                topic.clone(),
                payload.clone(),
            );
            match self.send_one(slot, env, Wait::Policy, false).await {
                Ok(_) => accepted += 1,
                Err(Error::ShuttingDown) => return Err(Error::ShuttingDown),
                Err(_) => self.metrics.drop_n(DropReason::MailboxFull, 1),
            }
        }
        Ok(accepted)
    }

    /// Flushes the sender's batch to `to` (before a reply, so earlier messages land first).
    pub(crate) fn flush_to(&self, slot: &AgentSlot, to: AgentId) {
        slot.outbox.lock().flush_one(
            to,
            FlushReason::Explicit,
            self.config.overflow,
            &self.metrics,
        );
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
            Err(_) => {
                self.requests.take(id);
                self.metrics
                    .fail(Error::RequestTimeout { id, after: timeout })
            }
        }
    }

    /// Hands a reply to the waiting requester, bypassing mailboxes.
    pub(crate) fn deliver_reply(&self, env: Envelope, request: MessageId) {
        self.metrics.replies.fetch_add(1, Ordering::Relaxed);
        let delivered = match self.requests.take(request) {
            Some(tx) => tx.send(env).is_ok(),
            None => false,
        };
        if !delivered {
            self.metrics.drop_n(DropReason::ReplyOrphaned, 1);
        }
    }
}
