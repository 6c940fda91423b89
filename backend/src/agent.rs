//! Agent handles: [`Agent`] owns a mailbox and receives; [`AgentSender`] is its sending half.

use crate::bus::{AgentSlot, Audience, Bus, Wait};
use crate::envelope::Kind;
use crate::{AgentId, Envelope, Error, MessageId, Payload, Priority, Result};
use std::sync::Arc;
use std::time::Duration;

/// The sending half of an agent: `Clone + Send + Sync`, for other tasks.
///
/// Every clone sends as the same agent, through the same batches, so messages from one
/// agent to one recipient stay in order whichever handle sent them.
#[derive(Clone, Debug)]
pub struct AgentSender {
    bus: Arc<Bus>,
    slot: Arc<AgentSlot>,
}

/// A registered agent: its id, its mailbox, and every way to send.
///
/// Dropping it deregisters the agent: later sends to its id fail with
/// [`Error::UnknownAgent`], and messages left in its mailbox are counted as dropped
/// (`recipient_gone`).
#[derive(Debug)]
pub struct Agent {
    sender: AgentSender,
    hand: std::collections::VecDeque<Envelope>,
    /// Messages handed out by `recv` since the last report to the hub's counters.
    taken: u64,
    /// Batches taken, for sampling their latency.
    batches: u32,
}

/// One batch in this many has its delivery latency recorded (the first one always): a
/// clock read per batch was 10% of a request's round trip when batches hold one message.
const LATENCY_SAMPLE: u32 = 8;

impl AgentSender {
    pub(crate) fn new(bus: Arc<Bus>, slot: Arc<AgentSlot>) -> Self {
        Self { bus, slot }
    }

    /// This agent's id.
    pub fn id(&self) -> AgentId {
        self.slot.id
    }

