//! The receiving hub's memory of what it delivered, so a frame delivered again (after
//! `ack_wait`, a lost ack, a publish retried across a reconnection) never brings a message
//! to an agent twice.
//!
//! A frame keeps its identity on every delivery: its sender, the sender's epoch, link and
//! frame sequence number (what its `Nats-Msg-Id` says). The window remembers, per frame,
//! each message's state by its position in the frame: *pending* from the moment it enters a
//! mailbox until its agent takes it, then *done*; a message returned untaken (shutdown) is
//! forgotten, so the next delivery brings it. Looking up a frame once per delivery instead
//! of each message once keeps the cost of deduplication per frame (a frame carries up to
//! hundreds of messages), and a frame whose messages are all done shrinks to its key and
//! count.
//!
//! Frames whose messages are all settled are forgotten oldest first once they hold more
//! than `dedup_window` messages in all; frames with messages pending are bounded by what
//! the mailboxes hold.

use crate::id::KeyedIdState;
use crate::receipt::Outcome;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// A later delivery of a frame, waiting for messages of an earlier one: told when one of
/// them comes back untaken (so it is delivered again), let go when none is pending.
pub(crate) trait Waiting: Send + Sync + std::fmt::Debug {
    fn again(&self);
}

/// A frame's identity across deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FrameKey {
    /// The sender's node name, hashed with the window's key.
    node: u64,
    epoch: u64,
    link: u64,
    seq: u64,
}

/// One message of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Never delivered here, or returned untaken: deliver it.
    Open,
    /// In a mailbox.
    Pending,
    /// Taken by its agent (or dead-lettered).
    Done,
}

#[derive(Debug)]
struct Entry {
    /// Empty once every message is done (`count` remembers how many there were).
    slots: Box<[Slot]>,
    count: u32,
    pending: u32,
    /// Later deliveries waiting for a pending message of this frame.
    waiting: Vec<Arc<dyn Waiting>>,
    /// Its turn in `order` once nothing is pending any more (it may be forgotten then).
    settled: Option<u64>,
}

impl Entry {
    fn all_done(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, index: usize) -> Slot {
        match self.slots.get(index) {
            Some(&slot) => slot,
            None if self.all_done() && index < self.count as usize => Slot::Done,
            None => Slot::Open,
        }
    }
}

#[derive(Debug, Default)]
struct Frames {
    map: HashMap<FrameKey, Entry, KeyedIdState>,
    /// Frames with nothing pending, oldest first, with their turn (a frame back in play
    /// leaves a void turn behind, skipped when it comes up).
    order: VecDeque<(FrameKey, u64)>,
    turns: u64,
    /// Messages the frames in `order` hold.
    settled_messages: usize,
    /// Messages remembered (pending and settled).
    messages: usize,
}

/// A bounded memory of recent frames.
#[derive(Debug)]
pub(crate) struct Window {
    frames: Mutex<Frames>,
    hasher: KeyedIdState,
    capacity: usize,
}

