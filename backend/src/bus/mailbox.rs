//! A bounded, priority-ordered mailbox: one open batch that senders fill, a queue of whole
//! batches, and the owner that takes them.
//!
//! The mailbox owns its lock: every state change goes through a method here (`admit`,
//! `flush`, `next_batch`, `pop`, `close`, `seal`, `wait_for_room`), and every batch that
//! leaves the open batch is counted in one place ([`Mailbox::count_flush`]).
//!
//! # Adaptive batching
//! An owner waiting in `next_batch` is woken by the first message that joins the open batch
//! and takes the whole open batch when it runs, so a message to an idle recipient never
//! waits out the linger. Batches form only while the owner is busy: then the open batch
//! leaves when it holds `max_messages`, when a message at `flush_priority` joins it, when
//! its first message has waited `linger`, or when the owner comes back for more and the
//! queue is empty. Batches the owner took because it was waiting are counted as flushed
//! with reason `waiting`.
//!
//! # Order and capacity
//! Four lanes, one per priority: the owner is served from the highest non-empty lane, FIFO
//! inside a lane, so only a higher priority can overtake. Capacity is in messages and covers
//! the open batch plus the queue, checked under the lock when a message is admitted, so a
//! full mailbox is reported to the sender that overfilled it. Under `DropOldest` a full
//! mailbox evicts one message in place and keeps filling the open batch.
//!
//! An agent's mailbox also charges the hub's [`MemoryBudget`] for what it holds: each batch
//! carries the sum of its messages' charges, released when the batch leaves the mailbox.

use super::batch::{Batch, BatchRules, Taken};
use super::budget::MemoryBudget;
use super::sync::{AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::dead_letter::DeadLetters;
use crate::metrics::{DropReason, FlushReason, Metrics};
use crate::pool::BufferPool;
use crate::{Envelope, Error, OverflowPolicy};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::time::Instant;

/// A batch in the queue, with what its messages are charged against the budget.
#[derive(Debug)]
struct Queued {
    envelopes: Vec<Envelope>,
    charge: u64,
}

impl Queued {
    /// Takes the oldest message out; returns it and the charge it releases (an even share,
    /// all of what is left when none remain).
    fn pop_front(&mut self) -> Option<(Envelope, u64)> {
        let len = self.envelopes.len();
        if len == 0 {
            return None;
        }
        let released = if len == 1 {
            self.charge
        } else {
            self.charge / len as u64
        };
        let env = self.envelopes.remove(0);
        self.charge -= released.min(self.charge);
        Some((env, released))
    }
}

type Lane = VecDeque<Queued>;

#[derive(Debug, Default)]
struct Lanes {
    /// Allocated on the first queued batch: an idle agent's mailbox stays small (this was a
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

    /// The oldest batch of the highest non-empty lane.
    fn pop(&mut self) -> Option<Queued> {
        if self.queued == 0 {
            return None;
        }
        let batch = self.iter_mut().rev().find_map(|lane| lane.pop_front())?;
        self.queued -= batch.envelopes.len();
        Some(batch)
    }
}

/// Everything behind the mailbox's lock.
#[derive(Debug)]
struct State {
    open: Batch,
    lanes: Lanes,
    /// The owner waits in `next_batch`: the next admitted message wakes it.
    receiver: Option<Waker>,
    /// Senders waiting for room; the owner wakes them when it takes messages out.
    senders: Vec<Waker>,
    /// The hub shut down: `next_batch` returns `None` once empty.
    sealed: bool,
    /// The owner was asked to stop (a spawned agent's `stop`): `next_batch` returns `None`
    /// at once, queued or not; the owner drains what is queued with `pop`.
    interrupted: bool,
    /// The linger timer holds an entry for this mailbox.
    scheduled: bool,
}

/// Why [`Mailbox::admit`] did not take a message.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The mailbox is full; the envelope comes back for a retry.
    Full(Box<Envelope>),
    /// The hub's queued-bytes budget has no room for it (`cost` bytes); it comes back.
    OverBudget(Box<Envelope>, u64),
    /// Refused for good: shutting down, recipient gone, or too large for this mailbox; the
    /// envelope comes back for the dead letters (or `None` when it never got here).
    Error(Error, Option<Box<Envelope>>),
}

