//! The receipt a durable message carries from the transport to its recipient: once the
//! recipient has taken it and let go of it (the agent handled it and dropped the
//! envelope), or it became a dead letter, the transport may acknowledge it to its log;
//! when it is dropped untaken (its mailbox closed at shutdown), the log must deliver it
//! again.
//!
//! The bus only settles receipts; what settling means belongs to the transport (a
//! [`Settle`] it implements), so the bus never depends on it.

use crate::MessageId;
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
    /// Message `id` was taken or returned; called once per receipt.
    fn settle(&self, id: MessageId, outcome: Outcome);
}

#[derive(Debug)]
struct Held {
    sink: Arc<dyn Settle>,
    id: MessageId,
    /// Handed to the recipient: done once the recipient lets go of it.
    handed: bool,
}

/// A message's receipt, or none (every message that did not come from a durable log). One
/// pointer wide. A copy of an envelope carries no receipt: only the original settles.
#[derive(Debug, Default)]
pub(crate) struct Receipt(Option<Box<Held>>);

impl Receipt {
    /// No receipt.
    pub(crate) const NONE: Receipt = Receipt(None);

    /// A receipt for message `id`, settled into `sink`.
    pub(crate) fn new(sink: Arc<dyn Settle>, id: MessageId) -> Receipt {
        Receipt(Some(Box::new(Held {
            sink,
            id,
            handed: false,
        })))
    }

    /// Whether there is one to settle.
    #[cfg(test)]
    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// The recipient has it: it is done when the envelope is dropped (after the agent
    /// handled it), not before.
    #[inline]
    pub(crate) fn hand_over(&mut self) {
        if let Some(held) = &mut self.0 {
            held.handed = true;
        }
    }

    /// Settles it now (a later drop does nothing).
    #[inline]
    pub(crate) fn settle(&mut self, outcome: Outcome) {
        if let Some(held) = self.0.take() {
            held.sink.settle(held.id, outcome);
        }
    }
}

impl Clone for Receipt {
    fn clone(&self) -> Self {
        Receipt(None)
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        let handed = self.0.as_ref().is_some_and(|held| held.handed);
        self.settle(if handed {
            Outcome::Taken
        } else {
            Outcome::Returned
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Debug, Default)]
    struct Log(Mutex<Vec<(MessageId, Outcome)>>);

    impl Settle for Log {
        fn settle(&self, id: MessageId, outcome: Outcome) {
            self.0.lock().push((id, outcome));
        }
    }

    #[test]
    fn settles_once_taken_or_returned_on_drop_and_copies_carry_none() {
        let log = Arc::new(Log::default());
        let (a, b) = (MessageId::new_v4(), MessageId::new_v4());
        let mut taken = Receipt::new(log.clone(), a);
        let copy = taken.clone();
        assert!(!copy.is_some());
        drop(copy);
        taken.settle(Outcome::Taken);
        taken.settle(Outcome::Returned);
        drop(taken);
        drop(Receipt::new(log.clone(), b));
        drop(Receipt::NONE);
        let c = MessageId::new_v4();
        let mut handed = Receipt::new(log.clone(), c);
        handed.hand_over();
        assert_eq!(log.0.lock().len(), 2, "handed over, not done until dropped");
        drop(handed);
        assert_eq!(
            *log.0.lock(),
            vec![(a, Outcome::Taken), (b, Outcome::Returned), (c, Outcome::Taken)]
        );
    }
}