impl Window {
    /// A window remembering settled frames up to `capacity` messages in all.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            frames: Mutex::new(Frames::default()),
            hasher: KeyedIdState::default(),
            capacity: capacity.max(1),
        }
    }

    /// The key of a frame of `node` with these numbers.
    pub(crate) fn key(&self, node: &str, epoch: u64, link: u64, seq: u64) -> FrameKey {
        let mut h = self.hasher.build_hasher();
        node.hash(&mut h);
        FrameKey {
            node: std::hash::Hasher::finish(&h),
            epoch,
            link,
            seq,
        }
    }

    /// Checks one delivery of frame `key` (of `count` messages) in: true for each message
    /// to deliver (now pending). When a message is pending from an earlier delivery,
    /// `delivery` waits for it.
    pub(crate) fn arrive(
        &self,
        key: FrameKey,
        count: usize,
        delivery: Option<Arc<dyn Waiting>>,
    ) -> Vec<bool> {
        let count32 = u32::try_from(count).unwrap_or(u32::MAX);
        let mut guard = self.frames.lock();
        let frames = &mut *guard;
        let entry = frames.map.entry(key).or_insert_with(|| Entry {
            slots: vec![Slot::Open; count].into_boxed_slice(),
            count: count32,
            pending: 0,
            waiting: Vec::new(),
            settled: None,
        });
        if count32 > entry.count {
            // More messages than the frame had: only a forgery can do that. Its state
            // stays exact anyway.
            let mut slots = if entry.all_done() {
                vec![Slot::Done; entry.count as usize]
            } else {
                entry.slots.to_vec()
            };
            slots.resize(count, Slot::Open);
            if entry.settled.is_some() {
                frames.settled_messages += (count32 - entry.count) as usize;
            }
            entry.slots = slots.into_boxed_slice();
            entry.count = count32;
        }
        let mut fresh = Vec::with_capacity(count);
        let mut waits = false;
        for index in 0..count {
            match entry.slot(index) {
                Slot::Open => {
                    entry.slots[index] = Slot::Pending;
                    entry.pending += 1;
                    frames.messages += 1;
                    fresh.push(true);
                }
                Slot::Pending => {
                    waits = true;
                    fresh.push(false);
                }
                Slot::Done => fresh.push(false),
            }
        }
        if waits {
            if let Some(delivery) = delivery {
                entry.waiting.push(delivery);
            }
        }
        if entry.pending > 0 && entry.settled.take().is_some() {
            // Back in play (a returned message delivered again): its place in `order` is
            // void, and it is not forgotten while a message is pending.
            frames.settled_messages -= entry.count as usize;
        }
        fresh
    }

    /// Marks messages of frame `key` (by position) as taken, under one lock; lets go of the
    /// deliveries that waited for them once nothing of the frame is pending.
    pub(crate) fn taken(&self, key: FrameKey, indices: &[u32]) {
        self.settle_all(key, indices, Outcome::Taken);
    }

    /// What became of one pending message.
    pub(crate) fn settle(&self, key: FrameKey, index: u32, outcome: Outcome) {
        self.settle_all(key, &[index], outcome);
    }

    fn settle_all(&self, key: FrameKey, indices: &[u32], outcome: Outcome) {
        let mut released = Vec::new();
        let mut guard = self.frames.lock();
        let frames = &mut *guard;
        let Some(entry) = frames.map.get_mut(&key) else {
            return;
        };
        for &index in indices {
            let index = index as usize;
            if entry.slots.get(index) != Some(&Slot::Pending) {
                continue;
            }
            entry.pending -= 1;
            match outcome {
                Outcome::Taken => entry.slots[index] = Slot::Done,
                Outcome::Returned => {
                    entry.slots[index] = Slot::Open;
                    frames.messages -= 1;
                    for delivery in &entry.waiting {
                        delivery.again();
                    }
                }
            }
        }
        if entry.pending == 0 {
            released = std::mem::take(&mut entry.waiting);
            if entry.slots.iter().all(|s| *s == Slot::Done) {
                entry.slots = Box::default();
            }
            if entry.settled.is_none() {
                frames.turns += 1;
                entry.settled = Some(frames.turns);
                frames.order.push_back((key, frames.turns));
                frames.settled_messages += entry.count as usize;
            }
        }
        while frames.settled_messages > self.capacity {
            let Some((old, turn)) = frames.order.pop_front() else {
                break;
            };
            if frames
                .map
                .get(&old)
                .is_some_and(|e| e.settled == Some(turn))
            {
                if let Some(gone) = frames.map.remove(&old) {
                    frames.settled_messages -= gone.count as usize;
                    frames.messages -= done_or_pending(&gone);
                }
            }
        }
        drop(guard);
        // Outside the lock: the last hold on a waiting delivery sends its verdict.
        drop(released);
    }

    /// Messages remembered (pending and done).
    pub(crate) fn len(&self) -> usize {
        self.frames.lock().messages
    }
}