    /// The name it registered with.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    fn message(&self, to: AgentId, kind: Kind, priority: Priority, payload: Payload) -> Envelope {
        self.bus
            .envelope(self.slot.id, to, kind, priority, None, payload)
    }

    /// Sends at `Normal` priority. Batched: it leaves when the batch fills, lingers out, or
    /// a `Critical` message follows. Waits only when the mailbox is full (per the policy).
    pub async fn send(&self, to: AgentId, payload: impl Into<Payload>) -> Result<MessageId> {
        self.send_with(to, payload, Priority::Normal).await
    }

    /// Sends with a priority; at or above `flush_priority` (default `Critical`) the batch
    /// leaves at once.
    ///
    /// # Errors
    ///
    /// `UnknownAgent`, `ShuttingDown`, `PayloadTooLarge` (declared or stored size over
    /// `max_payload`), `MailboxFull` per the overflow policy, and `Overloaded` when the
    /// hub's queued messages are at `max_queued_bytes` (per `budget_policy`).
    pub async fn send_with(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        priority: Priority,
    ) -> Result<MessageId> {
        // Take part in tokio's cooperative scheduling as a channel send does, so a task
        // that only sends still lets the receivers on its worker thread run.
        tokio::task::coop::consume_budget().await;
        let payload = self.bus.prepare(payload.into())?;
        let env = self.message(to, Kind::Message, priority, payload);
        self.bus.send_one(env, Wait::Policy, false).await
    }

    /// Sends without ever waiting: `Error::MailboxFull` when there is no room (except under
    /// `DropOldest`, which evicts to accept), `Error::Overloaded` when the hub's queued-bytes
    /// budget has none.
    ///
    /// # Errors
    ///
    /// As [`send_with`](Self::send_with), never waiting.
    pub fn try_send(&self, to: AgentId, payload: impl Into<Payload>) -> Result<MessageId> {
        let payload = self.bus.prepare(payload.into())?;
        let env = self.message(to, Kind::Message, Priority::Normal, payload);
        let fut = self.bus.send_one(env, Wait::Never, false);
        // With `Wait::Never` the future completes on its first poll.
        match poll_once(fut) {
            Some(result) => result,
            None => Err(Error::MailboxFull(to)),
        }
    }

    /// Sends to every registered agent but this one, sharing one payload. Returns how many
    /// recipients accepted it; those whose mailbox stayed full (or that the queued-bytes
    /// budget refused) are counted as dropped, waiting at most one timeout in all.
    ///
    /// # Errors
    ///
    /// `ShuttingDown`, `PayloadTooLarge`; a full or over-budget recipient is a drop, not an
    /// error.
    pub async fn broadcast(&self, payload: impl Into<Payload>) -> Result<usize> {
        tokio::task::coop::consume_budget().await;
        let payload = self.bus.prepare(payload.into())?;
        self.bus
            .fan_out(self.slot.id, Audience::Everyone, Priority::Normal, payload)
            .await
    }

    /// Sends to every subscriber of `topic` (this agent too, if subscribed... except the
    /// sender itself). Returns how many accepted it.
    pub async fn publish(&self, topic: &str, payload: impl Into<Payload>) -> Result<usize> {
        self.publish_with(topic, payload, Priority::Normal).await
    }

    /// `publish` with a priority.
    pub async fn publish_with(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
        priority: Priority,
    ) -> Result<usize> {
        tokio::task::coop::consume_budget().await;
        let payload = self.bus.prepare(payload.into())?;
        self.bus
            .fan_out(self.slot.id, Audience::Topic(topic), priority, payload)
            .await
    }

    /// Sends a request and waits for its reply, at most `timeout`. The request's batch
    /// leaves at once.
    pub async fn request(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        let payload = self.bus.prepare(payload.into())?;
        let env = self.message(to, Kind::Request, Priority::High, payload);
        let id = env.id;
        // Dropping this future at any await below drops `pending`, which removes the entry.
        let (pending, reply) = self.bus.requests.insert(id, to);
        self.bus.send_one(env, Wait::Policy, true).await?;
        self.bus.metrics.requests.add(1);
        let outcome = self.bus.await_reply(id, reply, timeout).await;
        if !matches!(outcome, Err(Error::RequestTimeout { .. })) {
            // A reply took the entry, or shutdown cleared the table.
            pending.answered();
        }
        outcome
    }

    /// Answers a request. Anything this agent already batched for the requester leaves
    /// first. A reply to a requester that stopped waiting is counted (`reply_orphaned`).
    pub async fn reply(&self, request: &Envelope, payload: impl Into<Payload>) -> Result<()> {
        if !request.is_request() {
            return Err(Error::NotARequest(request.id));
        }
        if self.bus.is_closing() {
            return self.bus.metrics.fail(Error::ShuttingDown);
        }
        let payload = self.bus.prepare(payload.into())?;
        self.bus.flush_to(request.from);
        let env = self.message(
            request.from,
            Kind::Reply(request.id),
            request.priority,
            payload,
        );
        self.bus.deliver_reply(env, request.id);
        Ok(())
    }

    /// Subscribes to a topic (idempotent).
    pub fn subscribe(&self, topic: &str) -> Result<()> {
        match self.bus.registry.subscribe(&self.slot, topic) {
            Ok(()) => Ok(()),
            Err(e) => self.bus.metrics.fail(e),
        }
    }

    /// Unsubscribes; returns whether it was subscribed.
    pub fn unsubscribe(&self, topic: &str) -> bool {
        self.bus.registry.unsubscribe(&self.slot, topic)
    }
}

impl Agent {
    pub(crate) fn new(sender: AgentSender) -> Self {
        Self {
            sender,
            hand: std::collections::VecDeque::new(),
            taken: 0,
            batches: 0,
        }
    }

    /// A sending half for other tasks.
    pub fn sender(&self) -> AgentSender {
        self.sender.clone()
    }

