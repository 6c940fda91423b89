//! The receiving hub's memory of message ids, so a frame delivered again (after
//! `ack_wait`, a lost ack, a publish retried across a reconnection) never reaches an agent
//! twice.
//!
//! An id is *pending* from the moment its message enters a mailbox until the agent takes
//! it, then *done*. A message that is returned untaken (shutdown) is forgotten, so its next
//! delivery goes through. Done ids are kept up to the window's size, oldest forgotten first;
//! pending ones are bounded by what the mailboxes hold.

use crate::receipt::Outcome;
use crate::MessageId;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A later delivery of a frame, waiting for a message of an earlier one: told when that
/// message comes back untaken (so it is delivered again), let go when it is done.
pub(crate) trait Waiting: Send + Sync + std::fmt::Debug {
    fn again(&self);
}

#[derive(Debug)]
enum State {
    /// In a mailbox, with the later deliveries of its frame that wait for it: each is
    /// acknowledged only once this message is taken, or delivered again if it is returned.
    Pending(Vec<Arc<dyn Waiting>>),
    Done,
}

#[derive(Debug, Default)]
struct Ids {
    state: HashMap<MessageId, State>,
    /// Done ids, oldest first.
    order: VecDeque<MessageId>,
}

/// What the window says of a message that arrives.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First time (or returned since): deliver it; it is pending now.
    New,
    /// Delivered before, or in a mailbox now: drop it.
    Duplicate,
}

/// A bounded set of recent message ids.
#[derive(Debug)]
pub(crate) struct Window {
    ids: Mutex<Ids>,
    capacity: usize,
}

impl Window {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            ids: Mutex::new(Ids::default()),
            capacity: capacity.max(1),
        }
    }

    /// Checks the ids of one delivered frame in, under one lock: true for each that is
    /// new (now pending). A duplicate of a pending message makes `frame` (the later
    /// delivery) wait for it.
    pub(crate) fn arrive_all(
        &self,
        ids: impl Iterator<Item = MessageId>,
        frame: Option<Arc<dyn Waiting>>,
    ) -> Vec<bool> {
        let mut ids_now = self.ids.lock();
        ids.map(|id| match ids_now.state.entry(id) {
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                if let (State::Pending(waiting), Some(frame)) = (slot.get_mut(), &frame) {
                    waiting.push(frame.clone());
                }
                false
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(State::Pending(Vec::new()));
                true
            }
        })
        .collect()
    }

    /// [`arrive_all`](Self::arrive_all) for one id.
    #[cfg(test)]
    pub(crate) fn arrive(&self, id: MessageId, frame: Option<Arc<dyn Waiting>>) -> Seen {
        match self.arrive_all(std::iter::once(id), frame)[0] {
            true => Seen::New,
            false => Seen::Duplicate,
        }
    }

    /// Marks the messages of a finished frame that were taken as done, under one lock.
    pub(crate) fn taken_all(&self, ids: Vec<MessageId>) {
        let mut waiting = Vec::new();
        let mut state = self.ids.lock();
        for id in ids {
            let old = state.state.insert(id, State::Done);
            match old {
                Some(State::Done) => {}
                Some(State::Pending(w)) => {
                    state.order.push_back(id);
                    waiting.extend(w);
                }
                None => state.order.push_back(id),
            }
        }
        while state.order.len() > self.capacity {
            if let Some(old) = state.order.pop_front() {
                state.state.remove(&old);
            }
        }
        drop(state);
        // Outside the lock: the last hold on a waiting frame sends its verdict.
        drop(waiting);
    }

    /// Marks a message that needs no mailbox (handled at once) as done.
    #[cfg(test)]
    pub(crate) fn done(&self, id: MessageId) {
        self.settle(id, Outcome::Taken);
    }

    /// What became of a pending message.
    pub(crate) fn settle(&self, id: MessageId, outcome: Outcome) {
        let mut ids = self.ids.lock();
        let waiting = match outcome {
            Outcome::Returned => match ids.state.get(&id) {
                Some(State::Pending(_)) => match ids.state.remove(&id) {
                    Some(State::Pending(waiting)) => waiting,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            },
            Outcome::Taken => {
                let old = ids.state.insert(id, State::Done);
                if !matches!(old, Some(State::Done)) {
                    ids.order.push_back(id);
                }
                while ids.order.len() > self.capacity {
                    if let Some(old) = ids.order.pop_front() {
                        ids.state.remove(&old);
                    }
                }
                match old {
                    Some(State::Pending(waiting)) => waiting,
                    _ => Vec::new(),
                }
            }
        };
        drop(ids);
        // Outside the lock: the last hold on a frame sends its verdict.
        for frame in waiting {
            if outcome == Outcome::Returned {
                frame.again();
            }
        }
    }

    /// Ids remembered (pending and done).
    pub(crate) fn len(&self) -> usize {
        self.ids.lock().state.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_caught_while_pending_and_after_done_and_returned_ids_come_again() {
        let w = Window::new(2);
        let [a, b, c, d] = [(); 4].map(|()| MessageId::new_v4());
        assert_eq!(w.arrive(a, None), Seen::New);
        assert_eq!(w.arrive(a, None), Seen::Duplicate, "pending");
        w.settle(a, Outcome::Taken);
        assert_eq!(w.arrive(a, None), Seen::Duplicate, "done");
        assert_eq!(w.arrive(b, None), Seen::New);
        w.settle(b, Outcome::Returned);
        assert_eq!(w.arrive(b, None), Seen::New, "returned: delivered again");
        w.settle(b, Outcome::Taken);
        // A late "returned" of a copy does not forget a done id.
        w.settle(b, Outcome::Returned);
        assert_eq!(w.arrive(b, None), Seen::Duplicate);
        w.done(c);
        w.done(d);
        // Bound 2: a, the oldest done, is forgotten.
        assert_eq!(w.len(), 2);
        assert_eq!(w.arrive(a, None), Seen::New);
        assert_eq!(w.arrive(d, None), Seen::Duplicate);
    }
}
