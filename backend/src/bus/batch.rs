//! The open batch of one destination: messages wait here until it holds `max_messages`,
//! its first message has waited `linger`, a message at `flush_priority` joins it, or
//! someone flushes explicitly.
//!
//! There is one open batch per recipient, shared by every sender, so a recipient that many
//! agents write to sparsely still gets full batches and one wake-up per batch. A recipient
//! that is waiting takes the open batch as soon as a message joins it: batches form only
//! while the recipient is busy, and the bounds above are upper bounds, not the normal wait.

use crate::metrics::FlushReason;
use crate::pool::BufferPool;
use crate::{Envelope, Priority};
use std::time::Duration;
use tokio::time::Instant;

/// When a batch must leave: the design card's upper bounds (`HubConfig::max_messages`,
/// `linger`, `flush_priority`). A recipient that waits takes a batch before any of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchRules {
    /// Messages at most.
    pub(crate) max_messages: usize,
    /// How long its first message waits at most.
    pub(crate) linger: Duration,
    /// A message at or above this priority sends the batch at once.
    pub(crate) flush_priority: Priority,
}

/// Messages waiting for one recipient.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) envelopes: Vec<Envelope>,
    /// When the first message joined; every message carries it as `sent_at`.
    pub(crate) opened: Instant,
    /// `opened` as envelopes carry it.
    pub(crate) opened_nanos: u64,
    /// Bit `p` set when a message of priority `p` is in the batch.
    pub(crate) mask: u8,
    /// Payload bytes before and after compression, counted when the batch leaves.
    pub(crate) raw_bytes: u64,
    pub(crate) wire_bytes: u64,
    /// What its messages are charged against the hub's queued-bytes budget.
    pub(crate) charge: u64,
}

impl BatchRules {
    /// The same rules with batches of at most `max_messages` (links batch more).
    pub(crate) fn with_max_messages(self, max_messages: usize) -> Self {
        Self {
            max_messages,
            ..self
        }
    }
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            envelopes: Vec::new(),
            opened: Instant::now(),
            opened_nanos: 0,
            mask: 0,
            raw_bytes: 0,
            wire_bytes: 0,
            charge: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.envelopes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// Adds a message, charged `charge` against the budget (already taken from it).
    /// Returns true when it opened the batch.
    #[inline]
    pub(crate) fn push(
        &mut self,
        mut env: Envelope,
        charge: u64,
        buffers: &BufferPool<Vec<Envelope>>,
    ) -> bool {
        let opened = self.envelopes.is_empty();
        if opened {
            self.opened = Instant::now();
            self.opened_nanos = crate::envelope::nanos_since_epoch(self.opened);
            if self.envelopes.capacity() == 0 {
                // Batch buffers come back from receivers through the pool: an 8 KiB
                // malloc here and free on another thread was a third of the cost of
                // many-to-many traffic. (A small fresh buffer for batches handed over at
                // once was tried: request round trips were no faster, and noisier.)
                self.envelopes = buffers.take_owned();
            }
        }
        // One clock read per batch, not per message: latency is measured from the moment
        // the batch opened, an upper bound on each message's own wait.
        env.sent_at = self.opened_nanos;
        self.mask |= 1 << env.priority.index();
        self.raw_bytes += env.payload.len() as u64;
        self.wire_bytes += env.payload.wire_len() as u64;
        self.charge += charge;
        self.envelopes.push(env);
        opened
    }

    /// Removes the oldest message of priority `index` (its lane index), keeping the
    /// batch's counters true. Returns it with the charge it releases (an even share of the
    /// batch's, or all of it for the last message).
    pub(crate) fn remove_oldest(&mut self, index: usize) -> Option<(Envelope, u64)> {
        let at = self
            .envelopes
            .iter()
            .position(|e| e.priority.index() == index)?;
        let released = if self.envelopes.len() == 1 {
            self.charge
        } else {
            self.charge / self.envelopes.len() as u64
        };
        self.charge -= released;
        let env = self.envelopes.remove(at);
        self.raw_bytes = self.raw_bytes.saturating_sub(env.payload.len() as u64);
        self.wire_bytes = self
            .wire_bytes
            .saturating_sub(env.payload.wire_len() as u64);
        if !self.envelopes.iter().any(|e| e.priority.index() == index) {
            self.mask &= !(1 << index);
        }
        Some((env, released))
    }

    /// Takes the messages out, leaving an empty batch.
    pub(crate) fn take(&mut self) -> Taken {
        let taken = Taken {
            envelopes: std::mem::take(&mut self.envelopes),
            mask: self.mask,
            raw_bytes: self.raw_bytes,
            wire_bytes: self.wire_bytes,
            charge: self.charge,
        };
        self.mask = 0;
        self.raw_bytes = 0;
        self.wire_bytes = 0;
        self.charge = 0;
        taken
    }

    /// Which flush, if any, the message just pushed (at priority `last`) calls for.
    #[inline]
    pub(crate) fn due(&self, last: Priority, rules: &BatchRules) -> Option<FlushReason> {
        if self.envelopes.len() >= rules.max_messages {
            Some(FlushReason::Size)
        } else if last >= rules.flush_priority {
            Some(FlushReason::Priority)
        } else if rules.linger.is_zero() {
            Some(FlushReason::Linger)
        } else {
            None
        }
    }
}

/// A batch on its way into a mailbox.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) envelopes: Vec<Envelope>,
    pub(crate) mask: u8,
    pub(crate) raw_bytes: u64,
    pub(crate) wire_bytes: u64,
    pub(crate) charge: u64,
}
