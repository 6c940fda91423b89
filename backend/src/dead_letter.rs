//! Dead letters: the messages that reached no agent, with why and when, kept in a bounded
//! store an operator can read ([`Hub::dead_letters`](crate::Hub::dead_letters),
//! `GET /api/dead-letters`) and replay.
//!
//! Every drop of a message the hub still holds goes here with the reason it is counted
//! under in `messages_dropped_total{reason}`. Messages lost between hubs
//! (`lost_in_transit`) are counted only: the receiving hub never saw them.

use crate::envelope::Kind;
use crate::headers::Headers;
use crate::metrics::{Counter, DropReason};
use crate::{Envelope, Payload};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

/// A message that reached no agent.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> swarmbus::Result<()> {
/// use swarmbus::{Hub, HubConfig, OverflowPolicy};
/// let mut config = HubConfig::default();
/// config.mailbox_capacity = 1;
/// config.overflow = OverflowPolicy::DropOldest;
/// let hub = Hub::start(config)?;
/// let alice = hub.register("alice")?;
/// let bob = hub.register("bob")?;
/// alice.send(bob.id(), "first").await?;
/// alice.send(bob.id(), "second").await?; // evicts "first"
/// hub.flush();
/// let dead = hub.dead_letters();
/// assert_eq!(dead[0].reason(), "drop_oldest");
/// assert_eq!(&*dead[0].envelope().payload().bytes()?, b"first");
/// # hub.shutdown().await?; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DeadLetter {
    reason: DropReason,
    at: SystemTime,
    envelope: Envelope,
    payload_dropped: bool,
}

impl DeadLetter {
    /// Why it was dropped: the same words as `messages_dropped_total{reason}`
    /// (`drop_oldest`, `recipient_gone`, `reply_orphaned`, ...).
    pub fn reason(&self) -> &'static str {
        self.reason.as_str()
    }

    /// When it was dropped.
    pub fn at(&self) -> SystemTime {
        self.at
    }

    /// The message as it was dropped: sender, recipient, id, priority, headers, and its
    /// payload unless [`payload_dropped`](Self::payload_dropped) (then it is empty).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Whether the payload was left out: the store's payload budget was spent
    /// (`dead_letter_payload_bytes`), or a spawned agent's handler failed after moving its
    /// message elsewhere (into its state, to another task), which still holds the payload.
    /// The metadata is kept either way.
    pub fn payload_dropped(&self) -> bool {
        self.payload_dropped
    }

    /// Whether replaying it makes sense: a one-way message with its payload (a request's
    /// requester stopped waiting long ago, and a reply, chunk or cancel has nobody to go to).
    pub(crate) fn replayable(&self) -> bool {
        !self.payload_dropped && matches!(self.envelope.kind, Kind::Message | Kind::Topic)
    }
}

/// The bounded store: the newest `capacity` dead letters, their payloads within
/// `payload_budget` bytes in all.
#[derive(Debug)]
pub(crate) struct DeadLetters {
    capacity: usize,
    payload_budget: usize,
    state: parking_lot::Mutex<Store>,
    /// Dead letters recorded, by reason.
    pub(crate) recorded: crate::metrics::LabeledCounter<{ DropReason::ALL.len() }>,
    /// Pushed out of the store by newer ones.
    pub(crate) evicted: Counter,
    /// Kept without their payload (the budget was spent).
    pub(crate) payloads_dropped: Counter,
    /// Replayed and accepted again.
    pub(crate) replayed: Counter,
    /// Replayed and refused again (kept).
    pub(crate) replay_failed: Counter,
    /// Where a copy of every letter goes as it is recorded (a durable transport's
    /// dead-letter stream), with its whole payload.
    tap: std::sync::OnceLock<flume::Sender<DeadLetter>>,
}

/// What [`Hub::replay_dead_letters`](crate::Hub::replay_dead_letters) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Replayed {
    /// Sent again (accepted by the recipient's mailbox or its hub's link); out of the store.
    pub sent: u64,
    /// Refused again (the recipient is still unknown, its mailbox full); still in the store.
    pub failed: u64,
    /// Matched but not replayable (a request, reply, chunk or cancel, or a letter kept
    /// without its payload); still in the store.
    pub skipped: u64,
}

