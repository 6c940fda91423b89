//! A bounded, priority-ordered mailbox fed by whole batches.
//!
//! One lock and one wake-up per batch: a flush moves the open [`Batch`] into the queue,
//! the owner pops a whole batch and hands its messages out without touching shared state.
//! Four lanes, one per priority: the owner is served from the highest non-empty lane, FIFO
//! inside a lane, so only a higher priority can overtake.
//!
//! Capacity is in messages and covers the open batch plus the queue, checked under the
//! batch lock when a message is sent, so a full mailbox is reported to the sender that
//! overfilled it. Under `DropOldest` a full mailbox evicts one message in place and keeps
//! filling the open batch, so a saturated mailbox still queues full batches.
//!
//! An agent's mailbox also charges the hub's [`MemoryBudget`] for what it holds: each batch
//! carries the sum of its messages' charges, released when the batch leaves the queue.

use crate::batch::{Batch, Taken};
use crate::budget::MemoryBudget;
use crate::metrics::{DropReason, FlushReason, Metrics};
use crate::{Envelope, OverflowPolicy};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// A batch in the queue, with what its messages are charged against the budget.
#[derive(Debug)]
struct Queued {
    envelopes: Vec<Envelope>,
    charge: u64,
}

impl Queued {
    /// Drops the `k` oldest messages; returns the charge they release (an even share, all
    /// of what is left when none remain).
    fn drop_front(&mut self, k: usize) -> u64 {
        let len = self.envelopes.len();
        let k = k.min(len);
        let released = if k == len {
            self.charge
        } else {
            (self.charge / len as u64).saturating_mul(k as u64)
        };
        self.envelopes.drain(..k);
        self.charge -= released.min(self.charge);
        released
    }
}

type Lane = VecDeque<Queued>;

#[derive(Debug, Default)]
struct Lanes {
    /// Allocated on the first message: an idle agent's mailbox stays small (this was a
    /// third of the memory of 10,000 idle agents).
    lanes: Option<Box<[Lane; 4]>>,
    queued: usize,
}

impl Lanes {
    fn lane(&mut self, index: usize) -> &mut Lane {
        &mut self.lanes.get_or_insert_with(Default::default)[index]
    }

    fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Lane> {
        self.lanes.iter_mut().flat_map(|lanes| lanes.iter_mut())
    }
}