/// How one message is admitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission<'a> {
    /// The hub's shutdown flag, read under the lock: a message admitted before shutdown
    /// set it is in a batch that shutdown flushes; one after it is refused.
    pub(crate) closing: &'a std::sync::atomic::AtomicBool,
    /// Send the batch at once (requests, replies): the caller waits for an answer.
    pub(crate) flush_now: bool,
    /// How many envelopes share this one's payload (1 unless a fan-out), for its charge.
    pub(crate) recipients: usize,
}

/// What an admitted message asks of the caller, after the lock is released.
#[derive(Debug)]
#[must_use]
pub(crate) enum Admitted {
    /// Nothing more.
    Done,
    /// The open batch opened: arm the linger timer for this instant.
    Schedule(Instant),
}

/// One mailbox: an agent's, or a link's to remote hubs.
#[derive(Debug)]
pub(crate) struct Mailbox {
    state: Mutex<State>,
    /// Copy of `Lanes::queued` (receivable messages), readable without the lock.
    queued: AtomicUsize,
    /// The owner left: admissions are refused. Set under the lock.
    gone: AtomicBool,
    capacity: usize,
    /// What a send does when this mailbox is full.
    policy: OverflowPolicy,
    rules: BatchRules,
    /// A link to remote hubs: a flush hands messages on (counted `forwarded` when
    /// published), it does not deliver them.
    forwarding: bool,
    /// Largest stored payload accepted (links: what fits one frame); 0 for no limit.
    max_wire: std::sync::atomic::AtomicUsize,
    /// The hub's queued-bytes budget (links to remote hubs have none).
    budget: Option<Arc<MemoryBudget>>,
    /// Where evicted messages go (none for a standalone mailbox).
    dead: Option<Arc<DeadLetters>>,
    metrics: Arc<Metrics>,
    /// Where emptied batch buffers come from.
    buffers: Arc<BufferPool<Vec<Envelope>>>,
    /// In the hub's list of deepest mailboxes (`deepest.rs`).
    watched: std::sync::atomic::AtomicBool,
}

// ===== impl Mailbox =====