    /// Waits for the next message: highest priority first, FIFO per sender within a
    /// priority. `None` once the hub has shut down and the mailbox is drained.
    pub async fn recv(&mut self) -> Option<Envelope> {
        if let Some(env) = self.hand.pop_front() {
            self.taken += 1;
            return Some(env);
        }
        self.recycle();
        let batch = self.sender.slot.mailbox.next_batch().await?;
        self.take(batch)
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Envelope> {
        if let Some(env) = self.hand.pop_front() {
            self.taken += 1;
            return Some(env);
        }
        self.recycle();
        let batch = self.sender.slot.mailbox.pop()?;
        self.take(batch)
    }

    /// Hands the emptied buffer of the last batch back to the pool.
    fn recycle(&mut self) {
        if self.hand.capacity() != 0 {
            let buffer = Vec::from(std::mem::take(&mut self.hand));
            self.sender.bus.pools.batches.put(buffer);
        }
    }

    /// Messages waiting in this agent's mailbox (not counting the batch in hand).
    pub fn pending(&self) -> usize {
        self.sender.slot.mailbox.depth() + self.hand.len()
    }

    fn take(&mut self, batch: Vec<Envelope>) -> Option<Envelope> {
        // Every message of a batch carries the batch's opening time: one clock read and
        // one histogram update per sampled batch.
        self.batches = self.batches.wrapping_add(1);
        let sampled = self.batches % LATENCY_SAMPLE == 1;
        if let Some(first) = batch.first().filter(|_| sampled) {
            let now = crate::envelope::nanos_since_epoch(tokio::time::Instant::now());
            let waited = std::time::Duration::from_nanos(now.saturating_sub(first.sent_at));
            self.sender
                .bus
                .metrics
                .latency
                .observe_n(waited.as_secs_f64(), batch.len() as u64);
        }
        let metrics = &self.sender.bus.metrics;
        metrics.received.add(self.taken);
        self.taken = 1;
        self.hand = batch.into();
        let first = self.hand.pop_front();
        if first.is_none() {
            self.taken = 0;
        }
        first
    }
}

macro_rules! delegate {
    ($($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl Agent {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.sender.$name($($arg),*)
                }
            )*
        }
    };
}

delegate! {
    /// This agent's id.
    fn id(&self) -> AgentId;
    /// The name it registered with.
    fn name(&self) -> &str;
    /// Sends without waiting; see [`AgentSender::try_send`].
    fn try_send(&self, to: AgentId, payload: impl Into<Payload>) -> Result<MessageId>;
    /// Subscribes to a topic; see [`AgentSender::subscribe`].
    fn subscribe(&self, topic: &str) -> Result<()>;
    /// Unsubscribes; see [`AgentSender::unsubscribe`].
    fn unsubscribe(&self, topic: &str) -> bool;
}

impl Agent {
    /// Sends at `Normal` priority; see [`AgentSender::send`].
    pub async fn send(&self, to: AgentId, payload: impl Into<Payload>) -> Result<MessageId> {
        self.sender.send(to, payload).await
    }

    /// Sends with a priority; see [`AgentSender::send_with`].
    pub async fn send_with(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        priority: Priority,
    ) -> Result<MessageId> {
        self.sender.send_with(to, payload, priority).await
    }

    /// Sends to every other agent; see [`AgentSender::broadcast`].
    pub async fn broadcast(&self, payload: impl Into<Payload>) -> Result<usize> {
        self.sender.broadcast(payload).await
    }

    /// Publishes on a topic; see [`AgentSender::publish`].
    pub async fn publish(&self, topic: &str, payload: impl Into<Payload>) -> Result<usize> {
        self.sender.publish(topic, payload).await
    }

    /// Publishes with a priority; see [`AgentSender::publish_with`].
    pub async fn publish_with(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
        priority: Priority,
    ) -> Result<usize> {
        self.sender.publish_with(topic, payload, priority).await
    }

    /// Request/reply; see [`AgentSender::request`].
    pub async fn request(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        self.sender.request(to, payload, timeout).await
    }

    /// Answers a request; see [`AgentSender::reply`].
    pub async fn reply(&self, request: &Envelope, payload: impl Into<Payload>) -> Result<()> {
        self.sender.reply(request, payload).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let bus = &self.sender.bus;
        bus.deregister(&self.sender.slot, self.hand.len());
        bus.metrics.received.add(self.taken);
    }
}

/// Polls a future once with a no-op waker.
fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}
