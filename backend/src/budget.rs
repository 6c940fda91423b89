//! The hub-wide budget for queued messages: one bound on the memory of every open batch and
//! every mailbox queue together, where `mailbox_capacity` bounds each mailbox alone.
//!
//! # What a queued message costs
//!
//! A message is charged when it joins its recipient's open batch and released when it
//! leaves the mailbox (its agent takes the batch, it is evicted, or the agent leaves). It
//! costs its envelope, [`ENVELOPE_BYTES`] (128), plus its share of the payload's wire
//! (stored) bytes: all of them for a direct send, `wire_len / recipients` (rounded up) for a
//! broadcast or topic message, whose recipients share one payload buffer. So a fan-out of
//! one payload to `n` agents costs `n × 128 + wire_len`: what it really takes while all `n`
//! copies wait.
//!
//! The share is a fair estimate, not an exact one: recipients that take their copy early
//! release their shares while the slower ones still hold the whole buffer (one stuck agent
//! among 1,000 holds every payload at a thousandth of its size). `mailbox_capacity` still
//! bounds that agent's mailbox in messages.
//!
//! Open batches reserve the budget in chunks of at most 16 KiB (a 4,096th of a small budget)
//! and charge their messages from that reserve, so the hub-wide counter is touched about once
//! per chunk, not once per message; what a batch did not use goes back when it leaves. The
//! bound is therefore exact to within one chunk per open batch.
//!
//! The charges of one batch are kept as one sum; evicting a single message from a batch
//! releases an even share of it, and the batch's last message releases the rest, so what is
//! charged is always released exactly.

use crate::Envelope;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What one queued envelope costs besides its payload share: its own size.
pub(crate) const ENVELOPE_BYTES: u64 = std::mem::size_of::<Envelope>() as u64;

/// Bytes queued across the hub, against `HubConfig::max_queued_bytes`.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    /// Senders waiting for room; releases wake them only when there are any.
    waiting: AtomicUsize,
    released: Notify,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            released: Notify::new(),
        }
    }

    /// The charge of one envelope whose payload of `wire_len` stored bytes is shared by
    /// `recipients` envelopes (1 for a direct send).
    pub(crate) fn cost(wire_len: usize, recipients: usize) -> u64 {
        let share = (wire_len as u64).div_ceil(recipients.max(1) as u64);
        ENVELOPE_BYTES.saturating_add(share)
    }

    /// Charges `n` bytes if they fit; false (and nothing charged) if they do not.
    pub(crate) fn try_charge(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `n` bytes charged earlier and wakes senders waiting for room.
    pub(crate) fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        // Saturating: a bug in the accounting must show as a wrong gauge, not a panic.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.released.notify_waiters();
        }
    }

    /// How much an open batch reserves at a time: 16 KiB, or less for a small budget (a
    /// 4,096th of it), so what open batches hold in reserve stays small next to the budget.
    pub(crate) fn chunk(&self) -> u64 {
        (self.limit / 4096).min(16 * 1024)
    }

    /// Bytes charged now (including what open batches hold in reserve).
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The budget (`HubConfig::max_queued_bytes`).
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Waits until `n` more bytes may fit, or `deadline`. Returns false on timeout.
    pub(crate) async fn wait_for_room(&self, n: u64, deadline: Instant) -> bool {
        let released = self.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let fits = self.used().saturating_add(n) <= self.limit;
        let woke = fits || tokio::time::timeout_at(deadline, released).await.is_ok();
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        woke
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_or_are_refused_whole_and_release_exactly() {
        let b = MemoryBudget::new(1_000);
        assert!(b.try_charge(600));
        assert!(!b.try_charge(401), "over the budget: nothing charged");
        assert_eq!(b.used(), 600);
        assert!(b.try_charge(400));
        assert!(!b.try_charge(1));
        b.release(1_000);
        assert_eq!(b.used(), 0);
        assert!(!b.try_charge(u64::MAX), "no overflow");
    }

    #[test]
    fn a_fan_out_costs_its_envelopes_plus_one_payload() {
        let one = MemoryBudget::cost(10_000, 1);
        assert_eq!(one, ENVELOPE_BYTES + 10_000);
        let total: u64 = (0..1_000).map(|_| MemoryBudget::cost(10_000, 1_000)).sum();
        assert_eq!(total, 1_000 * ENVELOPE_BYTES + 10_000);
        assert_eq!(MemoryBudget::cost(10, 0), ENVELOPE_BYTES + 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_sender_wakes_on_release_or_times_out() {
        let b = std::sync::Arc::new(MemoryBudget::new(100));
        assert!(b.try_charge(100));
        let deadline = crate::bus::deadline_after(std::time::Duration::from_millis(50));
        assert!(!b.wait_for_room(10, deadline).await);
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                let deadline = crate::bus::deadline_after(std::time::Duration::from_secs(1));
                b.wait_for_room(10, deadline).await
            })
        };
        tokio::task::yield_now().await;
        b.release(10);
        assert!(waiter.await.unwrap());
    }
}
