//! A bounded, priority-ordered mailbox that receives whole batches.
//!
//! One lock and one wake-up per batch: senders push a batch, the owner pops a batch and
//! hands its messages out one by one without touching shared state. Four lanes, one per
//! priority: `recv` serves the highest non-empty lane first, FIFO inside a lane, so only a
//! higher priority can overtake.
//!
//! Capacity is in messages and covers everything admitted for this mailbox: messages still
//! waiting in senders' batches plus messages queued here. A sender reserves its slot when
//! it sends, so a full mailbox is reported to the sender that overfilled it, not discovered
//! later by a background flush.

use crate::metrics::{DropReason, Metrics};
use crate::{Envelope, OverflowPolicy};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Lanes {
    lanes: [VecDeque<Vec<Envelope>>; 4],
    queued: usize,
}

/// One agent's mailbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    capacity: usize,
    lanes: Mutex<Lanes>,
    /// Admitted and not yet popped or dropped: in senders' batches plus queued.
    reserved: AtomicUsize,
    /// Copy of `Lanes::queued` readable without the lock (metrics).
    queued: AtomicUsize,
    /// The agent left: pushes are refused.
    gone: AtomicBool,
    /// The hub shut down: `next_batch` returns `None` once empty.
    sealed: AtomicBool,
    readable: Notify,
    writable: Notify,
    /// Senders waiting for room; pops wake them only when there are any.
    blocked: AtomicUsize,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lanes: Mutex::new(Lanes::default()),
            reserved: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            readable: Notify::new(),
            writable: Notify::new(),
            blocked: AtomicUsize::new(0),
        }
    }

    /// Admits one message, or says the mailbox is full. `DropOldest` always admits: it
    /// makes room when the batch lands instead.
    #[inline]
    pub(crate) fn try_reserve(&self, policy: OverflowPolicy) -> bool {
        let prev = self.reserved.fetch_add(1, Ordering::AcqRel);
        if prev < self.capacity || policy == OverflowPolicy::DropOldest {
            true
        } else {
            self.release(1);
            false
        }
    }

    /// Gives back `n` admitted slots (popped, evicted, or dropped before arrival).
    fn release(&self, n: usize) {
        self.reserved.fetch_sub(n, Ordering::AcqRel);
        if self.blocked.load(Ordering::Acquire) > 0 {
            self.writable.notify_waiters();
        }
    }

    /// Gives back slots of messages that were admitted but never pushed.
    pub(crate) fn forget(&self, n: usize) {
        if n > 0 {
            self.release(n);
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.reserved.load(Ordering::Acquire) < self.capacity
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Messages waiting to be received.
    pub(crate) fn depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a batch whose messages were all admitted. `mask` has bit `p` set when the
    /// batch holds a message of priority `p`. Returns the batch if the agent is gone.
    pub(crate) fn push(
        &self,
        batch: Vec<Envelope>,
        mask: u8,
        policy: OverflowPolicy,
        metrics: &Metrics,
    ) -> Result<(), Vec<Envelope>> {
        let n = batch.len();
        let evicted = {
            let mut lanes = self.lanes.lock();
            if self.is_gone() {
                return Err(batch);
            }
            if mask.count_ones() <= 1 {
                let lane = mask.trailing_zeros().min(3) as usize;
                lanes.lanes[lane].push_back(batch);
            } else {
                split_by_priority(&mut lanes, batch, mask);
            }
            lanes.queued += n;
            let evicted = if policy == OverflowPolicy::DropOldest {
                evict_oldest(&mut lanes, self.capacity)
            } else {
                0
            };
            self.queued.store(lanes.queued, Ordering::Relaxed);
            evicted
        };
        self.readable.notify_one();
        if evicted > 0 {
            metrics.drop_n(DropReason::DropOldest, evicted as u64);
            self.release(evicted);
        }
        Ok(())
    }

    /// Takes the oldest batch of the highest non-empty lane.
    pub(crate) fn pop(&self) -> Option<Vec<Envelope>> {
        let batch = {
            let mut lanes = self.lanes.lock();
            let batch = lanes
                .lanes
                .iter_mut()
                .rev()
                .find_map(|lane| lane.pop_front())?;
            lanes.queued -= batch.len();
            self.queued.store(lanes.queued, Ordering::Relaxed);
            batch
        };
        self.release(batch.len());
        Some(batch)
    }

    /// Waits for a batch; `None` once the hub sealed the mailbox and it is empty.
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

    /// Waits until there may be room, or `deadline`. Returns false on timeout.
    pub(crate) async fn wait_for_room(&self, deadline: tokio::time::Instant) -> bool {
        let notified = self.writable.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.blocked.fetch_add(1, Ordering::AcqRel);
        let woke = if self.has_room() || self.is_gone() {
            true
        } else {
            tokio::time::timeout_at(deadline, notified).await.is_ok()
        };
        self.blocked.fetch_sub(1, Ordering::AcqRel);
        woke
    }

    /// The hub is shutting down: wake every blocked sender so it sees the shutdown.
    pub(crate) fn wake_senders(&self) {
        self.writable.notify_waiters();
    }

    /// The hub shut down: the owner drains what is queued, then sees the end.
    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
        self.readable.notify_waiters();
        self.readable.notify_one();
    }

    /// The agent left: refuse pushes and drop what is queued. Returns how many were dropped.
    pub(crate) fn close(&self) -> usize {
        let dropped = {
            let mut lanes = self.lanes.lock();
            self.gone.store(true, Ordering::Release);
            let n = lanes.queued;
            *lanes = Lanes::default();
            self.queued.store(0, Ordering::Relaxed);
            n
        };
        self.readable.notify_waiters();
        self.writable.notify_waiters();
        self.forget(dropped);
        dropped
    }
}

fn split_by_priority(lanes: &mut Lanes, batch: Vec<Envelope>, mask: u8) {
    let mut parts: [Vec<Envelope>; 4] = Default::default();
    for (lane, part) in parts.iter_mut().enumerate() {
        if mask & (1 << lane) != 0 {
            *part = Vec::with_capacity(batch.len());
        }
    }
    for env in batch {
        parts[env.priority.index()].push(env);
    }
    for (lane, part) in parts.into_iter().enumerate() {
        if !part.is_empty() {
            lanes.lanes[lane].push_back(part);
        }
    }
}

/// Drops the oldest messages of the lowest priority until `queued <= capacity`.
fn evict_oldest(lanes: &mut Lanes, capacity: usize) -> usize {
    let mut evicted = 0;
    while lanes.queued > capacity {
        let Some(lane) = lanes.lanes.iter_mut().find(|l| !l.is_empty()) else {
            break;
        };
        let Some(front) = lane.front_mut() else {
            break;
        };
        let k = (lanes.queued - capacity).min(front.len());
        front.drain(..k);
        if front.is_empty() {
            lane.pop_front();
        }
        lanes.queued -= k;
        evicted += k;
    }
    evicted
}
