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
//! Each thread (one of 8 stripes) reserves the budget in chunks of at most 16 KiB (a 4,096th
//! of a small budget), charges its sends from that reserve and puts what its receives release
//! back into it, keeping at most two chunks, so the hub-wide counter is touched about once
//! per chunk, not once per message. The bound is therefore exact to within 16 chunks (256
//! KiB at most); while a sender waits for room every reserve goes back.
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

/// Per-thread reserves: as many as the metrics' stripes.
const RESERVES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Reserve(AtomicU64);

/// Bytes queued across the hub, against `HubConfig::max_queued_bytes`.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    /// Charged bytes plus what the reserves hold.
    used: AtomicU64,
    /// Budget taken from `used` in chunks and not yet charged to a message, one per thread
    /// stripe: a send charges its thread's reserve, a receive refills its own, and `used`
    /// (one cache line every core writes) is touched about once per chunk.
    reserves: [Reserve; RESERVES],
    /// Senders waiting for room; releases wake them only when there are any.
    waiting: AtomicUsize,
    released: Notify,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            reserves: Default::default(),
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

    fn reserve(&self) -> &AtomicU64 {
        &self.reserves[crate::metrics::stripe() % RESERVES].0
    }

    /// Takes `n` bytes from the hub-wide counter if they fit.
    fn take_global(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_global(&self, n: u64) {
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

    /// Charges `n` bytes if they fit; false (and nothing charged) if they do not.
    pub(crate) fn try_charge(&self, n: u64) -> bool {
        let reserve = self.reserve();
        if reserve
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(n))
            .is_ok()
        {
            return true;
        }
        let chunk = self.chunk();
        if chunk > n && self.take_global(chunk) {
            reserve.fetch_add(chunk - n, Ordering::AcqRel);
            return true;
        }
        self.take_global(n)
    }

    /// Gives back `n` bytes charged earlier and wakes senders waiting for room.
    pub(crate) fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.give_global(n);
            return;
        }
        let chunk = self.chunk();
        let reserve = self.reserve();
        let held = reserve.fetch_add(n, Ordering::AcqRel).saturating_add(n);
        if held > 2 * chunk {
            // Keep one chunk for this thread's next sends; the rest goes back.
            if let Ok(was) = reserve.fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                (r > chunk).then_some(chunk)
            }) {
                self.give_global(was - chunk);
            }
        }
    }

    /// How much a thread's reserve takes at a time: 16 KiB, or less for a small budget (a
    /// 4,096th of it), so what the reserves hold stays small next to the budget.
    pub(crate) fn chunk(&self) -> u64 {
        (self.limit / 4096).min(16 * 1024)
    }

    /// Bytes charged now (what the reserves hold is not counted).
    pub(crate) fn used(&self) -> u64 {
        let held: u64 = self
            .reserves
            .iter()
            .map(|r| r.0.load(Ordering::Relaxed))
            .sum();
        self.used.load(Ordering::Relaxed).saturating_sub(held)
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
        // Reserves go back to the shared counter while anyone waits.
        for r in &self.reserves {
            self.give_global(r.0.swap(0, Ordering::AcqRel));
        }
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
        let deadline = crate::bus::send::deadline_after(std::time::Duration::from_millis(50));
        assert!(!b.wait_for_room(10, deadline).await);
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                let deadline = crate::bus::send::deadline_after(std::time::Duration::from_secs(1));
                b.wait_for_room(10, deadline).await
            })
        };
        tokio::task::yield_now().await;
        b.release(10);
        assert!(waiter.await.unwrap());
    }
}
