//! A message as a recipient sees it.

use crate::headers::Headers;
use crate::{AgentId, Error, MessageId, Payload, Priority, Result};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// What kind of message an envelope carries. One byte and a request id at most (no
/// pointer: the topic lives in the headers), so an `Envelope` stays within 128 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// The stream kinds come only from the wire until streams are built on this side.
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
pub(crate) enum Kind {
    /// A one-way message (direct or broadcast).
    Message,
    /// A one-way message published on a topic (the topic is in the headers).
    Topic,
    /// A request; answer it with `reply`.
    Request,
    /// The answer to the request with this id: the final chunk of its stream.
    Reply(MessageId),
    /// A partial answer to the request with this id: more follow.
    Chunk(MessageId),
    /// The responder to the request with this id gave up (`Responder::fail`, or dropped
    /// unfinished): the final chunk, with the reason as payload.
    Failed(MessageId),
    /// The requester of the request with this id stopped waiting: the callee should stop.
    Cancel(MessageId),
}

impl Kind {
    /// The request a chunk, reply, failure or cancel belongs to.
    pub(crate) fn request(&self) -> Option<MessageId> {
        match self {
            Kind::Reply(id) | Kind::Chunk(id) | Kind::Failed(id) | Kind::Cancel(id) => Some(*id),
            Kind::Message | Kind::Topic | Kind::Request => None,
        }
    }
}

/// A delivered message: who sent it, its id, priority, topic, and payload.
///
/// Cheap to clone: the payload and topic are shared, never copied.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> swarmbus::Result<()> {
/// use swarmbus::{Hub, HubConfig, Priority};
/// let hub = Hub::start(HubConfig::default())?;
/// let alice = hub.register("alice")?;
/// let mut bob = hub.register("bob")?;
/// alice.send_with(bob.id(), "urgent", Priority::Critical).await?;
/// let env = bob.recv().await.unwrap();
/// assert_eq!(env.from(), alice.id());
/// assert_eq!(env.priority(), Priority::Critical);
/// assert_eq!(&*env.payload().bytes()?, b"urgent");
/// # hub.shutdown().await?; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Envelope {
    pub(crate) id: MessageId,
    pub(crate) from: AgentId,
    pub(crate) to: AgentId,
    pub(crate) kind: Kind,
    pub(crate) priority: Priority,
    pub(crate) payload: Payload,
    /// Nanoseconds since [`clock_epoch`], when the batch carrying it opened.
    pub(crate) sent_at: u64,
    /// Topic, correlation id, trace context, content type, deadline; `None` for none of
    /// them. Shared: every copy of a fan-out points to the same headers.
    pub(crate) headers: Option<Arc<Headers>>,
    /// Read from a durable log on a second or later delivery of its frame.
    pub(crate) redelivered: bool,
}

/// An envelope's fields but its payload: what a spawned agent's loop keeps of the message
/// its handler owns (88 bytes, against 128 for a whole envelope).
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    id: MessageId,
    from: AgentId,
    to: AgentId,
    kind: Kind,
    priority: Priority,
    sent_at: u64,
    headers: Option<Arc<Headers>>,
    redelivered: bool,
}

impl Meta {
    /// The envelope again, with this payload.
    pub(crate) fn with_payload(self, payload: Payload) -> Envelope {
        Envelope {
            id: self.id,
            from: self.from,
            to: self.to,
            kind: self.kind,
            priority: self.priority,
            payload,
            sent_at: self.sent_at,
            headers: self.headers,
            redelivered: self.redelivered,
        }
    }
}

impl Envelope {
    /// A copy of everything but the payload: no allocation, and no reference count
    /// touched but the headers'.
    #[inline]
    pub(crate) fn meta(&self) -> Meta {
        Meta {
            id: self.id,
            from: self.from,
            to: self.to,
            kind: self.kind,
            priority: self.priority,
            sent_at: self.sent_at,
            headers: self.headers.clone(),
            redelivered: self.redelivered,
        }
    }

