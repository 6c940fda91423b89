//! Agent handles: [`Agent`] owns a mailbox and receives; [`AgentSender`] is its sending half.

use crate::bus::Abandoned;
use crate::bus::{AgentSlot, Audience, Bus, GroupKind, Wait};
use crate::call::Call;
use crate::envelope::Kind;
use crate::headers::{self, CallRef, Headers};
use crate::stream::{ReplyStream, Responder};
use crate::{AgentId, Envelope, Error, MessageId, Payload, Priority, Result};
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::Duration;

/// `value` as a JSON payload.
fn to_json(value: &impl serde::Serialize) -> Result<Payload> {
    serde_json::to_vec(value)
        .map(Payload::from)
        .map_err(Error::Encode)
}

/// The sending half of an agent: `Clone + Send + Sync`, for other tasks.
///
/// Every clone sends as the same agent, through the same batches, so messages from one
/// agent to one recipient stay in the order they were sent, whichever handle sent them.
/// It cannot receive: the mailbox stays with the [`Agent`], and the agent deregisters when
/// that is dropped, even while senders remain (they can still send as its id).
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use swarmbus::{Hub, HubConfig};
///
/// let hub = Hub::start(HubConfig::default())?;
/// let producer = hub.register("producer")?;
/// let mut consumer = hub.register("consumer")?;
/// let to = consumer.id();
///
/// // The `Agent` stays here; copies of its sending half go to other tasks.
/// let tasks: Vec<_> = (0..2u8)
///     .map(|task| {
///         let tx = producer.sender();
///         tokio::spawn(async move {
///             for i in 0..3u8 {
///                 tx.send(to, vec![task, i]).await?;
///             }
///             Ok::<_, swarmbus::Error>(())
///         })
///     })
///     .collect();
/// for task in tasks {
///     task.await.unwrap()?;
/// }
///
/// // All six come from `producer`; each task's messages arrive in the order it sent them.
/// let mut next = [0u8; 2];
/// for _ in 0..6 {
///     let env = consumer.recv().await.unwrap();
///     assert_eq!(env.from(), producer.id());
///     let bytes = env.payload().bytes()?;
///     let (task, i) = (usize::from(bytes[0]), bytes[1]);
///     assert_eq!(i, next[task]);
///     next[task] += 1;
/// }
/// hub.shutdown().await?;
/// # Ok(()) }
/// ```
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
///
/// `recv` takes `&mut self`: one task receives. To send from other tasks, hand them an
/// [`AgentSender`] ([`sender`](Self::sender)).
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use swarmbus::{Error, Hub, HubConfig};
///
/// let hub = Hub::start(HubConfig::default())?;
/// let planner = hub.register("planner")?;
/// let mut worker = hub.register("worker")?;
/// worker.subscribe("plans")?;
///
/// assert_eq!(planner.publish("plans", "step 1").await?, 1); // one subscriber took it
/// planner.send(worker.id(), "step 2").await?;
///
/// // What waits, the open batch included: no linger to wait out.
/// let first = worker.try_recv().unwrap();
/// assert_eq!(first.topic(), Some("plans"));
/// let second = worker.recv().await.unwrap();
/// assert_eq!((second.topic(), second.payload().to_text()?.as_str()), (None, "step 2"));
/// assert!(worker.try_recv().is_none());
///
/// let gone = worker.id();
/// drop(worker); // deregisters
/// let err = planner.send(gone, "anyone?").await.unwrap_err();
/// assert!(matches!(err, Error::UnknownAgent(id) if id == gone));
/// hub.shutdown().await?;
/// # Ok(()) }
/// ```
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

    /// Ends the owner's wait for mail: its `recv` returns `None` from now on, while
    /// `try_recv` still hands out what is queued (a spawned agent's stop).
    pub(crate) fn interrupt_receiver(&self) {
        self.slot.mailbox.interrupt();
    }

    /// This agent's id.
    pub fn id(&self) -> AgentId {
        self.slot.id
    }

    /// Whether the hub is shutting down.
    pub(crate) fn is_closing(&self) -> bool {
        self.bus.is_closing()
    }

    /// Keeps `env` among the dead letters, dropped for `reason`.
    pub(crate) fn dead_letter(&self, reason: crate::metrics::DropReason, env: Envelope) {
        self.bus.dead_letter(reason, env);
    }

    /// [`dead_letter`](Self::dead_letter) for a message whose payload is not at hand.
    pub(crate) fn dead_letter_without_payload(
        &self,
        reason: crate::metrics::DropReason,
        env: Envelope,
    ) {
        self.bus.dead_letter_without_payload(reason, env);
    }

    /// The name it registered with.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    fn message(&self, to: AgentId, kind: Kind, priority: Priority, payload: Payload) -> Envelope {
        // The active span's trace context, with the `otel` feature (else always `None`).
        let headers = headers::for_message(false);
        self.bus
            .envelope(self.slot.id, to, kind, priority, headers, payload)
    }

    /// Sends at `Normal` priority. Batched: it leaves when the batch fills, lingers out, or
    /// a `Critical` message follows. Waits only when the mailbox is full or the queued-bytes
    /// budget is spent (per the policies).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownAgent`], [`Error::PayloadTooLarge`], [`Error::MailboxFull`],
    /// [`Error::Overloaded`] and [`Error::ShuttingDown`], in the cases listed under
    /// [`send_with`](Self::send_with).
    pub async fn send(&self, to: AgentId, payload: impl Into<Payload>) -> Result<MessageId> {
        self.send_with(to, payload, Priority::Normal).await
    }

    /// Sends with a priority; at or above `flush_priority` (default `Critical`) the batch
    /// leaves at once.
    ///
    /// # Errors
    ///
    /// - [`Error::UnknownAgent`]: no agent `to` is registered with this hub or known on
    ///   another one (it never was, or it left, also while this send waited for room).
    /// - [`Error::PayloadTooLarge`]: the payload's declared or stored size is over
    ///   [`max_payload`](crate::HubConfig::max_payload); for an agent on another hub, also a
    ///   stored size that does not fit one NATS frame.
    /// - [`Error::MailboxFull`]: the recipient's mailbox holds `mailbox_capacity` messages
    ///   and the [overflow policy](crate::OverflowPolicy) refuses: at once under `Reject`,
    ///   after its timeout under `Block`, never under `DropOldest` (it evicts instead). For
    ///   an agent on another hub: the link's outage buffer (`outage_buffer`) is full, at
    ///   once whatever the policy.
    /// - [`Error::Overloaded`]: the hub's queued messages are at
    ///   [`max_queued_bytes`](crate::HubConfig::max_queued_bytes) and the
    ///   [budget policy](crate::BudgetPolicy) refuses: at once under `Reject`, after its
    ///   timeout under `Block`. Only for local recipients: links to other hubs are not
    ///   charged.
    /// - [`Error::ShuttingDown`]: the hub's shutdown has begun (a send waiting for room when
    ///   it begins gets it too).
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
    /// The errors of [`send_with`](Self::send_with), never waiting:
    /// [`Error::MailboxFull`] at once when the mailbox (or a remote hub's outage buffer) is
    /// full, whatever the overflow policy, except under `DropOldest`, which evicts to
    /// accept; [`Error::Overloaded`] at once when the budget has no room, whatever the
    /// budget policy; [`Error::UnknownAgent`], [`Error::PayloadTooLarge`] and
    /// [`Error::ShuttingDown`] as for `send_with`.
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

    /// Sends to every registered agent but this one, sharing one payload, and, in a NATS
    /// swarm, one copy to the other hubs. Returns how many local recipients accepted it;
    /// those whose mailbox stayed full (or that the queued-bytes budget refused) are counted
    /// as dropped, waiting at most one timeout in all.
    ///
    /// # Errors
    ///
    /// - [`Error::PayloadTooLarge`]: the payload is over
    ///   [`max_payload`](crate::HubConfig::max_payload); in a NATS swarm, also a stored size
    ///   that does not fit one frame (checked before any delivery).
    /// - [`Error::ShuttingDown`]: the hub's shutdown has begun, possibly after some
    ///   recipients got their copy.
    /// - [`Error::MailboxFull`]: in a NATS swarm, the outage buffer of the link that carries
    ///   fan-out to the other hubs is full. The local recipients already have their copies,
    ///   and the error carries the nil id, not an agent's.
    ///
    /// A local recipient whose mailbox stays full, or that the queued-bytes budget refuses,
    /// is a counted drop (`mailbox_full`, `memory_budget`), not an error.
    pub async fn broadcast(&self, payload: impl Into<Payload>) -> Result<usize> {
        tokio::task::coop::consume_budget().await;
        let payload = self.bus.prepare(payload.into())?;
        self.bus
            .fan_out(self.slot.id, Audience::Everyone, Priority::Normal, payload)
            .await
    }

    /// Sends to every subscriber of `topic` but this agent (even when it is subscribed),
    /// and, in a NATS swarm, to the other hubs' subscribers. Returns how many local
    /// subscribers accepted it (0 when there are none); full or over-budget ones are counted
    /// as dropped, as for [`broadcast`](Self::broadcast).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopic`] for a name that is empty or over 256 bytes, or has an empty
    /// `.`-separated level, whitespace, control characters, `*` or `>` (checked before any
    /// delivery); otherwise as [`broadcast`](Self::broadcast): [`Error::PayloadTooLarge`],
    /// [`Error::ShuttingDown`], [`Error::MailboxFull`] (the NATS topic link's outage buffer).
    pub async fn publish(&self, topic: &str, payload: impl Into<Payload>) -> Result<usize> {
        self.publish_with(topic, payload, Priority::Normal).await
    }

    /// [`publish`](Self::publish) with a priority.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish): [`Error::InvalidTopic`], [`Error::PayloadTooLarge`],
    /// [`Error::ShuttingDown`], [`Error::MailboxFull`].
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

    /// Sends a request (at `High` priority) and waits for its reply, at most `timeout`. The
    /// request's batch leaves at once. `timeout` bounds the wait for the reply; sending may
    /// first wait for room, per the overflow and budget policies.
    ///
    /// # Errors
    ///
    /// - [`Error::UnknownAgent`], [`Error::PayloadTooLarge`], [`Error::MailboxFull`],
    ///   [`Error::Overloaded`], [`Error::ShuttingDown`]: the request could not be sent, as
    ///   for [`send_with`](Self::send_with).
    /// - [`Error::RequestTimeout`]: no reply came within `timeout` (the responder is slow,
    ///   never replies, or left).
    /// - [`Error::ShuttingDown`]: the hub shut down while the request waited for its reply.
    pub async fn request(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        self.request_with(to, payload.into(), timeout, Headers::default())
            .await
    }

    /// Sends a request (at `High` priority) whose answer comes as a stream of chunks, and
    /// returns the stream at once. `timeout` is the request's deadline: it travels to the
    /// callee ([`Envelope::deadline`]), and the stream ends with
    /// [`Error::RequestTimeout`] when it passes. Cancelling or dropping the stream
    /// cancels the request, on this hub or another.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> swarmbus::Result<()> {
    /// use futures_util::StreamExt;
    /// use std::time::Duration;
    /// use swarmbus::{Hub, HubConfig};
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let alice = hub.register("alice")?;
    /// let mut bob = hub.register("bob")?;
    /// let bob_id = bob.id();
    /// tokio::spawn(async move {
    ///     let req = bob.recv().await.unwrap();
    ///     let mut out = bob.respond(&req)?;
    ///     for word in ["stream", "of", "tokens"] {
    ///         out.send(word).await?;
    ///     }
    ///     out.finish(".").await
    /// });
    /// let mut stream = alice.request_stream(bob_id, "write", Duration::from_secs(5)).await?;
    /// let mut text = String::new();
    /// while let Some(chunk) = stream.next().await {
    ///     text.push_str(&chunk?.payload().to_text()?);
    /// }
    /// assert_eq!(text, "streamoftokens.");
    /// # hub.shutdown().await?; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownAgent`], [`Error::PayloadTooLarge`], [`Error::MailboxFull`],
    /// [`Error::Overloaded`], [`Error::ShuttingDown`]: the request could not be sent, as
    /// for [`send_with`](Self::send_with). What goes wrong later is an `Err` item of the
    /// stream.
    pub async fn request_stream(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<ReplyStream> {
        self.open_stream(to, payload.into(), timeout, Headers::default())
            .await
    }

    async fn open_stream(
        &self,
        to: AgentId,
        payload: Payload,
        timeout: Duration,
        headers: Headers,
    ) -> Result<ReplyStream> {
        let (env, call) = self.request_envelope(to, payload, timeout, headers)?;
        // Registered first, so no chunk can come before its stream; dropped unsent (this
        // future dropped while waiting for room), it cancels nothing.
        let deadline = env
            .headers
            .as_ref()
            .and_then(|h| h.deadline)
            .unwrap_or(u64::MAX);
        let mut stream = ReplyStream::open(
            self.bus.clone(),
            env.id,
            (self.slot.id, to),
            call,
            (timeout, deadline),
        );
        self.bus.send_one(env, Wait::Policy, true).await?;
        stream.sent();
        Ok(stream)
    }

    /// Makes a request on behalf of `parent` (a request this agent is answering): it
    /// inherits the parent's remaining deadline, its correlation id and its trace context,
    /// and it is cancelled when the parent is (by its caller, its deadline or shutdown), on
    /// this hub or another, however deep the chain.
    ///
    /// # Errors
    ///
    /// - [`Error::NotARequest`]: `parent` is not a request.
    /// - [`Error::Cancelled`] / [`Error::DeadlineExceeded`]: the parent was cancelled or
    ///   its deadline passed (before or while this request waited).
    /// - [`Error::RequestTimeout`]: no reply within the parent's remaining time.
    /// - As [`request`](Self::request) otherwise.
    pub async fn request_within(
        &self,
        parent: &Envelope,
        to: AgentId,
        payload: impl Into<Payload>,
    ) -> Result<Envelope> {
        let (timeout, headers) = within(parent)?;
        tokio::select! {
            reply = self.request_with(to, payload.into(), timeout, headers) => reply,
            // Dropping the nested request's future cancels it, and its callee hears.
            () = parent.cancelled() => Err(cancelled_error(parent)),
        }
    }

    /// A streamed request on behalf of `parent`; see [`request_within`](Self::request_within)
    /// and [`request_stream`](Self::request_stream). When the parent is cancelled, the
    /// nested request is cancelled and its stream ends with [`Error::Cancelled`].
    ///
    /// # Errors
    ///
    /// As [`request_within`](Self::request_within), for sending the request.
    pub async fn request_stream_within(
        &self,
        parent: &Envelope,
        to: AgentId,
        payload: impl Into<Payload>,
    ) -> Result<ReplyStream> {
        let (timeout, headers) = within(parent)?;
        let stream = self
            .open_stream(to, payload.into(), timeout, headers)
            .await?;
        stream.cancel_with(parent.clone());
        Ok(stream)
    }

    /// Answers `request` with a stream of chunks: [`Responder::send`] them, then
    /// [`Responder::finish`] (or [`Responder::fail`]). A caller that used
    /// [`request`](Self::request) gets only the final chunk.
    ///
    /// # Errors
    ///
    /// [`Error::NotARequest`] for a message that is not a request; [`Error::ShuttingDown`]
    /// once the hub's shutdown has begun.
    pub fn respond(&self, request: &Envelope) -> Result<Responder> {
        Responder::new(self.bus.clone(), self.slot.id, request)
    }

    /// Sends `value` as a JSON request (content type `application/json`) and waits for the
    /// reply, at most `timeout`; decode it with [`Envelope::json`].
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when `value` does not serialize; otherwise as
    /// [`request`](Self::request).
    pub async fn request_json(
        &self,
        to: AgentId,
        value: &impl serde::Serialize,
        timeout: Duration,
    ) -> Result<Envelope> {
        let headers = Headers {
            content_type: Some(headers::JSON.into()),
            ..Headers::default()
        };
        self.request_with(to, to_json(value)?, timeout, headers)
            .await
    }

    /// Sends `value` as JSON (content type `application/json`) at `Normal` priority, batched
    /// as [`send`](Self::send); the recipient decodes it with [`Envelope::json`].
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when `value` does not serialize (a map with non-string keys, say);
    /// otherwise as [`send`](Self::send).
    pub async fn send_json(&self, to: AgentId, value: &impl serde::Serialize) -> Result<MessageId> {
        tokio::task::coop::consume_budget().await;
        let payload = self.bus.prepare(to_json(value)?)?;
        let env = self.bus.envelope(
            self.slot.id,
            to,
            Kind::Message,
            Priority::Normal,
            headers::for_message(true),
            payload,
        );
        self.bus.send_one(env, Wait::Policy, false).await
    }

    /// A request with `headers`, whose deadline is set from `timeout`: the callee sees it
    /// ([`Envelope::deadline`]), on this hub or another.
    async fn request_with(
        &self,
        to: AgentId,
        payload: Payload,
        timeout: Duration,
        headers: Headers,
    ) -> Result<Envelope> {
        let (env, call) = self.request_envelope(to, payload, timeout, headers)?;
        let id = env.id;
        let from = self.slot.id;
        // A callee on another hub hears of a request abandoned (or timed out) unanswered.
        let bus = &self.bus;
        let abandoned: Option<Abandoned<'_>> = (!bus.registry.contains(to))
            .then(|| Box::new(move |_| bus.send_cancel(id, from, to)) as Abandoned<'_>);
        // Dropping this future at any await below drops `pending`, which removes the entry.
        let (pending, reply) = bus.requests.insert(id, to, call, abandoned);
        bus.send_one(env, Wait::Policy, true).await?;
        bus.metrics.requests.add(1);
        let outcome = bus.await_reply(id, reply, timeout).await;
        match outcome {
            Err(Error::RequestTimeout { .. }) => pending.expired(),
            // A reply took the entry, or shutdown cleared the table.
            _ => pending.answered(),
        }
        outcome
    }

    /// A request to `to` (at `High` priority) with `headers`, its deadline `timeout` from
    /// now, the active span's trace (feature `otel`, else the inherited one), and its
    /// cancellation state, which the returned `Call` shares.
    fn request_envelope(
        &self,
        to: AgentId,
        payload: Payload,
        timeout: Duration,
        mut headers: Headers,
    ) -> Result<(Envelope, Arc<Call>)> {
        let payload = self.bus.prepare(payload)?;
        let call = Arc::new(Call::default());
        headers.deadline = Some(headers::deadline_after(timeout));
        headers.call = Some(CallRef(call.clone()));
        headers.trace_parent = crate::trace::current().or(headers.trace_parent);
        let env = self.bus.envelope(
            self.slot.id,
            to,
            Kind::Request,
            Priority::High,
            Some(Arc::new(headers)),
            payload,
        );
        Ok((env, call))
    }

    /// Answers a request. Anything this agent already batched for the requester leaves
    /// first. A reply to a requester that stopped waiting is counted (`reply_orphaned`).
    ///
    /// # Errors
    ///
    /// - [`Error::NotARequest`]: `request` is not a request (checked first).
    /// - [`Error::ShuttingDown`]: the hub's shutdown has begun.
    /// - [`Error::PayloadTooLarge`]: the payload is over
    ///   [`max_payload`](crate::HubConfig::max_payload).
    ///
    /// A reply that cannot be handed over (its requester stopped waiting or left, or the
    /// link to the requester's hub is full) is counted as `reply_orphaned`, not an error.
    pub async fn reply(&self, request: &Envelope, payload: impl Into<Payload>) -> Result<()> {
        if !request.is_request() {
            return Err(Error::NotARequest(request.id));
        }
        if self.bus.is_closing() {
            return self.bus.metrics.fail(Error::ShuttingDown);
        }
        let payload = self.bus.prepare(payload.into())?;
        self.bus.flush_to(request.from);
        // Its headers come from the request (and the active span), not from `message`.
        let env = self.bus.envelope(
            self.slot.id,
            request.from,
            Kind::Reply(request.id),
            request.priority,
            crate::stream::reply_headers(request),
            payload,
        );
        self.bus.deliver_reply(env, request.id);
        self.bus.calls.close(request.id);
        Ok(())
    }

    /// Subscribes to a topic (idempotent).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopic`] for a name that is empty or over 256 bytes, or has an empty
    /// `.`-separated level, whitespace, control characters, `*` or `>`.
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
        loop {
            let env = match self.next_in_hand() {
                Some(env) => env,
                None => {
                    let batch = self.sender.slot.mailbox.next_batch().await?;
                    self.take(batch)?
                }
            };
            if let Some(env) = self.hand_over(env) {
                return Some(env);
            }
        }
    }

    /// [`recv`](Self::recv) as a poll, for a loop that drives its own future (a spawned
    /// agent's). Pending leaves the task's waker with the mailbox: only for an owner that
    /// polls again or drops the agent.
    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Envelope>> {
        loop {
            let env = match self.next_in_hand() {
                Some(env) => env,
                None => {
                    let Some(batch) = ready!(self.sender.slot.mailbox.poll_next_batch(cx)) else {
                        return Poll::Ready(None);
                    };
                    match self.take(batch) {
                        Some(env) => env,
                        None => return Poll::Ready(None),
                    }
                }
            };
            if let Some(env) = self.hand_over(env) {
                return Poll::Ready(Some(env));
            }
        }
    }

    /// The next message of the batch in hand; `None` when it is empty, its buffer back in
    /// the pool.
    #[inline]
    fn next_in_hand(&mut self) -> Option<Envelope> {
        let env = self.hand.pop_front();
        match env {
            Some(_) => self.taken += 1,
            None => self.recycle(),
        }
        env
    }

    /// A message leaves the mailbox: a durable transport acknowledges it once the agent
    /// drops it; an expired request is not handed out (`None`).
    #[inline]
    fn hand_over(&self, env: Envelope) -> Option<Envelope> {
        if let Some(h) = &env.headers {
            h.receipt.hand_over();
        }
        (!self.expired(&env)).then_some(env)
    }

    /// A request whose deadline passed while it waited is not handed over: its requester
    /// has stopped waiting, and the work would be paid for and thrown away. Counted
    /// (`deadline_expired`).
    fn expired(&self, env: &Envelope) -> bool {
        if env.kind != Kind::Request {
            return false;
        }
        let Some(deadline) = env.headers.as_ref().and_then(|h| h.deadline) else {
            return false;
        };
        if !headers::passed(deadline) {
            return false;
        }
        let bus = &self.sender.bus;
        bus.dead_letter(crate::metrics::DropReason::DeadlineExpired, env.clone());
        bus.calls.close(env.id);
        true
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Envelope> {
        loop {
            let env = match self.next_in_hand() {
                Some(env) => env,
                None => {
                    let batch = self.sender.slot.mailbox.pop()?;
                    self.take(batch)?
                }
            };
            if let Some(env) = self.hand_over(env) {
                return Some(env);
            }
        }
    }

    /// Hands the emptied buffer of the last batch back to the pool.
    fn recycle(&mut self) {
        if self.hand.capacity() != 0 {
            let buffer = Vec::from(std::mem::take(&mut self.hand));
            self.sender.bus.pools.batches.put(buffer);
        }
    }

    /// Messages waiting for this agent: those queued in its mailbox plus the rest of the
    /// batch in hand. Messages still in the open batch (not yet flushed) are not counted.
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

/// The timeout and headers a request made within `parent` inherits.
fn within(parent: &Envelope) -> Result<(Duration, Headers)> {
    if !parent.is_request() {
        return Err(Error::NotARequest(parent.id));
    }
    if parent.is_cancelled() {
        return Err(cancelled_error(parent));
    }
    let h = parent.headers.as_deref();
    // A request from a hub of the previous version has no deadline: the nested one waits
    // at most a day, and still ends with its parent.
    let timeout = h
        .and_then(|h| h.deadline)
        .map_or(Duration::from_secs(86_400), headers::remaining);
    let headers = Headers {
        correlation: Some(parent.correlation_id()),
        trace_parent: h.and_then(|h| h.trace_parent.clone()),
        ..Headers::default()
    };
    Ok((timeout, headers))
}

/// Why a cancelled `parent` stopped a nested request.
fn cancelled_error(parent: &Envelope) -> Error {
    let by = parent
        .headers
        .as_deref()
        .and_then(|h| h.call.as_ref())
        .and_then(|c| c.0.cancelled_by());
    match by {
        Some(crate::call::CancelBy::Caller) => Error::Cancelled,
        Some(crate::call::CancelBy::Shutdown) => Error::ShuttingDown,
        Some(crate::call::CancelBy::Deadline) | None => Error::DeadlineExceeded,
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
    ///
    /// # Errors
    ///
    /// As [`AgentSender::try_send`]: [`Error::MailboxFull`], [`Error::Overloaded`],
    /// [`Error::UnknownAgent`], [`Error::PayloadTooLarge`], [`Error::ShuttingDown`].
    fn try_send(&self, to: AgentId, payload: impl Into<Payload>) -> Result<MessageId>;
    /// Subscribes to a topic; see [`AgentSender::subscribe`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopic`], as [`AgentSender::subscribe`].
    fn subscribe(&self, topic: &str) -> Result<()>;
    /// Unsubscribes; see [`AgentSender::unsubscribe`].
    fn unsubscribe(&self, topic: &str) -> bool;
}

impl Agent {
    /// Sends at `Normal` priority; see [`AgentSender::send`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::send_with`]: [`Error::UnknownAgent`], [`Error::PayloadTooLarge`],
    /// [`Error::MailboxFull`], [`Error::Overloaded`], [`Error::ShuttingDown`].
    pub async fn send(&self, to: AgentId, payload: impl Into<Payload>) -> Result<MessageId> {
        self.sender.send(to, payload).await
    }

    /// Sends with a priority; see [`AgentSender::send_with`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::send_with`]: [`Error::UnknownAgent`], [`Error::PayloadTooLarge`],
    /// [`Error::MailboxFull`], [`Error::Overloaded`], [`Error::ShuttingDown`].
    pub async fn send_with(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        priority: Priority,
    ) -> Result<MessageId> {
        self.sender.send_with(to, payload, priority).await
    }

    /// Sends to every other agent; see [`AgentSender::broadcast`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::broadcast`]: [`Error::PayloadTooLarge`], [`Error::ShuttingDown`],
    /// [`Error::MailboxFull`] (NATS fan-out link only).
    pub async fn broadcast(&self, payload: impl Into<Payload>) -> Result<usize> {
        self.sender.broadcast(payload).await
    }

    /// Publishes on a topic; see [`AgentSender::publish`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::publish`]: [`Error::InvalidTopic`], [`Error::PayloadTooLarge`],
    /// [`Error::ShuttingDown`], [`Error::MailboxFull`] (NATS topic link only).
    pub async fn publish(&self, topic: &str, payload: impl Into<Payload>) -> Result<usize> {
        self.sender.publish(topic, payload).await
    }

    /// Publishes with a priority; see [`AgentSender::publish_with`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::publish`]: [`Error::InvalidTopic`], [`Error::PayloadTooLarge`],
    /// [`Error::ShuttingDown`], [`Error::MailboxFull`] (NATS topic link only).
    pub async fn publish_with(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
        priority: Priority,
    ) -> Result<usize> {
        self.sender.publish_with(topic, payload, priority).await
    }

    /// Request/reply; see [`AgentSender::request`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request`]: [`Error::RequestTimeout`], and the errors of sending
    /// the request: [`Error::UnknownAgent`], [`Error::PayloadTooLarge`],
    /// [`Error::MailboxFull`], [`Error::Overloaded`], [`Error::ShuttingDown`].
    pub async fn request(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        self.sender.request(to, payload, timeout).await
    }

    /// Sends `value` as JSON; see [`AgentSender::send_json`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::send_json`]: [`Error::Encode`], and the errors of
    /// [`send`](AgentSender::send).
    pub async fn send_json(&self, to: AgentId, value: &impl serde::Serialize) -> Result<MessageId> {
        self.sender.send_json(to, value).await
    }

    /// A JSON request; see [`AgentSender::request_json`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request_json`]: [`Error::Encode`], and the errors of
    /// [`request`](AgentSender::request).
    pub async fn request_json(
        &self,
        to: AgentId,
        value: &impl serde::Serialize,
        timeout: Duration,
    ) -> Result<Envelope> {
        self.sender.request_json(to, value, timeout).await
    }

    /// A request answered by a stream of chunks; see [`AgentSender::request_stream`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request_stream`]: [`Error::UnknownAgent`],
    /// [`Error::PayloadTooLarge`], [`Error::MailboxFull`], [`Error::Overloaded`],
    /// [`Error::ShuttingDown`].
    pub async fn request_stream(
        &self,
        to: AgentId,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<ReplyStream> {
        self.sender.request_stream(to, payload, timeout).await
    }

    /// A request on behalf of `parent`; see [`AgentSender::request_within`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request_within`]: [`Error::NotARequest`], [`Error::Cancelled`],
    /// [`Error::DeadlineExceeded`], [`Error::RequestTimeout`], and the errors of sending.
    pub async fn request_within(
        &self,
        parent: &Envelope,
        to: AgentId,
        payload: impl Into<Payload>,
    ) -> Result<Envelope> {
        self.sender.request_within(parent, to, payload).await
    }

    /// A streamed request on behalf of `parent`; see
    /// [`AgentSender::request_stream_within`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request_stream_within`].
    pub async fn request_stream_within(
        &self,
        parent: &Envelope,
        to: AgentId,
        payload: impl Into<Payload>,
    ) -> Result<ReplyStream> {
        self.sender.request_stream_within(parent, to, payload).await
    }

    /// Answers a request with a stream; see [`AgentSender::respond`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::respond`]: [`Error::NotARequest`], [`Error::ShuttingDown`].
    pub fn respond(&self, request: &Envelope) -> Result<Responder> {
        self.sender.respond(request)
    }

    /// Answers a request; see [`AgentSender::reply`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::reply`]: [`Error::NotARequest`], [`Error::ShuttingDown`],
    /// [`Error::PayloadTooLarge`].
    pub async fn reply(&self, request: &Envelope, payload: impl Into<Payload>) -> Result<()> {
        self.sender.reply(request, payload).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let bus = &self.sender.bus;
        bus.deregister(&self.sender.slot, self.hand.drain(..));
        bus.metrics.received.add(self.taken);
    }
}

/// Groups and capabilities: work sent to a name, taken by one of the agents behind it.
impl AgentSender {
    /// Joins group `group` (idempotent): [`send_group`](Self::send_group) and the group
    /// requests may pick this agent. Leaving the hub leaves every group.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name that breaks the rules of topic names.
    pub fn join_group(&self, group: &str) -> Result<()> {
        self.bus.join_role(GroupKind::Group, &self.slot, group)
    }

    /// Leaves group `group`; false when this agent was not in it.
    pub fn leave_group(&self, group: &str) -> bool {
        self.bus.leave_group(&self.slot, group)
    }

    /// Sends to one member of `group`, chosen by load: the member with the shortest
    /// mailbox, ties broken round-robin (equal members share equal load).
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> swarmbus::Result<()> {
    /// use swarmbus::{Error, Hub, HubConfig};
    /// let hub = Hub::start(HubConfig::default())?;
    /// let boss = hub.register("boss")?;
    /// let mut a = hub.register("a")?;
    /// let mut b = hub.register("b")?;
    /// a.join_group("translators")?;
    /// b.join_group("translators")?;
    /// boss.send_group("translators", "one").await?;
    /// boss.send_group("translators", "two").await?;
    /// hub.flush();
    /// // One each: their mailboxes were equally short.
    /// assert!(a.try_recv().is_some() && b.try_recv().is_some());
    /// assert!(matches!(boss.send_group("nobody", "?").await, Err(Error::UnknownGroup(_))));
    /// # hub.shutdown().await?; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownGroup`] for a group without members; then as
    /// [`send`](Self::send).
    pub async fn send_group(&self, group: &str, payload: impl Into<Payload>) -> Result<MessageId> {
        let picked = self.bus.pick(&self.slot, GroupKind::Group, group)?;
        let id = self.send(picked.to, payload).await?;
        picked.sent();
        Ok(id)
    }

    /// A request to one member of `group`, chosen as by [`send_group`](Self::send_group).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownGroup`] for a group without members; then as
    /// [`request`](Self::request).
    pub async fn request_group(
        &self,
        group: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        let picked = self.bus.pick(&self.slot, GroupKind::Group, group)?;
        let _open = picked.in_flight();
        self.request(picked.to, payload, timeout).await
    }

    /// A streamed request to one member of `group`, chosen as by
    /// [`send_group`](Self::send_group).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownGroup`] for a group without members; then as
    /// [`request_stream`](Self::request_stream).
    pub async fn request_stream_group(
        &self,
        group: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<ReplyStream> {
        let picked = self.bus.pick(&self.slot, GroupKind::Group, group)?;
        let open = picked.in_flight();
        let mut stream = self.request_stream(picked.to, payload, timeout).await?;
        stream.hold(open);
        Ok(stream)
    }

    /// A request to one agent with `capability` (registered with
    /// [`Hub::register_with`](crate::Hub::register_with) or spawned with it), chosen by the
    /// group rules.
    ///
    /// # Errors
    ///
    /// [`Error::NoCapableAgent`] when no agent has it; then as [`request`](Self::request).
    pub async fn request_capability(
        &self,
        capability: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        let picked = self
            .bus
            .pick(&self.slot, GroupKind::Capability, capability)?;
        let _open = picked.in_flight();
        self.request(picked.to, payload, timeout).await
    }
}

/// The group and capability methods of [`AgentSender`], on the agent itself.
impl Agent {
    /// Joins a group; see [`AgentSender::join_group`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], as [`AgentSender::join_group`].
    pub fn join_group(&self, group: &str) -> Result<()> {
        self.sender.join_group(group)
    }

    /// Leaves a group; see [`AgentSender::leave_group`].
    pub fn leave_group(&self, group: &str) -> bool {
        self.sender.leave_group(group)
    }

    /// Sends to one member of a group; see [`AgentSender::send_group`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::send_group`].
    pub async fn send_group(&self, group: &str, payload: impl Into<Payload>) -> Result<MessageId> {
        self.sender.send_group(group, payload).await
    }

    /// A request to one member of a group; see [`AgentSender::request_group`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request_group`].
    pub async fn request_group(
        &self,
        group: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        self.sender.request_group(group, payload, timeout).await
    }

    /// A streamed request to one member of a group; see
    /// [`AgentSender::request_stream_group`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request_stream_group`].
    pub async fn request_stream_group(
        &self,
        group: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<ReplyStream> {
        self.sender
            .request_stream_group(group, payload, timeout)
            .await
    }

    /// A request to one agent with a capability; see [`AgentSender::request_capability`].
    ///
    /// # Errors
    ///
    /// As [`AgentSender::request_capability`].
    pub async fn request_capability(
        &self,
        capability: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Envelope> {
        self.sender
            .request_capability(capability, payload, timeout)
            .await
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
