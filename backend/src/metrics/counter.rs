//! A counter split over cache-line-sized stripes, one per thread (round-robin), so threads
//! that count the same thing never write the same cache line.
//!
//! With adaptive batching a batch may hold one message, so the per-batch counters are
//! per-message counters in closed-loop traffic: a single shared atomic written by every
//! sender on both cores moved its cache line on every message.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter: at least the cores of a small machine, few enough that a read
/// (the sum) stays cheap.
const STRIPES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A monotonic counter (or a sum) that many threads add to.
#[derive(Debug, Default)]
pub struct Counter {
    stripes: [Padded; STRIPES],
}

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe, assigned round-robin on first use.
#[inline]
pub(crate) fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    STRIPE.with(|s| {
        let i = s.get();
        if i != usize::MAX {
            return i;
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(i);
        i
    })
}

impl Counter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.stripes[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum over every stripe (not a single atomic read: concurrent adds may or may not
    /// be in it).
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn adds_from_many_threads_sum_exactly() {
        let c = std::sync::Arc::new(Counter::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1_000).for_each(|_| c.add(3)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.get(), 12 * 1_000 * 3);
    }
}
