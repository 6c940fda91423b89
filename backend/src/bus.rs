//! The path of a message: `send` → the recipient's open batch → its mailbox queue.
//!
//! Every send to a recipient goes through that recipient's batch lock, which is what makes
//! per-pair FIFO hold and what lets shutdown flush without losing a message: a send that
//! took the lock before shutdown did lands in a batch that shutdown flushes; one that takes
//! it after sees `closing` and is refused.
//!
//! Two bounds apply under that lock: the mailbox's capacity in messages (the overflow
//! policy) and the hub's budget in queued bytes (the budget policy; see `budget.rs`).
//! Messages from remote hubs never wait on either: they are dropped and counted.

use crate::budget::MemoryBudget;
use crate::envelope::Kind;
use crate::hub::Shared;
use crate::linger::Schedule;
use crate::mailbox::Mailbox;
use crate::metrics::{DropReason, FlushReason};
use crate::request::NotTaken;
use crate::{
    AgentId, BudgetPolicy, Envelope, Error, MessageId, OverflowPolicy, Payload, Priority, Result,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

/// Why `try_enqueue` did not take a message.
enum Refused {
    /// The mailbox is full; the envelope comes back for a retry.
    Full(Box<Envelope>),
    /// The hub's queued-bytes budget has no room for it (`cost` bytes); it comes back.
    OverBudget(Box<Envelope>, u64),
    Error(Error),
}

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
    /// Checks the sizes (declared and stored) and compresses when it pays.
    pub(crate) fn prepare(&self, mut payload: Payload) -> Result<Payload> {
        if let Err(e) = payload.check_size(self.config.max_payload) {
            return self.metrics.fail(e);
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

    pub(crate) fn envelope(
        &self,
        from: AgentId,
        to: AgentId,
        kind: Kind,
        priority: Priority,
        topic: Option<Arc<str>>,
        payload: Payload,
    ) -> Envelope {
        let kind = match (kind, topic) {
            (Kind::Message, Some(topic)) => Kind::Topic(topic),
            (kind, _) => kind,
        };
        Envelope {
            id: MessageId::new_v4(),
            from,
            to,
            kind,
            priority,
            payload,
            // Set from the batch when it joins one.
            sent_at: 0,
        }
    }

    /// Puts one envelope in its recipient's open batch, flushing when due. `recipients`
    /// is how many envelopes share its payload (1 unless a fan-out), for its budget charge.
    #[inline]
    fn try_enqueue(
        &self,
        mailbox: &Arc<Mailbox>,
        env: Envelope,
        flush_now: bool,
        recipients: usize,
    ) -> Result<(), Refused> {
        let config = &self.config;
        let mut batch = mailbox.batch.lock();
        if self.closing.load(Ordering::Acquire) {
            return Err(Refused::Error(Error::ShuttingDown));
        }
        if mailbox.is_gone() {
            return Err(Refused::Error(Error::UnknownAgent(env.to)));
        }
        if let Some(max) = mailbox.too_large(env.payload.wire_len()) {
            // A remote hub's link: it would not fit one frame. Refused before anything moves.
            return Err(Refused::Error(Error::PayloadTooLarge {
                size: env.payload.wire_len(),
                max,
            }));
        }
        let room = mailbox.has_room_for(&batch);
        if !room && mailbox.policy != OverflowPolicy::DropOldest {
            // Whatever waits in the batch must become receivable so room can appear.
            mailbox.flush(&mut batch, FlushReason::Explicit, &self.metrics);
            return Err(Refused::Full(Box::new(env)));
        }
        let cost = MemoryBudget::cost(env.payload.wire_len(), recipients);
        if !mailbox.try_charge(&mut batch, cost) {
            return Err(Refused::OverBudget(Box::new(env), cost));
        }
        if !room {
            // DropOldest: make room in place and keep filling the open batch. Flushing it
            // here made every send under saturation its own 64-slot batch (8 KiB each).
            mailbox.evict_one(&mut batch, &self.metrics);
        }
        let priority = env.priority;
        let opened = batch.push(env, cost, &self.pools.batches);
        // `validate` keeps linger within a minute; a deadline that still overflowed would
        // mean "flush now".
        let linger_at = batch.opened.checked_add(config.linger);
        let due = if flush_now {
            Some(FlushReason::Explicit)
        } else {
            batch
                .due(
                    priority,
                    mailbox.max_batch.unwrap_or(config.max_messages),
                    config,
                )
                .or(linger_at.is_none().then_some(FlushReason::Linger))
        };
        let schedule = match due {
            Some(reason) => {
                mailbox.flush(&mut batch, reason, &self.metrics);
                None
            }
            None if opened && !batch.scheduled => {
                batch.scheduled = true;
                linger_at
            }
            None => None,
        };
        drop(batch);
        if let Some(at) = schedule {
            // The timer task stops only when the hub is gone, and we hold the hub.
            let _ = self.linger.send(Schedule(at, mailbox.clone()));
        }
        Ok(())
    }

    /// Runs `f` on the mailbox for `to`: the agent's own when it is local, else the link to
    /// the remote hub that hosts it.
    #[inline]
    pub(crate) fn route<R>(&self, to: AgentId, f: impl FnOnce(&Arc<Mailbox>) -> R) -> Option<R> {
        let mut f = Some(f);
        if let Some(r) = self
            .registry
            .with_mailbox(to, |mb| f.take().map(|f| f(mb)))
            .flatten()
        {
            return Some(r);
        }
        let bridge = self.remote.get()?;
        bridge.route(to, |mb| f.take().map(|f| f(mb))).flatten()
    }

    /// Puts an envelope in its batch now, never waiting; drops are counted by the caller.
    fn enqueue_now(&self, env: Envelope, flush_now: bool) -> Result<(), Refused> {
        let to = env.to;
        self.route(to, |mailbox| self.try_enqueue(mailbox, env, flush_now, 1))
            .unwrap_or(Err(Refused::Error(Error::UnknownAgent(to))))
    }

    /// Delivers an envelope that came from a remote hub, without waiting: a full mailbox,
    /// a spent budget or a missing recipient is a counted drop, never a stall of the NATS
    /// subscription.
    pub(crate) fn deliver_inbound(&self, env: Envelope) {
        if !self.inbound_payload_fits(&env) {
            return;
        }
        if let Kind::Reply(_) = env.kind {
            // Replies from the wire go through `deliver_reply_from_wire`.
            self.metrics.drop_n(DropReason::ReplyOrphaned, 1);
            return;
        }
        let flush_now = env.kind == Kind::Request;
        // Only local agents: a frame is never forwarded to a third hub.
        let to = env.to;
        let outcome = self
            .registry
            .with_mailbox(to, |mailbox| self.try_enqueue(mailbox, env, flush_now, 1))
            .unwrap_or(Err(Refused::Error(Error::UnknownAgent(to))));
        self.count_inbound_refusal(outcome);
    }

    /// Delivers a remote broadcast (`topic: None`) or topic message to local agents, each
    /// copy charged its share of the one payload they share.
    pub(crate) fn deliver_fan_out_inbound(&self, env: Envelope, topic: Option<&str>) {
        if !self.inbound_payload_fits(&env) {
            return;
        }
        let deliver = |to: AgentId, mailbox: &Arc<Mailbox>, recipients: usize| {
            if to == env.from {
                return;
            }
            let mut copy = env.clone();
            copy.to = to;
            self.count_inbound_refusal(self.try_enqueue(mailbox, copy, false, recipients));
        };
        match topic {
            None => {
                let recipients = self.registry.len();
                self.registry
                    .for_each(|slot| deliver(slot.id, &slot.mailbox, recipients))
            }
            Some(name) => {
                if let Ok((_, ids)) = self.registry.subscribers(name, &self.pools.uuids) {
                    for &to in ids.iter() {
                        self.registry
                            .with_mailbox(to, |mailbox| deliver(to, mailbox, ids.len()));
                    }
                }
            }
        }
    }

    /// The wire decoder bounds what it reads; this bounds what is queued, whatever decoded
    /// it: a payload over `max_payload` (declared or stored) is dropped and counted.
    fn inbound_payload_fits(&self, env: &Envelope) -> bool {
        let fits = env.payload.check_size(self.config.max_payload).is_ok();
        if !fits {
            self.metrics.drop_n(DropReason::PayloadTooLarge, 1);
        }
        fits
    }

    fn count_inbound_refusal(&self, outcome: Result<(), Refused>) {
        let reason = match outcome {
            Ok(()) => return,
            Err(Refused::Full(_)) => DropReason::MailboxFull,
            Err(Refused::OverBudget(..)) => DropReason::MemoryBudget,
            Err(Refused::Error(Error::ShuttingDown)) => DropReason::HubClosed,
            Err(Refused::Error(_)) => DropReason::RecipientGone,
        };
        self.metrics.drop_n(reason, 1);
    }

    /// Sends one envelope, waiting for room per the policy; `flush_now` sends its batch at
    /// once (requests). Errors are counted.
    pub(crate) async fn send_one(
        &self,
        env: Envelope,
        wait: Wait,
        flush_now: bool,
    ) -> Result<MessageId> {
        match self
            .send_until(env, wait, flush_now, 1, &mut Deadline::default())
            .await
        {
            Ok(id) => Ok(id),
            Err(e) => self.metrics.fail(e),
        }
    }

    /// `send_one` against a deadline that may be shared with other sends (the recipients of
    /// one fan-out, `recipients` of them), without counting the error.
    async fn send_until(
        &self,
        mut env: Envelope,
        wait: Wait,
        flush_now: bool,
        recipients: usize,
        deadline: &mut Deadline,
    ) -> Result<MessageId> {
        let id = env.id;
        let to = env.to;
        loop {
            let outcome = self.route(to, |mailbox| {
                match self.try_enqueue(mailbox, env, flush_now, recipients) {
                    Ok(()) => Ok(()),
                    Err(refused) => Err((refused, mailbox.clone())),
                }
            });
            let (refused, mailbox) = match outcome {
                Some(Ok(())) => return Ok(id),
                None => return Err(Error::UnknownAgent(to)),
                Some(Err((Refused::Error(e), _))) => return Err(e),
                Some(Err(refused)) => refused,
            };
            match refused {
                Refused::Full(back) => {
                    env = *back;
                    let at = match (wait, mailbox.policy) {
                        (Wait::Policy, OverflowPolicy::Block { timeout }) => deadline.get(timeout),
                        _ => return Err(Error::MailboxFull(to)),
                    };
                    if !mailbox.wait_for_room(at).await {
                        return Err(Error::MailboxFull(to));
                    }
                }
                Refused::OverBudget(back, cost) => {
                    env = *back;
                    let overloaded = Error::Overloaded {
                        max_queued_bytes: self.budget.limit(),
                    };
                    let at = match (wait, self.config.budget_policy) {
                        (Wait::Policy, BudgetPolicy::Block { timeout }) => deadline.get(timeout),
                        _ => return Err(overloaded),
                    };
                    if !self.budget.wait_for_room(cost, at).await {
                        return Err(overloaded);
                    }
                }
                Refused::Error(e) => return Err(e),
            }
        }
    }

    /// Sends one payload to many recipients, sharing it. Returns how many accepted it;
    /// recipients whose mailbox stayed full are counted as dropped (`mailbox_full`), those
    /// the queued-bytes budget refused as `memory_budget`. Under `Block` the refused
    /// recipients share one deadline: the fan-out waits at most one timeout in all, however
    /// many of them are full.
    pub(crate) async fn fan_out(
        &self,
        from: AgentId,
        audience: Audience<'_>,
        priority: Priority,
        payload: Payload,
    ) -> Result<usize> {
        let bridge = self.remote.get();
        if let Some(bridge) = bridge {
            // Refuse what cannot reach the other hubs before any local delivery.
            if let Audience::Topic(name) = &audience {
                if let Err(e) = bridge.check_topic(name) {
                    return self.metrics.fail(e);
                }
            }
            let max = bridge.max_wire_payload();
            if payload.wire_len() > max {
                return self.metrics.fail(Error::PayloadTooLarge {
                    size: payload.wire_len(),
                    max,
                });
            }
        }
        let remote_topic = match &audience {
            Audience::Everyone => None,
            Audience::Topic(name) => Some(name.to_string()),
        };
        let subscribers = match audience {
            Audience::Everyone => None,
            Audience::Topic(name) => match self.registry.subscribers(name, &self.pools.uuids) {
                Ok(found) => Some(found),
                Err(e) => return self.metrics.fail(e),
            },
        };
        // How many envelopes share the payload, for their budget charge (an estimate: the
        // sender and agents that leave meanwhile are not recipients).
        let recipients = match &subscribers {
            None => self.registry.len().saturating_sub(1),
            Some((_, ids)) => ids.len(),
        };
        let mut accepted = 0;
        let mut refused = self.pools.uuids.take();
        let mut failure = None;
        let mut each = |to: AgentId, mailbox: &Arc<Mailbox>, topic: &Option<Arc<str>>| {
            if to == from || failure.is_some() {
                return;
            }
            let env = self.envelope(
                from,
                to,
                Kind::Message,
                priority,
                topic.clone(),
                payload.clone(),
            );
            match self.try_enqueue(mailbox, env, false, recipients) {
                Ok(()) => accepted += 1,
                Err(Refused::Full(_) | Refused::OverBudget(..)) => refused.push(to),
                // Left between the lookup and the lock: not a recipient any more.
                Err(Refused::Error(Error::UnknownAgent(_))) => {}
                Err(Refused::Error(e)) => failure = Some(e),
            }
        };
        let topic = match &subscribers {
            None => {
                self.registry
                    .for_each(|slot| each(slot.id, &slot.mailbox, &None));
                None
            }
            Some((topic, ids)) => {
                for &to in ids.iter() {
                    self.registry
                        .with_mailbox(to, |mailbox| each(to, mailbox, topic));
                }
                topic.clone()
            }
        };
        drop(subscribers);
        if let Some(e) = failure {
            return self.metrics.fail(e);
        }
        if let Some(bridge) = bridge {
            // One copy for every other hub, through the broadcast or topic link: it
            // buffers during an outage and fails fast when full, never waits for NATS.
            let topic = remote_topic.as_deref().map(Arc::<str>::from);
            let link = bridge.fan_out_link(topic.is_some());
            let to = crate::nats::fan_out_recipient();
            let env = self.envelope(from, to, Kind::Message, priority, topic, payload.clone());
            match self.try_enqueue(link, env, false, 1) {
                Ok(()) => {}
                Err(Refused::Full(_) | Refused::OverBudget(..)) => {
                    return self.metrics.fail(Error::MailboxFull(to))
                }
                Err(Refused::Error(e)) => return self.metrics.fail(e),
            }
        }
        let mut deadline = Deadline::default();
        for &to in refused.iter() {
            let env = self.envelope(
                from,
                to,
                Kind::Message,
                priority,
                topic.clone(),
                payload.clone(),
            );
            match self
                .send_until(env, Wait::Policy, false, recipients, &mut deadline)
                .await
            {
                Ok(_) => accepted += 1,
                Err(Error::ShuttingDown) => return self.metrics.fail(Error::ShuttingDown),
                // Left while we waited: not a recipient any more.
                Err(Error::UnknownAgent(_)) => {}
                Err(Error::Overloaded { .. }) => self.metrics.drop_n(DropReason::MemoryBudget, 1),
                Err(_) => self.metrics.drop_n(DropReason::MailboxFull, 1),
            }
        }
        Ok(accepted)
    }

    /// Flushes the open batch of `to` (before a reply, so earlier messages land first).
    pub(crate) fn flush_to(&self, to: AgentId) {
        self.route(to, |mailbox| {
            let mut batch = mailbox.batch.lock();
            mailbox.flush(&mut batch, FlushReason::Explicit, &self.metrics);
        });
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
        self.metrics.replies.fetch_add(1, Ordering::Relaxed);
        env.sent_at = crate::envelope::nanos_since_epoch(Instant::now());
        let to = env.to;
        let outcome = match self.requests.take_if(request, sent_by_host) {
            Ok(tx) => match tx.send(env) {
                Ok(()) => return WireReply::Delivered,
                Err(_) => WireReply::Dropped,
            },
            Err(NotTaken::Refused) => return WireReply::Forged,
            Err(NotTaken::Missing) if self.registry.with_mailbox(to, |_| ()).is_none() => {
                WireReply::NotHere
            }
            Err(NotTaken::Missing) => WireReply::Dropped,
        };
        self.metrics.drop_n(DropReason::ReplyOrphaned, 1);
        outcome
    }

    /// Hands a reply to the waiting requester, bypassing mailboxes.
    pub(crate) fn deliver_reply(&self, mut env: Envelope, request: MessageId) {
        self.metrics.replies.fetch_add(1, Ordering::Relaxed);
        env.sent_at = crate::envelope::nanos_since_epoch(Instant::now());
        let delivered = match self.requests.take(request) {
            Some(tx) => tx.send(env).is_ok(),
            // The requester lives on another hub: the reply travels in its own frame.
            None if self.registry.with_mailbox(env.to, |_| ()).is_none() => {
                self.enqueue_now(env, true).is_ok()
            }
            None => false,
        };
        if !delivered {
            self.metrics.drop_n(DropReason::ReplyOrphaned, 1);
        }
    }
}

/// When a send stops waiting for room: read from the clock only once the first wait
/// begins, and shared by every recipient of one fan-out.
#[derive(Debug, Default)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    fn get(&mut self, timeout: std::time::Duration) -> Instant {
        *self.0.get_or_insert_with(|| deadline_after(timeout))
    }
}

