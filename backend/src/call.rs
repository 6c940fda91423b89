//! One request's cancellation state, shared by its requester and its callee: on one hub the
//! same `Arc<Call>` is in the requester's stream and in the request envelope's headers;
//! across hubs the callee's hub makes its own and a cancel frame sets it (`bus/calls.rs`).

use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::Notify;

/// Who ended a request early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelBy {
    /// The requester cancelled, or dropped its stream or its request future.
    Caller = 1,
    /// The request's deadline passed.
    Deadline = 2,
    /// The hub shut down.
    Shutdown = 3,
}

impl CancelBy {
    pub(crate) const ALL: [CancelBy; 3] =
        [CancelBy::Caller, CancelBy::Deadline, CancelBy::Shutdown];

    /// The metric label.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            CancelBy::Caller => "caller",
            CancelBy::Deadline => "deadline",
            CancelBy::Shutdown => "shutdown",
        }
    }

    fn from_u8(v: u8) -> Option<CancelBy> {
        match v {
            1 => Some(CancelBy::Caller),
            2 => Some(CancelBy::Deadline),
            3 => Some(CancelBy::Shutdown),
            _ => None,
        }
    }
}

/// Whether a request was cancelled, and the waiters to wake when it is.
#[derive(Debug, Default)]
pub(crate) struct Call {
    by: AtomicU8,
    notify: Notify,
}

impl Call {
    /// Cancels; returns whether this call did (the first cancel wins and is the reason).
    pub(crate) fn cancel(&self, by: CancelBy) -> bool {
        let first = self
            .by
            .compare_exchange(0, by as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    pub(crate) fn cancelled_by(&self) -> Option<CancelBy> {
        CancelBy::from_u8(self.by.load(Ordering::Acquire))
    }

    /// Resolves once cancelled.
    pub(crate) async fn cancelled(&self) {
        loop {
            // Register before checking, so a cancel between the two is not missed.
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.cancelled_by().is_some() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_first_cancel_wins_and_wakes_every_waiter() {
        let call = Arc::new(Call::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let call = call.clone();
                tokio::spawn(async move { call.cancelled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(call.cancelled_by().is_none());
        assert!(call.cancel(CancelBy::Deadline));
        assert!(!call.cancel(CancelBy::Caller));
        assert_eq!(call.cancelled_by(), Some(CancelBy::Deadline));
        for w in waiters {
            w.await.unwrap();
        }
        // Already cancelled: resolves at once.
        call.cancelled().await;
    }
}
