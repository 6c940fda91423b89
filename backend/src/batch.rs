//! Per-destination batches: an agent's outgoing messages wait here until the batch holds
//! `max_messages`, its oldest has waited `linger`, a message at `flush_priority` joins it,
//! or someone flushes explicitly.
//!
//! Each agent owns one [`Outbox`] (shared by its `AgentSender` clones, behind one mutex that
//! only that agent's tasks contend for), so the hot path of a send is an uncontended lock,
//! a hash lookup and a `Vec::push`. The shared state of the recipient is touched once per
//! batch. An outbox holds only open batches; when the last one flushes it is empty again.

use crate::id::IdMap;
use crate::mailbox::Mailbox;
use crate::metrics::{DropReason, FlushReason, Metrics};
use crate::{AgentId, Envelope, OverflowPolicy};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

/// One open batch for one destination.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) envelopes: Vec<Envelope>,
    pub(crate) opened: Instant,
    /// Bit `p` set when a message of priority `p` is in the batch.
    pub(crate) mask: u8,
}

/// An agent's open batches.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) batches: IdMap<AgentId, Pending>,
    /// A linger deadline is registered with the flusher.
    pub(crate) scheduled: bool,
    // Payload byte counts, added to the hub's counters at the next flush.
    pub(crate) raw_bytes: u64,
    pub(crate) wire_bytes: u64,
}

impl Outbox {
    /// The earliest `opened` among open batches.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.batches.values().map(|p| p.opened).min()
    }

    /// Flushes the batch for `to`, if one is open.
    pub(crate) fn flush_one(
        &mut self,
        to: AgentId,
        reason: FlushReason,
        policy: OverflowPolicy,
        metrics: &Metrics,
    ) {
        if let Some(pending) = self.batches.remove(&to) {
            deliver(pending, reason, policy, metrics);
        }
        self.settle(metrics);
    }

    /// Flushes every batch opened at or before `cutoff` (all of them with `None`).
    pub(crate) fn flush_due(
        &mut self,
        cutoff: Option<Instant>,
        reason: FlushReason,
        policy: OverflowPolicy,
        metrics: &Metrics,
    ) {
        let due = |p: &Pending| cutoff.is_none_or(|c| p.opened <= c);
        if self.batches.values().all(due) {
            for (_, pending) in self.batches.drain() {
                deliver(pending, reason, policy, metrics);
            }
        } else {
            let ids: Vec<AgentId> = self
                .batches
                .iter()
                .filter(|(_, p)| due(p))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(pending) = self.batches.remove(&id) {
                    deliver(pending, reason, policy, metrics);
                }
            }
        }
        self.settle(metrics);
    }

    /// Publishes the byte counters gathered since the last flush.
    fn settle(&mut self, metrics: &Metrics) {
        if self.raw_bytes != 0 {
            metrics
                .bytes_raw
                .fetch_add(std::mem::take(&mut self.raw_bytes), Ordering::Relaxed);
            metrics
                .bytes_wire
                .fetch_add(std::mem::take(&mut self.wire_bytes), Ordering::Relaxed);
        }
    }
}

/// Moves one batch into its mailbox and counts it.
fn deliver(pending: Pending, reason: FlushReason, policy: OverflowPolicy, metrics: &Metrics) {
    let n = pending.envelopes.len() as u64;
    if n == 0 {
        return;
    }
    metrics.sent.fetch_add(n, Ordering::Relaxed);
    metrics.flushes.add(reason as usize, 1);
    metrics.batch_size.observe(n as f64);
    let mailbox = pending.mailbox;
    match mailbox.push(pending.envelopes, pending.mask, policy, metrics) {
        Ok(()) => {
            metrics.delivered.fetch_add(n, Ordering::Relaxed);
        }
        Err(batch) => {
            mailbox.forget(batch.len());
            metrics.drop_n(DropReason::RecipientGone, n);
        }
    }
}