    /// Its kind's name (`message`, `topic`, `request`, `reply`, `chunk`, `failed`, `cancel`).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Message => "message",
            Kind::Topic => "topic",
            Kind::Request => "request",
            Kind::Reply(_) => "reply",
            Kind::Chunk(_) => "chunk",
            Kind::Failed(_) => "failed",
            Kind::Cancel(_) => "cancel",
        }
    }

    /// Whether this message came from the durable log (`NatsConfig::durable`) on a second
    /// or later delivery: its hub may have handed it to this agent id before. The hub drops
    /// the copies it knows it delivered (`messages_deduplicated`), so one an agent still
    /// sees was handed over by an earlier run of its hub that crashed before acknowledging
    /// it. An agent that records what it has processed (by [`id`](Self::id)) only needs to
    /// check the messages where this is true. Always false on core NATS and on one hub.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// Settles the receipt of a message from a durable log, if it has one.
    pub(crate) fn settle(&self, outcome: crate::receipt::Outcome) {
        if let Some(h) = &self.headers {
            h.receipt.settle(outcome);
        }
    }

    /// The sender.
    pub fn from(&self) -> AgentId {
        self.from
    }

    /// The recipient.
    pub fn to(&self) -> AgentId {
        self.to
    }

    /// This message's id (a request's id is what its reply correlates to).
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Its priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The topic it was published on, for topic messages.
    pub fn topic(&self) -> Option<&str> {
        match self.kind {
            Kind::Topic => self.headers.as_ref().and_then(|h| h.topic.as_deref()),
            _ => None,
        }
    }

    /// True for a request: answer it with `Agent::reply`.
    pub fn is_request(&self) -> bool {
        self.kind == Kind::Request
    }

    /// For a reply (or a chunk of a streamed reply), the id of the request it answers.
    pub fn in_reply_to(&self) -> Option<MessageId> {
        match self.kind {
            Kind::Reply(id) | Kind::Chunk(id) | Kind::Failed(id) => Some(id),
            _ => None,
        }
    }

    /// True for the last chunk of a reply: a reply from `reply`, or `Responder::finish`.
    pub fn is_final(&self) -> bool {
        matches!(self.kind, Kind::Reply(_) | Kind::Failed(_))
    }

    /// The conversation this envelope belongs to: the same id on a request, its chunks,
    /// its reply and the nested requests made within it. A message that starts no
    /// conversation has its own id; a reply to a request that started one has the
    /// request's id.
    pub fn correlation_id(&self) -> MessageId {
        self.headers
            .as_ref()
            .and_then(|h| h.correlation)
            .or_else(|| self.kind.request())
            .unwrap_or(self.id)
    }

    /// The W3C trace context (`traceparent`) the sender attached, if any.
    pub fn trace_parent(&self) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.trace_parent.as_deref())
    }

    /// The sender's trace context as an OpenTelemetry context, to continue the trace on
    /// this side: `span.set_parent(env.trace_context())`. Empty when the sender had no
    /// span (or sent no valid `traceparent`).
    #[cfg(feature = "otel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
    pub fn trace_context(&self) -> opentelemetry::Context {
        crate::trace::context(self.trace_parent())
    }

    /// The payload's content type, if the sender set one (`application/json` from
    /// `send_json`).
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.content_type.as_deref())
    }

    /// For a request, when its requester stops waiting (its timeout, as wall-clock time, so
    /// that it means the same on every host).
    pub fn deadline(&self) -> Option<SystemTime> {
        self.headers.as_ref().and_then(|h| h.deadline_time())
    }

    /// For a request: whether its requester cancelled it (or dropped its stream or its
    /// request), its deadline passed, or the hub shut down. Always false for other messages.
    pub fn is_cancelled(&self) -> bool {
        let Some(h) = self.headers.as_deref().filter(|_| self.is_request()) else {
            return false;
        };
        h.call
            .as_ref()
            .is_some_and(|c| c.0.cancelled_by().is_some())
            || h.deadline.is_some_and(crate::headers::passed)
    }

    /// For a request: resolves when it is cancelled (see
    /// [`is_cancelled`](Self::is_cancelled)), so a callee can stop paid-for work. Never
    /// resolves for a message that is not a request.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> swarmbus::Result<()> {
    /// # use std::time::Duration;
    /// # use swarmbus::{Hub, HubConfig};
    /// let hub = Hub::start(HubConfig::default())?;
    /// let alice = hub.register("alice")?;
    /// let mut bob = hub.register("bob")?;
    /// let stream = alice.request_stream(bob.id(), "write an essay", Duration::from_secs(30)).await?;
    /// let req = bob.recv().await.unwrap();
    /// drop(stream); // the caller gives up
    /// tokio::time::timeout(Duration::from_secs(1), req.cancelled()).await.expect("cancelled");
    /// assert!(req.is_cancelled());
    /// # hub.shutdown().await?; Ok(()) }
    /// ```
    pub async fn cancelled(&self) {
        let Some(h) = self.headers.as_deref().filter(|_| self.is_request()) else {
            return std::future::pending().await;
        };
        let deadline = async {
            match h.deadline {
                Some(d) => tokio::time::sleep(crate::headers::remaining(d)).await,
                None => std::future::pending().await,
            }
        };
        match &h.call {
            Some(call) => {
                tokio::select! {
                    () = call.0.cancelled() => {}
                    () = deadline => {}
                }
            }
            None => deadline.await,
        }
    }

    /// Decodes the payload as JSON into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the payload is not JSON or not a `T`; the payload's own
    /// errors ([`Error::CorruptPayload`]) when its compressed bytes are corrupt.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> swarmbus::Result<()> {
    /// # use swarmbus::{Hub, HubConfig};
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Task { id: u32, text: String }
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let alice = hub.register("alice")?;
    /// let mut bob = hub.register("bob")?;
    /// alice.send_json(bob.id(), &Task { id: 7, text: "summarize".into() }).await?;
    /// let env = bob.recv().await.unwrap();
    /// assert_eq!(env.content_type(), Some("application/json"));
    /// assert_eq!(env.json::<Task>()?, Task { id: 7, text: "summarize".into() });
    /// assert!(matches!(env.json::<Vec<u8>>(), Err(swarmbus::Error::Decode(_))));
    /// # hub.shutdown().await?; Ok(()) }
    /// ```
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let bytes = self.payload.bytes()?;
        serde_json::from_slice(&bytes).map_err(Error::Decode)
    }

    /// When the batch that carried it opened: at or before the send, never after (one
    /// clock read per batch). For replies, when the reply was sent. On tokio's clock, so
    /// paused-time tests see consistent values.
    pub fn sent_at(&self) -> Instant {
        let epoch = clock_epoch();
        // u64 nanoseconds are at most 584 years: this never saturates in practice.
        epoch
            .checked_add(std::time::Duration::from_nanos(self.sent_at))
            .unwrap_or(epoch)
    }

    /// Time since [`sent_at`](Self::sent_at).
    pub fn age(&self) -> std::time::Duration {
        self.sent_at().elapsed()
    }
}

/// The origin of envelope timestamps: the first time any hub in this process read the clock.
pub(crate) fn clock_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from [`clock_epoch`] to `at` (0 if `at` is earlier, as a paused test clock
/// of another runtime may be).
pub(crate) fn nanos_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(clock_epoch()).as_nanos() as u64
}

#[cfg(test)]
mod tests {
    /// Envelopes are moved several times per message; at 128 bytes or less a move is a few
    /// vector instructions instead of a `memcpy` call (measured: a third of the CPU time of
    /// many-to-many traffic went to copying 152-byte envelopes).
    #[test]
    fn an_envelope_fits_128_bytes() {
        assert!(std::mem::size_of::<super::Envelope>() <= 128);
    }
}
