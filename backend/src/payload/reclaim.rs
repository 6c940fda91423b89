//! Getting one payload back when it is dropped, on this thread, instead of freeing it.
//!
//! A spawned agent's loop hands each message to its handler by value, yet must keep the
//! message for the dead letters should the handler fail. Copying the bytes reads them
//! before the handler does (one or two cache lines per message, cold with many agents:
//! measured, spawned agents at 0.89x of plain ones with the copy, 0.93x without, 64-byte
//! messages, 1,000 agents, two cores), and sharing them allocates their reference count
//! on the first clone. So the loop *watches* the payload instead: while a watch is armed
//! on this thread, dropping that payload (the same bytes: pointer and length) parks it
//! here, and the loop takes it back when the handler's poll returns. A drop anywhere else
//! frees the bytes as usual; the check is one thread-local read per dropped payload.

use super::Payload;
use std::cell::Cell;

thread_local! {
    /// The watched payload's data pointer; 0 when nothing is watched.
    static WATCHED: Cell<usize> = const { Cell::new(0) };
    /// The watched payload's stored length.
    static WATCHED_LEN: Cell<usize> = const { Cell::new(0) };
    /// The watched payload, once dropped.
    static PARKED: Cell<Option<Payload>> = const { Cell::new(None) };
}

/// Which payload to watch for: its bytes' address and length, nothing that keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watch {
    ptr: usize,
    len: usize,
}

impl Watch {
    /// A watch for `payload`; `None` for an empty one (nothing to get back: any empty
    /// payload is as good, and empty ones share one address).
    pub(crate) fn of(payload: &Payload) -> Option<Watch> {
        let data = payload.wire_bytes();
        (!data.is_empty()).then(|| Watch {
            ptr: data.as_ptr() as usize,
            len: data.len(),
        })
    }

    /// Starts watching on this thread; false (and nothing armed) when another watch is
    /// armed here already.
    #[inline]
    pub(crate) fn arm(self) -> bool {
        if WATCHED.get() != 0 {
            return false;
        }
        WATCHED_LEN.set(self.len);
        WATCHED.set(self.ptr);
        true
    }

    /// Stops watching; the payload if it was dropped while armed.
    #[inline]
    pub(crate) fn disarm(self) -> Option<Payload> {
        if WATCHED.get() == self.ptr {
            // Not dropped: still armed.
            WATCHED.set(0);
            return None;
        }
        // Only ever this watch's payload: a foreign one (left by a watch that never
        // ended, which a panic in a drop could cause) is freed, not handed out.
        PARKED
            .try_with(Cell::take)
            .ok()
            .flatten()
            .filter(|p| Watch::of(p) == Some(self))
    }
}

/// Called by `Payload`'s `Drop`: parks `data` if it is the watched payload.
#[inline(always)]
pub(super) fn dropping(payload: &mut Payload) {
    let watched = WATCHED.get();
    if watched != 0 && watched == payload.data.as_ptr() as usize {
        park(payload);
    }
}

#[cold]
#[inline(never)]
fn park(payload: &mut Payload) {
    if WATCHED_LEN.get() != payload.data.len() {
        return;
    }
    WATCHED.set(0);
    let parked = Payload {
        data: std::mem::take(&mut payload.data),
        original_len: payload.original_len,
        compressed: payload.compressed,
    };
    // During thread teardown the slot may be gone: the bytes are just freed.
    let _ = PARKED.try_with(|slot| slot.set(Some(parked)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watched_payload_comes_back_and_others_are_freed() {
        let p = Payload::from(vec![1u8, 2, 3]);
        let other = Payload::from(vec![1u8, 2, 3]);
        let watch = Watch::of(&p).unwrap();
        assert!(watch.arm());
        // A second watch on the same thread is refused, not nested.
        assert!(!Watch::of(&other).unwrap().arm());
        drop(other);
        drop(p);
        let back = watch.disarm().expect("the watched payload was parked");
        assert_eq!(&*back.bytes().unwrap(), &[1, 2, 3]);
        // Disarmed: a later drop frees as usual.
        assert!(watch.disarm().is_none());
    }

    #[test]
    fn a_payload_not_dropped_is_not_taken_and_the_watch_ends() {
        let p = Payload::from(vec![5u8; 10]);
        let watch = Watch::of(&p).unwrap();
        assert!(watch.arm());
        assert!(watch.disarm().is_none());
        // Nothing armed any more: a new watch arms.
        assert!(watch.arm());
        assert!(watch.disarm().is_none());
        drop(p);
    }

    #[test]
    fn a_shorter_slice_of_the_same_bytes_is_not_the_watched_payload() {
        let p = Payload::from(vec![9u8; 8]);
        let head = Payload::new(p.wire_bytes().slice(0..4));
        let watch = Watch::of(&p).unwrap();
        assert!(watch.arm());
        drop(head);
        assert!(watch.disarm().is_none());
    }

    #[test]
    fn a_compressed_payload_comes_back_compressed() {
        let p = Payload::from_compressed(vec![0x1fu8, 0x8b, 0, 1], 40);
        let watch = Watch::of(&p).unwrap();
        assert!(watch.arm());
        drop(p);
        let back = watch.disarm().unwrap();
        assert!(back.is_compressed());
        assert_eq!(back.len(), 40);
    }

    #[test]
    fn empty_payloads_are_not_watched() {
        assert!(Watch::of(&Payload::from(Vec::new())).is_none());
    }
}
