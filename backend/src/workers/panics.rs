//! Keeping every panic a unit can cause on the worker, out of the thread's own unwinding.
//!
//! A unit can panic in four places: its closure body, the `Drop` of a value it captured,
//! the `Drop` of its result (dropped on the worker when the submitter stopped waiting, or
//! when a batch fails), and the `Drop` of its panic payload. The body and the captured
//! values are covered by the `catch_unwind` around the call (captured values drop at the
//! end of the call). The rest goes through [`Containment`], which drops values under
//! `catch_unwind` and counts what it caught. A payload whose own `Drop` panics again is
//! dropped the same way, up to [`DROP_ATTEMPTS`] times, and then leaked: std aborts the
//! process when a thread ends with such a payload, so it must never reach the thread.
//!
//! What no code can contain: a `Drop` that panics *while* the closure body is already
//! unwinding is a double panic, and Rust aborts the process.

use crate::Error;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::oneshot;

/// Nested panics (a payload whose `Drop` panics with a payload whose `Drop` panics...)
/// caught before the last payload is leaked instead of dropped.
pub(crate) const DROP_ATTEMPTS: u64 = 8;

/// Drops values a unit left behind without letting their panics escape, and counts them.
#[derive(Debug, Default)]
pub(crate) struct Containment {
    caught: AtomicU64,
}

impl Containment {
    /// Panics caught while dropping values a unit left behind (results, payloads, units
    /// cancelled unrun).
    pub(crate) fn caught(&self) -> u64 {
        self.caught.load(Relaxed)
    }

    /// Drops `value`; a panic in its `Drop` is caught and counted.
    pub(crate) fn drop_value<T>(&self, value: T) {
        let caught = drop_contained(value);
        if caught > 0 {
            self.caught.fetch_add(caught, Relaxed);
        }
    }

    /// Sends `value` to a submitter; if it is gone, drops the value here, contained.
    pub(crate) fn send<V>(&self, tx: oneshot::Sender<V>, value: V) {
        match catch_unwind(AssertUnwindSafe(move || tx.send(value))) {
            Ok(Ok(())) => {}
            Ok(Err(unsent)) => self.drop_value(unsent),
            Err(payload) => {
                self.caught.fetch_add(1, Relaxed);
                self.drop_value(payload);
            }
        }
    }

    /// [`Error::TaskPanicked`] with the payload's message; the payload is dropped contained.
    pub(crate) fn panic_error(&self, payload: Box<dyn Any + Send>) -> Error {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        self.drop_value(payload);
        Error::TaskPanicked(msg)
    }
}

/// Drops `value` under `catch_unwind`, then each payload that panic produced the same way,
/// leaking the last one after [`DROP_ATTEMPTS`] panics. Returns the panics caught.
pub(crate) fn drop_contained<T>(value: T) -> u64 {
    let mut next = match catch_unwind(AssertUnwindSafe(move || drop(value))) {
        Ok(()) => return 0,
        Err(payload) => payload,
    };
    let mut caught = 1;
    while caught < DROP_ATTEMPTS {
        next = match catch_unwind(AssertUnwindSafe(move || drop(next))) {
            Ok(()) => return caught,
            Err(payload) => payload,
        };
        caught += 1;
    }
    // Every drop panicked again: leaking one payload beats losing the thread or the process.
    std::mem::forget(next);
    caught
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Its `Drop` panics with another `Chain` one shorter, `0` times for `Chain(0)`.
    struct Chain(u64);

    impl Drop for Chain {
        fn drop(&mut self) {
            if self.0 > 0 && !std::thread::panicking() {
                std::panic::panic_any(Chain(self.0 - 1));
            }
        }
    }

    #[test]
    fn nested_drop_panics_are_caught_then_leaked() {
        assert_eq!(drop_contained(Chain(0)), 0);
        assert_eq!(drop_contained(Chain(3)), 3);
        assert_eq!(drop_contained(Chain(u64::MAX)), DROP_ATTEMPTS);
        let c = Containment::default();
        assert!(matches!(
            c.panic_error(Box::new(Chain(2))),
            Error::TaskPanicked(m) if m == "non-string panic payload"
        ));
        let (tx, rx) = oneshot::channel();
        drop(rx);
        c.send(tx, Chain(1));
        assert_eq!(c.caught(), 3);
    }
}
