//! The linger timer: one task that flushes batches whose first message has waited
//! `linger` while their recipient was busy.
//!
//! A mailbox hands the timer a deadline when its batch opens and no deadline is pending, so
//! the timer costs at most one channel send per recipient per linger period. Every deadline
//! is "opened + linger", so they arrive in order: while entries are pending the task sleeps
//! until the earliest and picks up the newer ones then, instead of waking for each. It
//! sleeps on tokio's clock, which tests pause and advance.

use super::mailbox::Mailbox;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::time::Instant;

/// Flush this mailbox's batch once it is due, at or after the instant.
#[derive(Debug)]
pub(crate) struct Schedule(pub(crate) Instant, pub(crate) Arc<Mailbox>);

/// Runs until every sender of `rx` is gone (the bus is dropped).
pub(crate) async fn run(rx: flume::Receiver<Schedule>) {
    let mut due: VecDeque<Schedule> = VecDeque::new();
    loop {
        let Some(first) = due.front().map(|s| s.0) else {
            match rx.recv_async().await {
                Ok(entry) => due.push_back(entry),
                Err(_) => return,
            }
            continue;
        };
        tokio::time::sleep_until(first).await;
        due.extend(rx.try_iter());
        let now = Instant::now();
        let mut again = Vec::new();
        while due.front().is_some_and(|s| s.0 <= now) {
            if let Some(Schedule(_, mailbox)) = due.pop_front() {
                if let Some(at) = mailbox.flush_if_due(now) {
                    again.push(Schedule(at, mailbox));
                }
            }
        }
        // A batch that reopened since it was scheduled: its new deadline is later than
        // every pending one only if it opened last; keep the queue sorted.
        for entry in again {
            let at = due.partition_point(|s| s.0 <= entry.0);
            due.insert(at, entry);
        }
        if rx.is_disconnected() && due.is_empty() {
            return;
        }
    }
}