/// Messages of an entry that count as remembered: done and pending ones.
fn done_or_pending(entry: &Entry) -> usize {
    if entry.all_done() {
        entry.count as usize
    } else {
        entry.slots.iter().filter(|s| **s != Slot::Open).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default)]
    struct Later(AtomicBool);

    impl Waiting for Later {
        fn again(&self) {
            self.0.store(true, Ordering::Release);
        }
    }

    #[test]
    fn duplicates_are_caught_while_pending_and_after_done_and_returned_messages_come_again() {
        let w = Window::new(4);
        let f = w.key("a", 1, 1, 1);
        assert_eq!(w.arrive(f, 3, None), vec![true, true, true]);
        assert_eq!(w.len(), 3);
        let later = Arc::new(Later::default());
        assert_eq!(
            w.arrive(f, 3, Some(later.clone() as _)),
            vec![false, false, false],
            "pending"
        );
        w.taken(f, &[0]);
        w.settle(f, 1, Outcome::Returned);
        assert!(
            later.0.load(Ordering::Acquire),
            "the waiting delivery is told"
        );
        assert_eq!(Arc::strong_count(&later), 2, "held while 2 is pending");
        w.taken(f, &[2]);
        assert_eq!(Arc::strong_count(&later), 1, "let go");
        // Delivered again: only the returned message goes through.
        assert_eq!(w.arrive(f, 3, None), vec![false, true, false]);
        w.taken(f, &[1]);
        assert_eq!(w.arrive(f, 3, None), vec![false, false, false], "done");
        // A late "returned" of a copy does not forget a done message.
        w.settle(f, 1, Outcome::Returned);
        assert_eq!(w.arrive(f, 3, None), vec![false, false, false]);
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn settled_frames_are_forgotten_oldest_first_beyond_the_bound_and_keys_differ_by_sender() {
        let w = Window::new(4);
        let [a, b, c] = [1, 2, 3].map(|seq| w.key("a", 1, 1, seq));
        assert_ne!(w.key("a", 1, 1, 1), w.key("b", 1, 1, 1));
        for f in [a, b, c] {
            assert_eq!(w.arrive(f, 2, None), vec![true, true]);
            w.taken(f, &[0, 1]);
        }
        // Bound 4 messages: a, the oldest settled frame, is forgotten.
        assert_eq!(w.len(), 4);
        assert_eq!(w.arrive(a, 2, None), vec![true, true]);
        assert_eq!(w.arrive(c, 2, None), vec![false, false]);
        // A frame with messages pending is never forgotten.
        let d = w.key("a", 1, 1, 4);
        assert_eq!(w.arrive(d, 5, None), vec![true; 5]);
        w.taken(a, &[0, 1]);
        assert_eq!(w.arrive(d, 5, None), vec![false; 5]);
    }

    proptest::proptest! {
        /// Against a model of every message's state: a message is delivered again only
        /// after it was returned, never while pending or once done.
        #[test]
        fn deliveries_follow_each_messages_state(
            ops in proptest::collection::vec((0u8..3, 0u64..3, 0u32..4), 1..200),
        ) {
            let w = Window::new(1_000_000);
            let keys = [0, 1, 2].map(|seq| w.key("n", 1, 1, seq));
            let mut model = [[Slot::Open; 4]; 3];
            for (op, frame, slot) in ops {
                let (f, i) = (frame as usize, slot as usize);
                match op {
                    0 => {
                        let fresh = w.arrive(keys[f], 4, None);
                        for (j, new) in fresh.into_iter().enumerate() {
                            proptest::prop_assert_eq!(new, model[f][j] == Slot::Open);
                            if new { model[f][j] = Slot::Pending; }
                        }
                    }
                    1 => {
                        w.taken(keys[f], &[slot]);
                        if model[f][i] == Slot::Pending { model[f][i] = Slot::Done; }
                    }
                    _ => {
                        w.settle(keys[f], slot, Outcome::Returned);
                        if model[f][i] == Slot::Pending { model[f][i] = Slot::Open; }
                    }
                }
                let remembered = model.iter().flatten().filter(|s| **s != Slot::Open).count();
                proptest::prop_assert_eq!(w.len(), remembered);
            }
        }
    }

    #[test]
    fn a_returned_message_puts_a_settled_frame_back_in_play() {
        let w = Window::new(100);
        let f = w.key("a", 1, 1, 1);
        assert_eq!(w.arrive(f, 2, None), vec![true, true]);
        w.taken(f, &[0]);
        w.settle(f, 1, Outcome::Returned);
        assert_eq!(w.arrive(f, 2, None), vec![false, true]);
        w.taken(f, &[1]);
        assert_eq!(w.arrive(f, 2, None), vec![false, false]);
        assert_eq!(w.len(), 2);
    }
}