impl Mailbox {
    /// A mailbox of `capacity` messages.
    pub(crate) fn new(
        capacity: usize,
        policy: OverflowPolicy,
        rules: BatchRules,
        metrics: Arc<Metrics>,
        buffers: Arc<BufferPool<Vec<Envelope>>>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                open: Batch::new(),
                lanes: Lanes::default(),
                receiver: None,
                senders: Vec::new(),
                sealed: false,
                interrupted: false,
                scheduled: false,
            }),
            queued: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
            capacity,
            policy,
            rules: BatchRules {
                max_messages: rules.max_messages.max(1),
                ..rules
            },
            forwarding: false,
            max_wire: std::sync::atomic::AtomicUsize::new(0),
            budget: None,
            dead: None,
            metrics,
            buffers,
            watched: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the hub's list of deepest mailboxes holds this one.
    pub(crate) fn is_watched(&self) -> bool {
        self.watched.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_watched(&self, watched: bool) {
        self.watched
            .store(watched, std::sync::atomic::Ordering::Relaxed);
    }

    /// The batch rules this mailbox flushes by.
    pub(crate) fn rules(&self) -> &BatchRules {
        &self.rules
    }

    /// A mailbox whose messages are charged against `budget` while they wait.
    pub(crate) fn with_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Where the messages it evicts (`DropOldest`) are kept.
    pub(crate) fn with_dead_letters(mut self, dead: Arc<DeadLetters>) -> Self {
        self.dead = Some(dead);
        self
    }

    /// A mailbox that feeds a link to remote hubs (see `forwarding`).
    pub(crate) fn forwarding(mut self) -> Self {
        self.forwarding = true;
        self
    }

    /// Whether this mailbox feeds a link to remote hubs.
    pub(crate) fn is_forwarding(&self) -> bool {
        self.forwarding
    }

    /// What a send does when this mailbox is full.
    pub(crate) fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    /// Refuse payloads stored larger than `max` bytes (they would not fit one frame).
    pub(crate) fn set_max_wire(&self, max: usize) {
        self.max_wire
            .store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a payload stored as `wire_len` bytes is over this mailbox's limit.
    #[inline]
    fn too_large(&self, wire_len: usize) -> Option<usize> {
        let max = self.max_wire.load(std::sync::atomic::Ordering::Relaxed);
        (max != 0 && wire_len > max).then_some(max)
    }

    /// Whether the owner left.
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Messages waiting to be received in the queue (the open batch not included).
    pub(crate) fn depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Messages waiting, queued or in the open batch (a group member's load).
    pub(crate) fn waiting(&self) -> usize {
        self.depth() + self.state.lock().open.len()
    }

    /// Messages in the open batch.
    pub(crate) fn open_len(&self) -> usize {
        self.state.lock().open.len()
    }

    /// Batches in the queue (each a `Vec` with its own allocation).
    #[cfg(test)]
    pub(crate) fn queued_batches(&self) -> usize {
        let mut state = self.state.lock();
        state.lanes.iter_mut().map(|lane| lane.len()).sum()
    }

    /// Admits one message into the open batch, or says why not. A waiting owner is woken
    /// at once; otherwise the batch leaves when one of its bounds is reached.
    #[inline]
    pub(crate) fn admit(&self, env: Envelope, how: Admission<'_>) -> Result<Admitted, Refused> {
        let mut state = self.state.lock();
        if how.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Refused::Error(Error::ShuttingDown, Some(Box::new(env))));
        }
        if self.is_gone() {
            return Err(Refused::Error(
                Error::UnknownAgent(env.to),
                Some(Box::new(env)),
            ));
        }
        if let Some(max) = self.too_large(env.payload.wire_len()) {
            // A remote hub's link: it would not fit one frame. Refused before anything moves.
            let size = env.payload.wire_len();
            return Err(Refused::Error(
                Error::PayloadTooLarge { size, max },
                Some(Box::new(env)),
            ));
        }
        let room = state.open.len() + state.lanes.queued < self.capacity;
        if !room && self.policy != OverflowPolicy::DropOldest {
            return Err(Refused::Full(Box::new(env)));
        }
        let cost = MemoryBudget::cost(env.payload.wire_len(), how.recipients);
        if let Some(budget) = &self.budget {
            if !budget.try_charge(cost) {
                return Err(Refused::OverBudget(Box::new(env), cost));
            }
        }
        if !room {
            // DropOldest: make room in place and keep filling the open batch.
            self.evict_one(&mut state);
        }
        let priority = env.priority;
        let opened = state.open.push(env, cost, &self.buffers);
        if let Some(receiver) = state.receiver.take() {
            // The owner waits: it takes the open batch when it runs, with whatever joins it
            // until then.
            drop(state);
            receiver.wake();
            return Ok(Admitted::Done);
        }
        let due = if how.flush_now {
            Some(FlushReason::Explicit)
        } else {
            state.open.due(priority, &self.rules)
        };
        if let Some(reason) = due {
            self.flush_locked(&mut state, reason);
            return Ok(Admitted::Done);
        }
        if opened && !state.scheduled {
            // `validate` keeps linger within a minute; an overflow would mean "now".
            match state.open.opened.checked_add(self.rules.linger) {
                Some(at) => {
                    state.scheduled = true;
                    return Ok(Admitted::Schedule(at));
                }
                None => self.flush_locked(&mut state, FlushReason::Linger),
            }
        }
        Ok(Admitted::Done)
    }

    /// Moves the open batch into the queue now.
    pub(crate) fn flush(&self, reason: FlushReason) {
        let mut state = self.state.lock();
        self.flush_locked(&mut state, reason);
        let receiver = state.receiver.take();
        drop(state);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
    }

    /// For the linger timer: flushes the open batch if its first message has waited
    /// `linger` by `now`; returns the next deadline if it has not yet.
    pub(crate) fn flush_if_due(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock();
        if !state.open.is_empty() {
            if let Some(due) = state.open.opened.checked_add(self.rules.linger) {
                if due > now {
                    return Some(due);
                }
            }
            self.flush_locked(&mut state, FlushReason::Linger);
        }
        state.scheduled = false;
        None
    }

    /// Counts a batch leaving the open batch, in one place for every reason.
    fn count_flush(&self, taken: &Taken, reason: FlushReason) {
        let n = taken.envelopes.len() as u64;
        let m = &self.metrics;
        m.sent.add(n);
        m.bytes_raw.add(taken.raw_bytes);
        m.bytes_wire.add(taken.wire_bytes);
        m.flushes.add(reason as usize, 1);
        m.batch_size.observe(n as f64);
        if !self.forwarding {
            m.delivered.add(n);
        }
    }

    /// Moves the open batch into the queue and counts it.
    fn flush_locked(&self, state: &mut State, reason: FlushReason) {
        if state.open.is_empty() {
            return;
        }
        let taken = state.open.take();
        self.count_flush(&taken, reason);
        self.enqueue(state, taken);
    }

    fn enqueue(&self, state: &mut State, taken: Taken) {
        let n = taken.envelopes.len();
        let lanes = &mut state.lanes;
        if taken.mask.count_ones() <= 1 {
            let lane = taken.mask.trailing_zeros().min(3) as usize;
            lanes.lane(lane).push_back(Queued {
                envelopes: taken.envelopes,
                charge: taken.charge,
            });
        } else {
            split_by_priority(lanes, taken.envelopes, taken.mask, taken.charge);
        }
        lanes.queued += n;
        self.queued.store(lanes.queued, Ordering::Release);
    }

    /// Full under `DropOldest`: drops the oldest message of the lowest priority waiting for
    /// this mailbox, queued or in the open batch (queued ones are older at equal priority),
    /// so one more fits.
    fn evict_one(&self, state: &mut State) {
        let metrics = &self.metrics;
        let in_open = (state.open.mask != 0).then(|| state.open.mask.trailing_zeros() as usize);
        let lanes = &mut state.lanes;
        let queued = lanes.iter_mut().position(|lane| !lane.is_empty());
        if let Some(lane) = queued.filter(|&q| in_open.is_none_or(|o| q <= o)) {
            let lane = lanes.lane(lane);
            let mut evicted = None;
            if let Some(front) = lane.front_mut() {
                evicted = front.pop_front();
                if front.envelopes.is_empty() {
                    lane.pop_front();
                }
            }
            lanes.queued -= 1;
            self.queued.store(lanes.queued, Ordering::Release);
            metrics.queue_dropped.add(1);
            metrics.drop_n(DropReason::DropOldest, 1);
            if let Some((env, released)) = evicted {
                self.release(released);
                self.dead_letter(env);
            }
            return;
        }
        let Some(priority) = in_open else {
            return;
        };
        if let Some((env, charge)) = state.open.remove_oldest(priority) {
            self.release(charge);
            // Accepted but never flushed: counted as sent, then as dropped (as `close` does).
            metrics.sent.add(1);
            metrics.bytes_raw.add(env.payload.len() as u64);
            metrics.bytes_wire.add(env.payload.wire_len() as u64);
            metrics.lost_before_mailbox.add(1);
            metrics.drop_n(DropReason::DropOldest, 1);
            self.dead_letter(env);
        }
    }

    /// Keeps a message this mailbox evicted among the dead letters.
    fn dead_letter(&self, env: Envelope) {
        if let Some(dead) = &self.dead {
            dead.record(DropReason::DropOldest, env);
        }
    }

    fn release(&self, charge: u64) {
        if let Some(budget) = &self.budget {
            budget.release(charge);
        }
    }

    /// Takes what the owner may receive now: the oldest batch of the highest lane, or, with
    /// an empty queue, the open batch itself. Wakers to call go in `wake`.
    fn take_locked(&self, state: &mut State, wake: &mut Vec<Waker>) -> Option<Vec<Envelope>> {
        let queued = match state.lanes.pop() {
            Some(queued) => queued,
            None if !state.open.is_empty() => {
                let taken = state.open.take();
                self.count_flush(&taken, FlushReason::Waiting);
                if taken.mask.count_ones() <= 1 {
                    Queued {
                        envelopes: taken.envelopes,
                        charge: taken.charge,
                    }
                } else {
                    // Mixed priorities: queue them by lane, then serve the highest.
                    self.enqueue(state, taken);
                    state.lanes.pop()?
                }
            }
            None => return None,
        };
        self.queued.store(state.lanes.queued, Ordering::Release);
        self.release(queued.charge);
        if !state.senders.is_empty() {
            wake.append(&mut state.senders);
        }
        Some(queued.envelopes)
    }

    /// The next batch if one is ready, without waiting.
    pub(crate) fn pop(&self) -> Option<Vec<Envelope>> {
        let mut wake = Vec::new();
        let batch = {
            let mut state = self.state.lock();
            self.take_locked(&mut state, &mut wake)
        };
        wake.into_iter().for_each(Waker::wake);
        batch
    }

    /// Waits for a batch; `None` once the mailbox is sealed (or closed) and empty, or at
    /// once after [`interrupt`](Self::interrupt). Only the owner calls it (one receiver per
    /// mailbox).
    pub(crate) fn next_batch(&self) -> NextBatch<'_> {
        NextBatch {
            mailbox: self,
            registered: false,
        }
    }

    /// [`next_batch`](Self::next_batch) as a poll. Pending leaves `cx`'s waker as the
    /// receiver: the caller polls again, or drops its claim on the mailbox (`NextBatch`
    /// takes it out when dropped first).
    pub(crate) fn poll_next_batch(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<Envelope>>> {
        let mut wake = Vec::new();
        let out = {
            let mut state = self.state.lock();
            if state.interrupted {
                state.receiver = None;
                return Poll::Ready(None);
            }
            match self.take_locked(&mut state, &mut wake) {
                Some(batch) => {
                    state.receiver = None;
                    Poll::Ready(Some(batch))
                }
                None if state.sealed || self.is_gone() => {
                    state.receiver = None;
                    Poll::Ready(None)
                }
                None => {
                    match &state.receiver {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => state.receiver = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
            }
        };
        wake.into_iter().for_each(Waker::wake);
        out
    }

    /// Waits until a message may fit again (the owner took some out, or the mailbox closed),
    /// or the hub asks blocked senders to look again. The caller retries its admission and
    /// bounds the wait with its own deadline.
    pub(crate) fn room(&self) -> RoomWait<'_> {
        RoomWait {
            mailbox: self,
            registered: false,
        }
    }

    /// Wakes every blocked sender (to see a shutdown).
    pub(crate) fn wake_senders(&self) {
        let senders = std::mem::take(&mut self.state.lock().senders);
        senders.into_iter().for_each(Waker::wake);
    }

    /// The hub shut down: the owner drains what is queued, then sees the end.
    pub(crate) fn seal(&self) {
        self.tell_owner(|state| state.sealed = true);
    }

    /// Asks the owner to stop waiting: `next_batch` returns `None` from now on (a spawned
    /// agent's stop; it goes through the mailbox, whose lock the owner takes anyway, so the
    /// agent's loop reads no flag of its own per message).
    pub(crate) fn interrupt(&self) {
        self.tell_owner(|state| state.interrupted = true);
    }

    /// Changes the state with `change` and wakes a waiting owner to see it.
    fn tell_owner(&self, change: impl FnOnce(&mut State)) {
        let receiver = {
            let mut state = self.state.lock();
            change(&mut state);
            state.receiver.take()
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
    }

    /// The owner left: refuse admissions and drop the open batch and the queue. Returns
    /// the messages dropped (open batch first, then the queue by lane, oldest first); the
    /// caller counts them with its reason.
    pub(crate) fn close(&self) -> Vec<Envelope> {
        let metrics = &self.metrics;
        let (mut dropped, queued, lanes, charge, wake) = {
            let mut state = self.state.lock();
            self.gone.store(true, Ordering::Release);
            let taken = state.open.take();
            let open = taken.envelopes.len();
            if open > 0 {
                // They were accepted: count them as sent, then as dropped.
                metrics.sent.add(open as u64);
                metrics.bytes_raw.add(taken.raw_bytes);
                metrics.bytes_wire.add(taken.wire_bytes);
                metrics.lost_before_mailbox.add(open as u64);
            }
            let queued = state.lanes.queued;
            let lanes = std::mem::take(&mut state.lanes);
            self.queued.store(0, Ordering::Release);
            let mut wake = std::mem::take(&mut state.senders);
            wake.extend(state.receiver.take());
            (taken.envelopes, queued, lanes, taken.charge, wake)
        };
        let mut charge = charge;
        for batch in lanes.lanes.into_iter().flat_map(|l| *l).flatten() {
            charge += batch.charge;
            dropped.extend(batch.envelopes);
        }
        if self.forwarding {
            // Never delivered: they were still on their way to a remote hub.
            metrics.lost_before_mailbox.add(queued as u64);
        } else {
            metrics.queue_dropped.add(queued as u64);
        }
        self.release(charge);
        wake.into_iter().for_each(Waker::wake);
        dropped
    }
}

#[cfg(test)]
impl Mailbox {
    /// A mailbox outside any hub, for the core's own tests: its counters, a small buffer
    /// pool, batches of `max_messages`, a 10 ms linger.
    pub(crate) fn standalone(
        capacity: usize,
        policy: OverflowPolicy,
        max_messages: usize,
    ) -> (Mailbox, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let sizing = crate::pool::PoolSizing {
            initial: 0,
            max: 4,
            item_capacity: 64,
        };
        let rules = BatchRules {
            max_messages,
            linger: std::time::Duration::from_millis(10),
            flush_priority: crate::Priority::Critical,
        };
        let buffers = Arc::new(BufferPool::new(
            "batches",
            sizing,
            true,
            std::time::Duration::ZERO,
        ));
        let mb = Mailbox::new(capacity, policy, rules, metrics.clone(), buffers);
        (mb, metrics)
    }
}

/// The future of [`Mailbox::next_batch`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub(crate) struct NextBatch<'a> {
    mailbox: &'a Mailbox,
    /// Our waker is in `State::receiver`: take it out if we are dropped first.
    registered: bool,
}

impl Future for NextBatch<'_> {
    type Output = Option<Vec<Envelope>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = self.mailbox.poll_next_batch(cx);
        self.registered = out.is_pending();
        out
    }
}