/// One agent's mailbox: its open batch and its queue.
#[derive(Debug)]
pub(crate) struct Mailbox {
    pub(crate) batch: Mutex<Batch>,
    capacity: usize,
    /// What a send does when this mailbox is full.
    pub(crate) policy: OverflowPolicy,
    /// Batch size for this mailbox, when not `HubConfig::max_messages` (links to remote
    /// hubs carry everyone's traffic and batch more).
    pub(crate) max_batch: Option<usize>,
    /// A link to remote hubs: a flush hands messages on (counted `forwarded` when
    /// published), it does not deliver them.
    forwarding: bool,
    /// Largest stored payload accepted (links: what fits one frame); 0 for no limit.
    max_wire: AtomicUsize,
    lanes: Mutex<Lanes>,
    /// Copy of `Lanes::queued`, readable without the lock.
    queued: AtomicUsize,
    /// The agent left: sends are refused. Set under the batch lock.
    gone: AtomicBool,
    /// The hub shut down: `next_batch` returns `None` once empty.
    sealed: AtomicBool,
    readable: Notify,
    writable: Notify,
    /// Senders waiting for room; pops wake them only when there are any.
    blocked: AtomicUsize,
    /// The hub's queued-bytes budget, for agents' mailboxes (links to remote hubs have
    /// none unless given one).
    budget: Option<Arc<MemoryBudget>>,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        Self {
            batch: Mutex::new(Batch::new()),
            capacity,
            policy,
            max_batch: None,
            forwarding: false,
            max_wire: AtomicUsize::new(0),
            lanes: Mutex::new(Lanes::default()),
            queued: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            readable: Notify::new(),
            writable: Notify::new(),
            blocked: AtomicUsize::new(0),
            budget: None,
        }
    }

    /// A mailbox whose messages are charged against `budget` while they wait.
    pub(crate) fn with_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Charges `cost` for a message joining `open` (locked); false if over the budget.
    /// Always true without a budget.
    ///
    /// The open batch reserves budget in chunks (`MemoryBudget::chunk`) and charges its
    /// messages from that credit under its own lock, so a send touches the hub-wide counter
    /// about once per chunk instead of once per message (a compare-and-swap on one cache
    /// line shared by every sender was 10% of a broadcast's cost).
    pub(crate) fn try_charge(&self, open: &mut Batch, cost: u64) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        if open.credit >= cost {
            open.credit -= cost;
            return true;
        }
        let need = cost - open.credit;
        let reserve = need.max(budget.chunk());
        if budget.try_charge(reserve) {
            open.credit += reserve - need;
        } else if reserve > need && budget.try_charge(need) {
            open.credit = 0;
        } else {
            return false;
        }
        true
    }

    /// Gives back what the open batch reserved and did not use.
    fn return_credit(&self, open: &mut Batch) {
        let credit = std::mem::take(&mut open.credit);
        self.release(credit);
    }

    fn release(&self, charge: u64) {
        if let Some(budget) = &self.budget {
            budget.release(charge);
        }
    }

    /// A mailbox whose batches flush at `max_batch` messages instead of the hub's default.
    pub(crate) fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = Some(max_batch.max(1));
        self
    }

    /// A mailbox that feeds a link to remote hubs (see `forwarding`).
    pub(crate) fn forwarding(mut self) -> Self {
        self.forwarding = true;
        self
    }

    /// Refuse payloads stored larger than `max` bytes (they would not fit one frame).
    pub(crate) fn set_max_wire(&self, max: usize) {
        self.max_wire.store(max, Ordering::Relaxed);
    }

    /// Whether a payload stored as `wire_len` bytes is over this mailbox's limit.
    #[inline]
    pub(crate) fn too_large(&self, wire_len: usize) -> Option<usize> {
        let max = self.max_wire.load(Ordering::Relaxed);
        (max != 0 && wire_len > max).then_some(max)
    }

    /// Messages in the open batch.
    pub(crate) fn open_len(&self) -> usize {
        self.batch.lock().len()
    }

    /// Flushes the open batch now.
    pub(crate) fn flush_open(&self, reason: FlushReason, metrics: &Metrics) {
        let mut batch = self.batch.lock();
        self.flush(&mut batch, reason, metrics);
    }

    /// Whether one more message fits next to `open` (the locked batch).
    #[inline]
    pub(crate) fn has_room_for(&self, open: &Batch) -> bool {
        open.len() + self.queued.load(Ordering::Acquire) < self.capacity
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Messages waiting to be received (queued; the open batch is not yet receivable).
    pub(crate) fn depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Batches in the queue (each a `Vec` with its own allocation).
    #[cfg(test)]
    pub(crate) fn queued_batches(&self) -> usize {
        let mut lanes = self.lanes.lock();
        lanes.iter_mut().map(|lane| lane.len()).sum()
    }

    /// Moves the open batch into the queue and counts it. Call with the batch locked.
    pub(crate) fn flush(&self, open: &mut Batch, reason: FlushReason, metrics: &Metrics) {
        self.return_credit(open);
        if open.is_empty() {
            return;
        }
        let taken = open.take();
        let n = taken.envelopes.len() as u64;
        metrics.sent.fetch_add(n, Ordering::Relaxed);
        metrics
            .bytes_raw
            .fetch_add(taken.raw_bytes, Ordering::Relaxed);
        metrics
            .bytes_wire
            .fetch_add(taken.wire_bytes, Ordering::Relaxed);
        metrics.flushes.add(reason as usize, 1);
        metrics.batch_size.observe(n as f64);
        if self.is_gone() {
            self.release(taken.charge);
            metrics.drop_n(DropReason::RecipientGone, n);
            metrics.lost_before_mailbox.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let evicted = self.enqueue(taken, self.policy);
        if !self.forwarding {
            metrics.delivered.fetch_add(n, Ordering::Relaxed);
        }
        metrics.drop_n(DropReason::DropOldest, evicted as u64);
        self.readable.notify_one();
    }

    fn enqueue(&self, taken: Taken, policy: OverflowPolicy) -> usize {
        let n = taken.envelopes.len();
        let mut lanes = self.lanes.lock();
        if taken.mask.count_ones() <= 1 {
            let lane = taken.mask.trailing_zeros().min(3) as usize;
            lanes.lane(lane).push_back(Queued {
                envelopes: taken.envelopes,
                charge: taken.charge,
            });
        } else {
            split_by_priority(&mut lanes, taken.envelopes, taken.mask, taken.charge);
        }
        lanes.queued += n;
        // Sends evict in place, so this only trims a mailbox fed past its capacity.
        let (evicted, released) = if policy == OverflowPolicy::DropOldest {
            evict_oldest(&mut lanes, self.capacity)
        } else {
            (0, 0)
        };
        self.queued.store(lanes.queued, Ordering::Release);
        drop(lanes);
        self.release(released);
        evicted
    }

    /// Full under `DropOldest`: drops the oldest message of the lowest priority waiting for
    /// this mailbox, queued or in the open batch (queued ones are older at equal priority),
    /// so one more fits. Call with the batch locked.
    pub(crate) fn evict_one(&self, open: &mut Batch, metrics: &Metrics) {
        let in_open = (open.mask != 0).then(|| open.mask.trailing_zeros() as usize);
        {
            let mut lanes = self.lanes.lock();
            let queued = lanes.iter_mut().position(|lane| !lane.is_empty());
            if let Some(lane) = queued.filter(|&q| in_open.is_none_or(|o| q <= o)) {
                let lane = lanes.lane(lane);
                let mut released = 0;
                if let Some(front) = lane.front_mut() {
                    // At most one batch (max_messages envelopes) moves up.
                    released = front.drop_front(1);
                    if front.envelopes.is_empty() {
                        lane.pop_front();
                    }
                }
                lanes.queued -= 1;
                self.queued.store(lanes.queued, Ordering::Release);
                drop(lanes);
                self.release(released);
                metrics.drop_n(DropReason::DropOldest, 1);
                return;
            }
        }
        let Some(priority) = in_open else {
            return;
        };
        if let Some((env, charge)) = open.remove_oldest(priority) {
            self.release(charge);
            // Accepted but never flushed: counted as sent, then as dropped (as `close` does).
            metrics.sent.fetch_add(1, Ordering::Relaxed);
            metrics
                .bytes_raw
                .fetch_add(env.payload.len() as u64, Ordering::Relaxed);
            metrics
                .bytes_wire
                .fetch_add(env.payload.wire_len() as u64, Ordering::Relaxed);
            metrics.lost_before_mailbox.fetch_add(1, Ordering::Relaxed);
            metrics.drop_n(DropReason::DropOldest, 1);
        }
    }

    /// Takes the oldest batch of the highest non-empty lane.
    pub(crate) fn pop(&self) -> Option<Vec<Envelope>> {
        // An empty mailbox is the common case for a polling owner: skip the lock.
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let batch = {
            let mut lanes = self.lanes.lock();
            let batch = lanes.iter_mut().rev().find_map(|lane| lane.pop_front())?;
            lanes.queued -= batch.envelopes.len();
            self.queued.store(lanes.queued, Ordering::Release);
            batch
        };
        self.release(batch.charge);
        if self.blocked.load(Ordering::Acquire) > 0 {
            self.writable.notify_waiters();
        }
        Some(batch.envelopes)
    }

    /// Waits for a batch; `None` once the mailbox is sealed (or closed) and empty.
    pub(crate) async fn next_batch(&self) -> Option<Vec<Envelope>> {
        loop {
            if let Some(batch) = self.pop() {
                return Some(batch);
            }
            let notified = self.readable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after registering, so a push or seal in between is not missed.
            if let Some(batch) = self.pop() {
                return Some(batch);
            }
            if self.sealed.load(Ordering::Acquire) || self.is_gone() {
                return None;
            }
            notified.await;
        }
    }

    /// Registers as a blocked sender, and waits until there may be room, or `deadline`.
    /// Returns false on timeout.
    pub(crate) async fn wait_for_room(&self, deadline: tokio::time::Instant) -> bool {
        let notified = self.writable.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.blocked.fetch_add(1, Ordering::AcqRel);
        let room = self.has_room_for(&self.batch.lock()) || self.is_gone();
        let woke = room || tokio::time::timeout_at(deadline, notified).await.is_ok();
        self.blocked.fetch_sub(1, Ordering::AcqRel);
        woke
    }

    /// Wakes every blocked sender (to see a shutdown).
    pub(crate) fn wake_senders(&self) {
        self.writable.notify_waiters();
    }

    /// The hub shut down: the owner drains what is queued, then sees the end.
    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
        self.readable.notify_waiters();
        self.readable.notify_one();
    }

    /// The agent left: refuse sends and drop the open batch and the queue. Returns how many
    /// messages were dropped.
    pub(crate) fn close(&self, metrics: &Metrics) -> usize {
        let open = {
            let mut batch = self.batch.lock();
            self.gone.store(true, Ordering::Release);
            self.return_credit(&mut batch);
            let n = batch.len();
            if n > 0 {
                // They were accepted: count them as sent, then as dropped.
                let taken = batch.take();
                self.release(taken.charge);
                metrics.sent.fetch_add(n as u64, Ordering::Relaxed);
                metrics
                    .bytes_raw
                    .fetch_add(taken.raw_bytes, Ordering::Relaxed);
                metrics
                    .bytes_wire
                    .fetch_add(taken.wire_bytes, Ordering::Relaxed);
                metrics
                    .lost_before_mailbox
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            n
        };
        let (queued, charge) = {
            let mut lanes = self.lanes.lock();
            let n = lanes.queued;
            let charge = lanes.iter_mut().flatten().map(|q| q.charge).sum();
            *lanes = Lanes::default();
            self.queued.store(0, Ordering::Release);
            (n, charge)
        };
        if self.forwarding {
            // Never delivered: they were still on their way to a remote hub.
            metrics
                .lost_before_mailbox
                .fetch_add(queued as u64, Ordering::Relaxed);
        }
        self.release(charge);
        self.readable.notify_waiters();
        self.writable.notify_waiters();
        open + queued
    }
}

/// Queues a batch of mixed priorities as one batch per lane; the charge is split by
/// message count, the highest lane taking the remainder.
fn split_by_priority(lanes: &mut Lanes, batch: Vec<Envelope>, mask: u8, charge: u64) {
    let n = batch.len().max(1) as u64;
    let mut parts: [Vec<Envelope>; 4] = Default::default();
    for (lane, part) in parts.iter_mut().enumerate() {
        if mask & (1 << lane) != 0 {
            *part = Vec::with_capacity(batch.len());
        }
    }
    for env in batch {
        parts[env.priority.index()].push(env);
    }
    let mut left = charge;
    let last = parts.iter().rposition(|p| !p.is_empty());
    for (lane, part) in parts.into_iter().enumerate() {
        if !part.is_empty() {
            let share = if Some(lane) == last {
                left
            } else {
                (charge / n).saturating_mul(part.len() as u64).min(left)
            };
            left -= share;
            lanes.lane(lane).push_back(Queued {
                envelopes: part,
                charge: share,
            });
        }
    }
}

/// Drops the oldest messages of the lowest priority until `queued <= capacity`. Returns
/// how many, and the charge they release.
fn evict_oldest(lanes: &mut Lanes, capacity: usize) -> (usize, u64) {
    let mut evicted = 0;
    let mut released = 0;
    while lanes.queued > capacity {
        let excess = lanes.queued - capacity;
        let Some(lane) = lanes.iter_mut().find(|l| !l.is_empty()) else {
            break;
        };
        let Some(front) = lane.front_mut() else {
            break;
        };
        let k = excess.min(front.envelopes.len());
        released += front.drop_front(k);
        if front.envelopes.is_empty() {
            lane.pop_front();
        }
        lanes.queued -= k;
        evicted += k;
    }
    (evicted, released)
}
