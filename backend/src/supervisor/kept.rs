//! What a spawned agent's loop keeps of the message in its handler, for the dead letters
//! should the handler fail.
//!
//! The handler owns the message, so the loop keeps a copy of everything but the payload
//! (`Meta`: no allocation; the headers, when there are any, are shared) and *watches* the
//! payload (`payload::Watch`): when the handler drops it on the loop's thread during one of
//! the loop's polls, which is where almost every handler drops its message, the bytes come
//! back to the loop instead of being freed. Neither read nor shared, they cost nothing on
//! the way (a copy read them before the handler did and cost spawned agents 4%; sharing
//! allocates their reference count, 6%). A handler that moves its message elsewhere (into
//! its state, another task) keeps the payload: if that handler then fails, its dead
//! letter has the message without the payload, marked `payload_dropped`.
//!
//! `Kept` stays within 128 bytes, which the compiler moves with inline stores rather than
//! a call to `memcpy` (at 152 bytes, two such calls a message cost spawned agents 70
//! instructions of about 3,000).

use crate::envelope::Meta;
use crate::payload::Watch;
use crate::{Envelope, Payload};

/// The message in a handler: everything but the payload, and the payload once it is back.
pub(super) struct Kept {
    meta: Meta,
    payload: Held,
}

/// Where the payload is.
enum Held {
    /// With the handler, watched for on this thread while armed.
    Watched(Watch),
    /// Back with the loop (or shared, when it could not be watched; or empty).
    Here(Payload),
}

impl Kept {
    /// What to keep of `env`, which is about to go to the handler; the watch is armed on
    /// this thread (until [`collect`](Self::collect) or the drop).
    #[inline(always)]
    pub(super) fn of(env: &Envelope) -> Kept {
        let payload = match env.payload().watch() {
            Some(watch) if watch.arm() => Held::Watched(watch),
            // Empty: any empty payload is the same.
            None => Held::Here(Payload::empty()),
            // Another watch is armed on this thread (only when a loop's poll runs inside
            // another's, or after a panic in a drop left one behind): share the payload.
            Some(_) => Held::Here(env.payload().clone()),
        };
        Kept {
            meta: env.meta(),
            payload,
        }
    }

    /// Watches again before the handler's future is polled again (maybe on another
    /// thread); false when the payload is back already or the watch cannot be armed.
    #[inline]
    pub(super) fn rearm(&self) -> bool {
        match &self.payload {
            Held::Watched(watch) => watch.arm(),
            Held::Here(_) => false,
        }
    }

    /// Ends the watch armed by [`of`](Self::of) or [`rearm`](Self::rearm), taking the
    /// payload back if the handler dropped it meanwhile. Called before the loop's poll
    /// returns while the handler waits: nothing stays armed while other tasks run on this
    /// thread.
    #[inline]
    pub(super) fn collect(&mut self) {
        if let Held::Watched(watch) = self.payload {
            if let Some(bytes) = watch.disarm() {
                self.payload = Held::Here(Payload::from_parked(bytes, watch));
            }
        }
    }

    /// The message again, and whether its payload is missing (the handler kept it).
    pub(super) fn into_envelope(mut self) -> (Envelope, bool) {
        self.collect();
        // `Kept` is `Drop`: what is moved out is replaced (the failure path only).
        let payload = std::mem::replace(&mut self.payload, Held::Here(Payload::empty()));
        let meta = self.meta.clone();
        match payload {
            Held::Here(payload) => (meta.with_payload(payload), false),
            Held::Watched(_) => (meta.with_payload(Payload::empty()), true),
        }
    }
}

impl Drop for Kept {
    /// Never leaves a watch armed, even when a panic unwinds the loop's poll; on success
    /// the payload back with the loop is freed here, as the handler's drop would have.
    #[inline]
    fn drop(&mut self) {
        if let Held::Watched(watch) = self.payload {
            drop(watch.disarm());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;
    use crate::{AgentId, MessageId, Priority};
    use std::io::Write;

    #[test]
    fn what_is_kept_of_a_message_is_moved_without_a_memcpy_call() {
        assert!(
            std::mem::size_of::<Kept>() <= 128,
            "{}",
            std::mem::size_of::<Kept>()
        );
    }

    fn envelope(payload: Payload) -> Envelope {
        Envelope {
            id: MessageId::new_v4(),
            from: AgentId::new_v4(),
            to: AgentId::new_v4(),
            kind: Kind::Request,
            priority: Priority::Critical,
            payload,
            sent_at: 42,
            headers: None,
            redelivered: true,
        }
    }

    #[test]
    fn a_compressed_payload_dropped_by_the_handler_comes_back_whole() {
        let text = vec![b'a'; 4096];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let env = envelope(Payload::from_compressed(gz.finish().unwrap(), text.len()));
        let (id, from, to) = (env.id(), env.from(), env.to());
        let kept = Kept::of(&env);
        // The handler drops its message on this thread while the watch is armed.
        drop(env);
        let (back, missing) = kept.into_envelope();
        assert!(!missing);
        assert!(back.payload().is_compressed());
        assert_eq!(&*back.payload().bytes().unwrap(), &text[..]);
        assert_eq!((back.id(), back.from(), back.to()), (id, from, to));
        assert_eq!(back.priority(), Priority::Critical);
        assert!(back.is_request() && back.redelivered());
    }

    #[test]
    fn a_payload_the_handler_keeps_is_missing_and_nothing_stays_armed() {
        let env = envelope(Payload::new(vec![7u8; 64]));
        let kept = Kept::of(&env);
        let (back, missing) = kept.into_envelope();
        assert!(missing && back.payload().is_empty());
        // The watch ended: the handler's later drop frees the bytes, and a new watch arms.
        let other = envelope(Payload::new(vec![8u8; 64]));
        let next = Kept::of(&other);
        assert!(matches!(next.payload, Held::Watched(_)));
        drop(env);
        drop(other);
        let (again, missing) = next.into_envelope();
        assert!(!missing);
        assert_eq!(&*again.payload().bytes().unwrap(), &[8u8; 64][..]);
    }
}
