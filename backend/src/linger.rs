//! The linger timer: one task that flushes batches whose oldest message has waited
//! `linger`.
//!
//! An outbox registers a deadline when its first batch opens (not per message), so the
//! timer costs one channel send per outbox per linger period. It sleeps on tokio's clock,
//! which tests pause and advance.

use crate::hub::Shared;
use crate::metrics::FlushReason;
use crate::registry::AgentSlot;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;
use tokio::time::Instant;

pub(crate) enum Command {
    /// Flush this outbox's batches that are due at `at`.
    Schedule(Instant, Arc<AgentSlot>),
    /// Flush everything now, acknowledge, and from then on flush every schedule at once.
    Drain(oneshot::Sender<()>),
}

struct Entry(Instant, Arc<AgentSlot>);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

/// Runs until the hub is gone.
pub(crate) async fn run(shared: Weak<Shared>, rx: flume::Receiver<Command>) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    let mut draining = false;
    loop {
        let next = heap.peek().map(|Reverse(e)| e.0);
        let command = tokio::select! {
            biased;
            cmd = rx.recv_async() => match cmd {
                Ok(cmd) => Some(cmd),
                Err(_) => return,
            },
            _ = sleep_until(next) => None,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match command {
            Some(Command::Schedule(at, slot)) if !draining => heap.push(Reverse(Entry(at, slot))),
            Some(Command::Schedule(_, slot)) => {
                flush_slot(&shared, &slot, None);
            }
            Some(Command::Drain(ack)) => {
                draining = true;
                while let Some(Reverse(Entry(_, slot))) = heap.pop() {
                    flush_slot(&shared, &slot, None);
                }
                let _ = ack.send(());
            }
            None => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(e)| e.0 <= now) {
                    if let Some(Reverse(Entry(_, slot))) = heap.pop() {
                        if let Some(again) = flush_slot(&shared, &slot, Some(now)) {
                            heap.push(Reverse(Entry(again, slot)));
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

/// Flushes the slot's due batches (all with `now == None`); returns the next deadline if
/// batches remain open.
fn flush_slot(shared: &Shared, slot: &AgentSlot, now: Option<Instant>) -> Option<Instant> {
    let linger = shared.config.linger;
    let mut outbox = slot.outbox.lock();
    let (cutoff, reason) = match now {
        Some(now) => (
            Some(now.checked_sub(linger).unwrap_or(now)),
            FlushReason::Linger,
        ),
        None => (None, FlushReason::Shutdown),
    };
    outbox.flush_due(cutoff, reason, shared.config.overflow, &shared.metrics);
    match outbox.oldest() {
        Some(oldest) => Some(oldest + linger),
        None => {
            outbox.scheduled = false;
            None
        }
    }
}