#[derive(Debug, Default)]
struct Store {
    /// Oldest first.
    letters: VecDeque<DeadLetter>,
    /// Payload bytes held by `letters`.
    payload_bytes: usize,
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize, payload_budget: usize) -> Self {
        Self {
            capacity,
            payload_budget,
            state: parking_lot::Mutex::new(Store::default()),
            recorded: Default::default(),
            evicted: Counter::default(),
            payloads_dropped: Counter::default(),
            replayed: Counter::default(),
            replay_failed: Counter::default(),
            tap: std::sync::OnceLock::new(),
        }
    }

    /// Sends a copy of every letter recorded from now on to `tap`.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn tap(&self, tap: flume::Sender<DeadLetter>) {
        let _ = self.tap.set(tap);
    }

    /// Keeps `env`, dropped for `reason`, evicting the oldest letter when full.
    pub(crate) fn record(&self, reason: DropReason, env: Envelope) {
        self.keep(reason, env, false);
    }

    /// [`record`](Self::record) for a message whose payload is not at hand (a failed
    /// handler kept it): kept as `payload_dropped`, counted with the payloads not kept.
    pub(crate) fn record_without_payload(&self, reason: DropReason, env: Envelope) {
        self.keep(reason, env, true);
    }

    fn keep(&self, reason: DropReason, mut env: Envelope, payload_gone: bool) {
        self.recorded.add(reason as usize, 1);
        if let Some(tap) = self.tap.get() {
            // Bounded: a log that cannot keep up loses copies (counted there), never stalls this.
            let _ = tap.try_send(DeadLetter {
                reason,
                at: SystemTime::now(),
                envelope: env.clone(),
                payload_dropped: payload_gone,
            });
        }
        if self.capacity == 0 {
            self.evicted.add(1);
            return;
        }
        // The cancellation state of a request is this hub's, not part of the message.
        if let Some(h) = env.headers.as_deref().filter(|h| h.call.is_some()) {
            env.headers = Some(Arc::new(Headers {
                call: None,
                ..h.clone()
            }));
        }
        let size = env.payload.wire_len();
        // Only the counted bytes are held (a payload sliced out of a frame would keep the
        // whole frame alive); copied before the lock, wasted only when the budget is spent.
        if size > 0 && size <= self.payload_budget {
            env.payload = env.payload.detached();
        }
        let mut store = self.state.lock();
        let mut evicted = 0;
        while store.letters.len() >= self.capacity {
            if let Some(old) = store.letters.pop_front() {
                store.payload_bytes -= kept(&old);
                evicted += 1;
            }
        }
        let payload_dropped = payload_gone
            || size > 0
                && store
                    .payload_bytes
                    .checked_add(size)
                    .is_none_or(|total| total > self.payload_budget);
        if payload_dropped {
            env.payload = Payload::from(Vec::new());
        } else {
            store.payload_bytes += size;
        }
        store.letters.push_back(DeadLetter {
            reason,
            at: SystemTime::now(),
            envelope: env,
            payload_dropped,
        });
        drop(store);
        self.evicted.add(evicted);
        if payload_dropped {
            self.payloads_dropped.add(1);
        }
    }

    /// Every letter, newest first.
    pub(crate) fn list(&self) -> Vec<DeadLetter> {
        self.state.lock().letters.iter().rev().cloned().collect()
    }

    /// How many it holds now.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().letters.len()
    }

    /// Takes the letters `pick` selects out of the store (newest first), to replay them.
    pub(crate) fn take(&self, mut pick: impl FnMut(&DeadLetter) -> bool) -> Vec<DeadLetter> {
        let mut store = self.state.lock();
        let mut taken = Vec::new();
        let mut kept_letters = VecDeque::with_capacity(store.letters.len());
        for letter in std::mem::take(&mut store.letters) {
            if pick(&letter) {
                taken.push(letter);
            } else {
                kept_letters.push_back(letter);
            }
        }
        store.payload_bytes = kept_letters.iter().map(kept).sum();
        store.letters = kept_letters;
        taken.reverse();
        taken
    }
}

impl DeadLetters {
    /// Puts back letters taken by [`take`](Self::take) (newest first) as the oldest ones,
    /// in their order; beyond the capacity the oldest are evicted (counted).
    pub(crate) fn restore(&self, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        let mut store = self.state.lock();
        for letter in letters {
            store.payload_bytes += kept(&letter);
            store.letters.push_front(letter);
        }
        let mut evicted = 0;
        while store.letters.len() > self.capacity {
            if let Some(old) = store.letters.pop_front() {
                store.payload_bytes -= kept(&old);
                evicted += 1;
            }
        }
        drop(store);
        self.evicted.add(evicted);
    }
}

/// The payload bytes a letter holds against the budget.
fn kept(letter: &DeadLetter) -> usize {
    if letter.payload_dropped {
        0
    } else {
        letter.envelope.payload.wire_len()
    }
}
