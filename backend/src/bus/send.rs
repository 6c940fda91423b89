//! The path of a message: `send` → route → the recipient's mailbox (`Mailbox::admit`).
//!
//! Every send to a recipient goes through that recipient's mailbox lock, which is what makes
//! per-pair FIFO hold and what lets shutdown flush without losing a message: a send that
//! took the lock before shutdown did lands in a batch that shutdown flushes; one that takes
//! it after sees `closing` and is refused.
//!
//! Two bounds apply under that lock: the mailbox's capacity in messages (the overflow
//! policy) and the hub's budget in queued bytes (the budget policy; see `budget.rs`).
//! A send that meets a full mailbox or a spent budget waits here, per the policy, outside
//! every lock. Messages from remote hubs never wait (`inbound.rs`).

use super::mailbox::{Admission, Mailbox, Refused};
use super::state::Bus;
use crate::{BudgetPolicy, Envelope, Error, MessageId, OverflowPolicy, Result};
use std::sync::Arc;
use tokio::time::Instant;

/// How a single send behaves when the mailbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Per the overflow policy.
    Policy,
    /// Never wait (`try_send`).
    Never,
}

impl Bus {
    /// Admits one envelope into `mailbox`.
    #[inline]
    pub(crate) fn admit_to(
        &self,
        mailbox: &Arc<Mailbox>,
        env: Envelope,
        flush_now: bool,
        recipients: usize,
    ) -> Result<(), Refused> {
        let to = env.to;
        let how = Admission {
            closing: self.closing_flag(),
            flush_now,
            recipients,
        };
        let admitted = mailbox.admit(env, how)?;
        self.after_admit(mailbox, admitted);
        self.watch_depth(to, mailbox);
        Ok(())
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
    pub(crate) async fn send_until(
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
                if recipients == 1 {
                    // A direct send owns its payload: compress it where that pays.
                    self.compress_for(mailbox, &mut env.payload);
                }
                match self.admit_to(mailbox, env, flush_now, recipients) {
                    Ok(()) => Ok(()),
                    Err(refused) => Err((refused, mailbox.clone())),
                }
            });
            let (refused, mailbox) = match outcome {
                Some(Ok(())) => return Ok(id),
                None => return Err(Error::UnknownAgent(to)),
                Some(Err((Refused::Error(e, _), _))) => return Err(e),
                Some(Err(refused)) => refused,
            };
            match refused {
                Refused::Full(back) => {
                    env = *back;
                    let at = match (wait, mailbox.policy()) {
                        (Wait::Policy, OverflowPolicy::Block { timeout }) => deadline.get(timeout),
                        _ => return Err(Error::MailboxFull(to)),
                    };
                    if tokio::time::timeout_at(at, mailbox.room()).await.is_err() {
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
                Refused::Error(e, _) => return Err(e),
            }
        }
    }

    /// Puts an envelope in its mailbox now, never waiting; the caller counts a refusal.
    pub(crate) fn enqueue_now(&self, env: Envelope, flush_now: bool) -> Result<(), Refused> {
        let to = env.to;
        self.route(to, |mailbox| {
            let mut env = env;
            self.compress_for(mailbox, &mut env.payload);
            self.admit_to(mailbox, env, flush_now, 1)
        })
        .unwrap_or(Err(Refused::Error(Error::UnknownAgent(to), None)))
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
    use crate::envelope::Kind;
    use crate::{AgentId, Hub, HubConfig, Payload, Priority};

    fn mailbox_of(hub: &Hub, id: AgentId) -> Arc<Mailbox> {
        hub.bus()
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
        let shared = hub.bus();
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
        let shared = hub.bus();
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