/// `now + timeout`; a sum that would overflow (`validate` keeps timeouts within an hour)
/// is "now": the wait fails at once rather than panicking.
pub(crate) fn deadline_after(timeout: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hub, HubConfig};

    fn mailbox_of(hub: &Hub, id: AgentId) -> Arc<Mailbox> {
        hub.shared()
            .route(id, |mailbox| mailbox.clone())
            .expect("registered")
    }

    /// Under `DropOldest` a saturated mailbox used to hold one 64-slot batch per message
    /// (8 KiB each): every send flushed the open batch to make room. Evicting in place keeps
    /// the queue in full batches.
    #[tokio::test(start_paused = true)]
    async fn a_saturated_drop_oldest_mailbox_keeps_few_batches() {
        let config = HubConfig {
            mailbox_capacity: 1_000,
            overflow: OverflowPolicy::DropOldest,
            ..HubConfig::default()
        };
        let hub = Hub::start(config).unwrap();
        let a = hub.register("a").unwrap();
        let b = hub.register("b").unwrap();
        let mailbox = mailbox_of(&hub, b.id());
        for i in 0..20_000u32 {
            a.send(b.id(), i.to_be_bytes().to_vec()).await.unwrap();
        }
        let batches = mailbox.queued_batches();
        // 1,000 queued messages in batches of 50: 20, plus one partly evicted at the front.
        assert!(batches <= 1_000 / 50 + 1, "{batches} batches queued");
        hub.flush();
        assert!(mailbox.queued_batches() <= 1_000 / 50 + 2);
        assert_eq!(mailbox.depth(), 1_000);
        hub.shutdown().await.unwrap();
    }

    fn small_budget() -> HubConfig {
        HubConfig {
            max_payload: 16 * 1024,
            max_queued_bytes: 64 * 1024,
            ..HubConfig::default()
        }
    }

    /// One inbound broadcast frame to 1,000 idle agents used to queue without bound (a
    /// 976 KB frame: 2.5 GB in 5 s). Over the budget, copies are dropped and counted, never
    /// waited for, and the accounting adds up.
    #[tokio::test(start_paused = true)]
    async fn an_inbound_fan_out_stays_within_the_budget() {
        const AGENTS: usize = 1_000;
        const FRAMES: usize = 20;
        let hub = Hub::start(small_budget()).unwrap();
        let mut agents: Vec<_> = (0..AGENTS)
            .map(|i| hub.register(format!("idle{i}")).unwrap())
            .collect();
        let shared = hub.shared();
        let remote = AgentId::new_v4();
        let nobody = AgentId::from(uuid::Uuid::nil());
        for _ in 0..FRAMES {
            let payload = Payload::from(vec![7u8; 10_000]);
            let env = shared.envelope(
                remote,
                nobody,
                Kind::Message,
                Priority::Normal,
                None,
                payload,
            );
            shared.deliver_fan_out_inbound(env, None);
            assert!(shared.budget.used() <= 64 * 1024);
        }
        let m = hub.metrics();
        assert!(m.queued_bytes <= m.queued_bytes_budget, "{m:?}");
        assert_eq!(m.queued_bytes_budget, 64 * 1024);
        let dropped = m.messages_dropped["memory_budget"];
        hub.flush();
        let m = hub.metrics();
        // Each copy costs 128 + 10,000 / 1,000 bytes: 474 fit in 64 KiB.
        assert_eq!(m.messages_sent, (64 * 1024 / (128 + 10)) as u64);
        assert_eq!(m.messages_sent + dropped, (AGENTS * FRAMES) as u64);
        assert_eq!(m.messages_delivered, m.messages_sent);
        assert_eq!(m.mailbox_depth_total, m.messages_sent);
        assert_eq!(m.queued_bytes, m.messages_sent * (128 + 10));
        // Receiving releases what a message was charged; leaving releases the rest.
        let first = agents.iter_mut().find(|a| a.pending() > 0).unwrap();
        assert!(first.try_recv().is_some());
        assert_eq!(
            hub.metrics().queued_bytes,
            (m.messages_sent - 1) * (128 + 10)
        );
        drop(agents);
        assert_eq!(hub.metrics().queued_bytes, 0);
        let report = hub.shutdown().await.unwrap();
        assert_eq!(report.undelivered, 0);
    }

    /// A payload from the wire is bounded like a local one: a compressed payload whose
    /// stored size exceeds `max_payload` is dropped and counted, not queued.
    #[tokio::test]
    async fn an_inbound_payload_over_max_payload_is_dropped() {
        let hub = Hub::start(small_budget()).unwrap();
        let b = hub.register("b").unwrap();
        let shared = hub.shared();
        let remote = AgentId::new_v4();
        let lie = Payload::from_compressed(vec![0u8; 20 * 1024], 10);
        let env = shared.envelope(
            remote,
            b.id(),
            Kind::Message,
            Priority::Normal,
            None,
            lie.clone(),
        );
        shared.deliver_inbound(env);
        let env = shared.envelope(remote, b.id(), Kind::Message, Priority::Normal, None, lie);
        shared.deliver_fan_out_inbound(env, None);
        hub.flush();
        let m = hub.metrics();
        assert_eq!(m.messages_dropped["payload_too_large"], 2);
        assert_eq!((m.messages_sent, m.queued_bytes), (0, 0));
        hub.shutdown().await.unwrap();
    }
}
