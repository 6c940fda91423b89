//! The linger timer: one task that flushes batches whose first message has waited
//! `linger`.
//!
//! A mailbox registers a deadline when its batch opens and no deadline is pending, so the
//! timer costs at most one channel send per recipient per linger period. It sleeps on
//! tokio's clock, which tests pause and advance.

use crate::hub::Shared;
use crate::mailbox::Mailbox;
use crate::metrics::FlushReason;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use tokio::time::Instant;

/// Flush this mailbox's batch once it is due, at or after the instant.
pub(crate) struct Schedule(pub(crate) Instant, pub(crate) Arc<Mailbox>);

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Schedule {}
impl PartialOrd for Schedule {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Schedule {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

/// Runs until the hub is gone.
pub(crate) async fn run(shared: Weak<Shared>, rx: flume::Receiver<Schedule>) {
    let mut heap: BinaryHeap<Reverse<Schedule>> = BinaryHeap::new();
    loop {
        let next = heap.peek().map(|Reverse(e)| e.0);
        tokio::select! {
            biased;
            entry = rx.recv_async() => match entry {
                Ok(entry) => heap.push(Reverse(entry)),
                Err(_) => return,
            },
            _ = sleep_until(next) => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(e)| e.0 <= now) {
                    if let Some(Reverse(Schedule(_, mailbox))) = heap.pop() {
                        if let Some(again) = flush_if_due(&shared, &mailbox, now) {
                            heap.push(Reverse(Schedule(again, mailbox)));
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Flushes the batch if its linger is over; returns the next deadline if it is not yet.
fn flush_if_due(shared: &Shared, mailbox: &Mailbox, now: Instant) -> Option<Instant> {
    let linger = shared.config.linger;
    let mut batch = mailbox.batch.lock();
    if !batch.is_empty() {
        // An overflowing deadline (`validate` keeps linger within a minute) is due now.
        if let Some(due) = batch.opened.checked_add(linger) {
            if due > now {
                return Some(due);
            }
        }
        mailbox.flush(&mut batch, FlushReason::Linger, &shared.metrics);
    }
    batch.scheduled = false;
    None
}
