//! A message as a recipient sees it.

use crate::{AgentId, MessageId, Payload, Priority};
use std::sync::Arc;
use tokio::time::Instant;

/// What kind of message an envelope carries (and its topic: the two share one field to
/// keep an `Envelope` within 128 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A one-way message (direct or broadcast).
    Message,
    /// A one-way message published on a topic.
    Topic(Arc<str>),
    /// A request; answer it with `reply`.
    Request,
    /// The answer to the request with this id.
    Reply(MessageId),
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
}

impl Envelope {
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
        match &self.kind {
            Kind::Topic(topic) => Some(topic),
            _ => None,
        }
    }

    /// True for a request: answer it with `Agent::reply`.
    pub fn is_request(&self) -> bool {
        self.kind == Kind::Request
    }

    /// For a reply, the id of the request it answers.
    pub fn in_reply_to(&self) -> Option<MessageId> {
        match self.kind {
            Kind::Reply(id) => Some(id),
            _ => None,
        }
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