impl Drop for NextBatch<'_> {
    fn drop(&mut self) {
        if self.registered {
            // Cancelled while waiting: senders must not count on a receiver that left.
            self.mailbox.state.lock().receiver = None;
        }
    }
}

/// The future of [`Mailbox::room`]: ready at once if a message fits, else after one wake-up.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub(crate) struct RoomWait<'a> {
    mailbox: &'a Mailbox,
    registered: bool,
}

impl Future for RoomWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered {
            return Poll::Ready(());
        }
        let mailbox = self.mailbox;
        let mut state = mailbox.state.lock();
        let room = state.open.len() + state.lanes.queued < mailbox.capacity;
        if room || mailbox.is_gone() || state.sealed {
            return Poll::Ready(());
        }
        if !state.senders.iter().any(|w| w.will_wake(cx.waker())) {
            state.senders.push(cx.waker().clone());
        }
        drop(state);
        self.registered = true;
        Poll::Pending
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;
    use crate::{AgentId, MessageId, Payload, Priority};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    static RUNNING: AtomicBool = AtomicBool::new(false);

    fn mailbox(capacity: usize, policy: OverflowPolicy) -> (Mailbox, Arc<Metrics>) {
        Mailbox::standalone(capacity, policy, 4)
    }

    fn env(n: u8, priority: Priority) -> Envelope {
        Envelope {
            id: MessageId::new_v4(),
            from: AgentId::new_v4(),
            to: AgentId::new_v4(),
            kind: Kind::Message,
            priority,
            payload: Payload::from(vec![n]),
            sent_at: 0,
            headers: None,
            redelivered: false,
        }
    }

    fn admit(mb: &Mailbox, e: Envelope) -> Result<Admitted, Refused> {
        mb.admit(
            e,
            Admission {
                closing: &RUNNING,
                flush_now: false,
                recipients: 1,
            },
        )
    }

    fn bytes(batch: &[Envelope]) -> Vec<u8> {
        batch.iter().map(|e| e.payload.wire_bytes()[0]).collect()
    }

    #[tokio::test]
    async fn a_waiting_owner_takes_the_first_message_at_once() {
        let (mb, metrics) = mailbox(100, OverflowPolicy::Reject);
        let mb = Arc::new(mb);
        let owner = {
            let mb = mb.clone();
            tokio::spawn(async move { mb.next_batch().await })
        };
        // Let the owner register as waiting.
        while mb.state.lock().receiver.is_none() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            admit(&mb, env(1, Priority::Normal)),
            Ok(Admitted::Done)
        ));
        let batch = owner.await.unwrap().unwrap();
        assert_eq!(bytes(&batch), vec![1]);
        assert_eq!(metrics.flushes.get(FlushReason::Waiting as usize), 1);
        assert_eq!(metrics.delivered.get(), 1);
    }

    #[test]
    fn a_busy_owner_gets_batches_bounded_by_size_and_priority() {
        let (mb, metrics) = mailbox(100, OverflowPolicy::Reject);
        assert!(matches!(
            admit(&mb, env(0, Priority::Normal)),
            Ok(Admitted::Schedule(_))
        ));
        for n in 1..4 {
            assert!(matches!(
                admit(&mb, env(n, Priority::Normal)),
                Ok(Admitted::Done)
            ));
        }
        assert_eq!((mb.depth(), mb.open_len()), (4, 0), "the 4th fills it");
        assert_eq!(metrics.flushes.get(FlushReason::Size as usize), 1);
        let _ = admit(&mb, env(4, Priority::Low));
        let _ = admit(&mb, env(5, Priority::Critical));
        assert_eq!(metrics.flushes.get(FlushReason::Priority as usize), 1);
        // Highest lane first, FIFO inside a lane.
        assert_eq!(bytes(&mb.pop().unwrap()), vec![5]);
        assert_eq!(bytes(&mb.pop().unwrap()), vec![0, 1, 2, 3]);
        assert_eq!(bytes(&mb.pop().unwrap()), vec![4]);
        assert!(mb.pop().is_none());
    }

    #[test]
    fn an_owner_back_for_more_takes_the_open_batch_highest_priority_first() {
        let (mb, metrics) = mailbox(100, OverflowPolicy::Reject);
        let _ = admit(&mb, env(0, Priority::Low));
        let _ = admit(&mb, env(1, Priority::High));
        assert_eq!(mb.depth(), 0);
        assert_eq!(bytes(&mb.pop().unwrap()), vec![1]);
        assert_eq!(bytes(&mb.pop().unwrap()), vec![0]);
        assert_eq!(metrics.flushes.get(FlushReason::Waiting as usize), 1);
        assert_eq!(metrics.sent.get(), 2);
    }

    #[test]
    fn capacity_covers_open_and_queued_messages() {
        let (mb, _) = mailbox(3, OverflowPolicy::Reject);
        for n in 0..3 {
            assert!(admit(&mb, env(n, Priority::Normal)).is_ok());
        }
        match admit(&mb, env(9, Priority::Normal)) {
            Err(Refused::Full(back)) => assert_eq!(&back.payload.wire_bytes()[..], &[9]),
            other => panic!("{other:?}"),
        }
        assert_eq!(bytes(&mb.pop().unwrap()), vec![0, 1, 2]);
        assert!(admit(&mb, env(3, Priority::Normal)).is_ok());
    }

    #[test]
    fn drop_oldest_evicts_the_oldest_of_the_lowest_priority() {
        let (mb, metrics) = mailbox(3, OverflowPolicy::DropOldest);
        let _ = admit(&mb, env(0, Priority::High));
        let _ = admit(&mb, env(1, Priority::Low));
        let _ = admit(&mb, env(2, Priority::Low));
        let _ = admit(&mb, env(3, Priority::Normal));
        assert_eq!(metrics.dropped.get(DropReason::DropOldest as usize), 1);
        assert_eq!(bytes(&mb.pop().unwrap()), vec![0]);
        assert_eq!(bytes(&mb.pop().unwrap()), vec![3]);
        assert_eq!(bytes(&mb.pop().unwrap()), vec![2]);
    }

    #[tokio::test]
    async fn close_refuses_and_counts_and_ends_the_owner() {
        let (mb, metrics) = mailbox(100, OverflowPolicy::Reject);
        for n in 0..6 {
            let _ = admit(&mb, env(n, Priority::Normal));
        }
        assert_eq!((mb.depth(), mb.open_len()), (4, 2));
        assert_eq!(mb.close().len(), 6);
        assert_eq!(metrics.lost_before_mailbox.get(), 2, "the open batch");
        assert_eq!(metrics.queue_dropped.get(), 4, "the queue");
        assert!(matches!(
            admit(&mb, env(7, Priority::Normal)),
            Err(Refused::Error(Error::UnknownAgent(_), _))
        ));
        assert!(mb.next_batch().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_ends_the_owners_wait_and_leaves_the_queue_to_pop() {
        let (mb, _) = mailbox(100, OverflowPolicy::Reject);
        let mb = Arc::new(mb);
        let waiting = tokio::spawn({
            let mb = mb.clone();
            async move { mb.next_batch().await.is_none() }
        });
        tokio::task::yield_now().await;
        mb.interrupt();
        assert!(waiting.await.unwrap(), "a waiting owner sees the end");
        for n in 0..3 {
            let _ = admit(&mb, env(n, Priority::Normal));
        }
        mb.flush(FlushReason::Linger);
        assert!(mb.next_batch().await.is_none(), "queued or not");
        assert_eq!(bytes(&mb.pop().unwrap()), vec![0, 1, 2], "pop still drains");
        assert!(mb.pop().is_none());
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_receiver_behind() {
        let (mb, _) = mailbox(100, OverflowPolicy::Reject);
        let waited = tokio::time::timeout(Duration::from_millis(1), mb.next_batch()).await;
        assert!(waited.is_err());
        assert!(mb.state.lock().receiver.is_none());
        // With nobody waiting, the batch forms and arms the linger.
        assert!(matches!(
            admit(&mb, env(1, Priority::Normal)),
            Ok(Admitted::Schedule(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_linger_flushes_a_batch_nobody_took() {
        let (mb, metrics) = mailbox(100, OverflowPolicy::Reject);
        let mb = Arc::new(mb);
        let (tx, rx) = flume::unbounded();
        let timer = tokio::spawn(crate::bus::linger::run(rx));
        let Ok(Admitted::Schedule(at)) = admit(&mb, env(1, Priority::Normal)) else {
            panic!("the first message arms the linger");
        };
        tx.send(crate::bus::linger::Schedule(at, mb.clone()))
            .unwrap();
        tokio::time::sleep(Duration::from_micros(9_900)).await;
        assert_eq!(mb.depth(), 0);
        tokio::time::sleep(Duration::from_micros(200)).await;
        assert_eq!(mb.depth(), 1);
        assert_eq!(metrics.flushes.get(FlushReason::Linger as usize), 1);
        drop(tx);
        timer.await.unwrap();
    }

    #[tokio::test]
    async fn a_sender_waiting_for_room_wakes_when_the_owner_takes_some() {
        let (mb, _) = mailbox(1, OverflowPolicy::Reject);
        let mb = Arc::new(mb);
        let _ = admit(&mb, env(0, Priority::Normal));
        assert!(matches!(
            admit(&mb, env(1, Priority::Normal)),
            Err(Refused::Full(_))
        ));
        let waiter = {
            let mb = mb.clone();
            tokio::spawn(async move { mb.room().await })
        };
        while mb.state.lock().senders.is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(mb.pop().is_some());
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(admit(&mb, env(1, Priority::Normal)).is_ok());
    }
}
