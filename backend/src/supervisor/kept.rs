//! What a spawned agent's loop keeps of the message in its handler, for the dead letters
//! should the handler fail.
//!
//! The handler owns the message, so the loop keeps a copy of everything but the payload
//! (no allocation; the headers, when there are any, are shared) and *watches* the payload
//! (`payload::Watch`): when the handler drops it on the loop's thread during one of the
//! loop's polls, which is where almost every handler drops its message, the bytes come
//! back to the loop instead of being freed. Neither read nor shared, they cost nothing on
//! the way (a copy read them before the handler did and cost spawned agents 4%; sharing
//! allocates their reference count, 6%). A handler that moves its message elsewhere (into
//! its state, another task) keeps the payload: if that handler then fails, its dead
//! letter has the message without the payload, marked `payload_dropped`.

use crate::payload::Watch;
use crate::{Envelope, Payload};

/// The message in a handler: everything but the payload, and the payload once it is back.
pub(super) struct Kept {
    /// The payload field holds the payload once back (empty until then).
    env: Envelope,
    /// Set while the payload is still with the handler.
    watch: Option<Watch>,
}

impl Kept {
    /// What to keep of `env`, which is about to go to the handler; the watch is armed on
    /// this thread (until [`collect`](Self::collect)).
    #[inline]
    pub(super) fn of(env: &Envelope) -> Kept {
        let mut kept = Kept {
            env: env.without_payload(),
            watch: None,
        };
        match env.payload().watch() {
            // Empty: the payload-less copy is the whole message.
            None => {}
            Some(watch) if watch.arm() => kept.watch = Some(watch),
            // Another watch is armed on this thread (only after a panic in a drop left one
            // behind): share the payload instead.
            Some(_) => kept.env.payload = env.payload().clone(),
        }
        kept
    }

    /// Watches again before the handler's future is polled again (maybe on another
    /// thread); false when the payload is back already or the watch cannot be armed.
    #[inline]
    pub(super) fn rearm(&self) -> bool {
        self.watch.is_some_and(Watch::arm)
    }

    /// Ends the watch armed by [`of`](Self::of) or [`rearm`](Self::rearm), taking the
    /// payload if the handler dropped it meanwhile. Called before the loop's poll returns:
    /// nothing stays armed while other tasks run on this thread.
    #[inline]
    pub(super) fn collect(&mut self) {
        if let Some(watch) = self.watch {
            if let Some(parked) = watch.disarm() {
                self.watch = None;
                self.env.payload = Payload::from_parked(parked);
            }
        }
    }

    /// The message again, and whether its payload is missing (the handler kept it).
    pub(super) fn into_envelope(mut self) -> (Envelope, bool) {
        self.collect();
        let missing = self.watch.take().is_some();
        // A copy left behind, as `Kept` is `Drop` (the failure path only).
        let rest = self.env.without_payload();
        (std::mem::replace(&mut self.env, rest), missing)
    }
}

impl Drop for Kept {
    /// Never leaves a watch armed, even when a panic unwinds the loop's poll.
    fn drop(&mut self) {
        self.collect();
    }
}
