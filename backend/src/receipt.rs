//! The receipt a durable message carries (in its headers) from the transport to its
//! recipient: once the recipient has taken it and let go of it (the agent handled it and
//! dropped every copy of the envelope), or it became a dead letter, the transport may
//! acknowledge it to its log; when it is dropped untaken (its mailbox closed at shutdown),
//! the log must deliver it again.
//!
//! The bus only settles receipts; what settling means belongs to the transport (a
//! [`Settle`] it implements), so the bus never depends on it.

use parking_lot::Mutex;
use std::sync::Arc;

/// What became of a message that carried a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Handed to its recipient, or kept among the dead letters: done.
    Taken,
    /// Never taken: to be delivered again.
    Returned,
}

/// Where a transport learns what became of its messages.
pub(crate) trait Settle: Send + Sync + std::fmt::Debug {
    /// Message `slot` (the transport's own number for it, such as its position in a
    /// frame) was taken or returned; called once per receipt.
    fn settle(&self, slot: u32, outcome: Outcome);
}

#[derive(Debug)]
struct Held {
    sink: Arc<dyn Settle>,
    slot: u32,
    /// Handed to the recipient: done once the recipient lets go of it.
    handed: bool,
}

/// A message's receipt, or none (every message that did not come from a durable log). A
/// copy of the headers that hold it carries none: only the original settles. Receipts
/// never make headers differ.
#[derive(Debug, Default)]
pub(crate) struct Receipt(Mutex<Option<Box<Held>>>);

impl Receipt {
    /// A receipt for message `slot`, settled into `sink`.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn new(sink: Arc<dyn Settle>, slot: u32) -> Receipt {
        Receipt(Mutex::new(Some(Box::new(Held {
            sink,
            slot,
            handed: false,
        }))))
    }

    /// Moves the receipt out (into rebuilt headers), leaving none.
    pub(crate) fn take(&self) -> Receipt {
        Receipt(Mutex::new(self.0.lock().take()))
    }

    /// The recipient has it: it is done when the envelope is dropped (after the agent
    /// handled it), not before.
    #[inline]
    pub(crate) fn hand_over(&self) {
        if let Some(held) = self.0.lock().as_mut() {
            held.handed = true;
        }
    }

    /// Settles it now (a later drop does nothing).
    pub(crate) fn settle(&self, outcome: Outcome) {
        let held = self.0.lock().take();
        if let Some(held) = held {
            held.sink.settle(held.slot, outcome);
        }
    }
}

impl Clone for Receipt {
    fn clone(&self) -> Self {
        Receipt::default()
    }
}

impl PartialEq for Receipt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Receipt {}

impl Drop for Receipt {
    fn drop(&mut self) {
        if let Some(held) = self.0.get_mut().take() {
            let outcome = if held.handed {
                Outcome::Taken
            } else {
                Outcome::Returned
            };
            held.sink.settle(held.slot, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Log(Mutex<Vec<(u32, Outcome)>>);

    impl Settle for Log {
        fn settle(&self, slot: u32, outcome: Outcome) {
            self.0.lock().push((slot, outcome));
        }
    }

    #[test]
    fn settles_once_taken_or_returned_on_drop_and_copies_carry_none() {
        let log = Arc::new(Log::default());
        let [a, b, c] = [7, 8, 9];
        let taken = Receipt::new(log.clone(), a);
        drop(taken.clone());
        taken.settle(Outcome::Taken);
        taken.settle(Outcome::Returned);
        drop(taken);
        drop(Receipt::new(log.clone(), b));
        drop(Receipt::default());
        let handed = Receipt::new(log.clone(), c);
        let moved = handed.take();
        drop(handed);
        moved.hand_over();
        assert_eq!(log.0.lock().len(), 2, "handed over, not done until dropped");
        drop(moved);
        assert_eq!(
            *log.0.lock(),
            vec![
                (a, Outcome::Taken),
                (b, Outcome::Returned),
                (c, Outcome::Taken)
            ]
        );
    }
}
