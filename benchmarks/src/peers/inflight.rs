//! The run-wide in-flight cap: messages sent and not yet received (requests outstanding).
//!
//! A sender takes a slot before each send; the receiver's `Counter::got` frees it. The hot
//! path is one atomic add on each side, the same for every system; only a sender finding
//! the cap full touches the `Notify`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use tokio::sync::Notify;

pub(crate) struct InFlight {
    used: AtomicUsize,
    cap: usize,
    /// Set by a sender about to sleep; the next release wakes every sleeper.
    waiting: AtomicBool,
    notify: Notify,
}

impl InFlight {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            cap: cap.max(1),
            waiting: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Waits until a slot is free and takes it.
    pub(crate) async fn acquire(&self) {
        loop {
            if self.used.fetch_add(1, SeqCst) < self.cap {
                return;
            }
            self.used.fetch_sub(1, SeqCst);
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is raised, so a release after the flag wakes us.
            notified.as_mut().enable();
            self.waiting.store(true, SeqCst);
            // A release between the failed add and the flag saw no flag: look again.
            if self.used.load(SeqCst) < self.cap {
                continue;
            }
            notified.await;
        }
    }

    /// Frees one slot.
    pub(crate) fn release(&self) {
        self.used.fetch_sub(1, SeqCst);
        if self.waiting.load(SeqCst) && self.waiting.swap(false, SeqCst) {
            self.notify.notify_waiters();
        }
    }

    /// Slots taken now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounds_and_wakes() {
        let cap = Arc::new(InFlight::new(4));
        for _ in 0..4 {
            cap.acquire().await;
        }
        // Full: the fifth waits until a release.
        let c = cap.clone();
        let waiter = tokio::spawn(async move { c.acquire().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        cap.release();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(cap.used(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_senders_never_exceed_and_finish() {
        let cap = Arc::new(InFlight::new(8));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut senders = Vec::new();
        for _ in 0..4 {
            let (cap, tx) = (cap.clone(), tx.clone());
            senders.push(tokio::spawn(async move {
                for _ in 0..10_000 {
                    cap.acquire().await;
                    tx.send(()).expect("receiver alive");
                }
            }));
        }
        drop(tx);
        let c = cap.clone();
        let receiver = tokio::spawn(async move {
            let mut got = 0u32;
            while rx.recv().await.is_some() {
                // Held slots: at most the cap plus the senders' transient failed adds.
                assert!(c.used() <= 8 + 4);
                c.release();
                got += 1;
            }
            got
        });
        for s in senders {
            tokio::time::timeout(Duration::from_secs(20), s)
                .await
                .expect("senders finish")
                .expect("no panic");
        }
        let got = receiver.await.expect("no panic");
        assert_eq!(got, 40_000);
        assert_eq!(cap.used(), 0);
    }
}
