//! Getting one payload back when it is dropped, on this thread, instead of freeing it.
//!
//! A spawned agent's loop hands each message to its handler by value, yet must keep the
//! message for the dead letters should the handler fail. Copying the bytes reads them
//! before the handler does (one or two cache lines per message, cold with many agents),
//! and sharing them allocates their reference count
//! on the first clone. So the loop *watches* the payload instead: while a watch is armed
//! on this thread, dropping that payload (the same bytes: pointer and length) parks it
//! here, and the loop takes it back when the handler's poll returns. A drop anywhere else
//! frees the bytes as usual; the check is one thread-local read per dropped payload.

use bytes::Bytes;
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::num::NonZeroUsize;

thread_local! {
    /// The watched payload's data pointer; 0 when nothing is watched.
    static WATCHED: Cell<usize> = const { Cell::new(0) };
    /// The watched payload's stored length.
    static WATCHED_LEN: Cell<usize> = const { Cell::new(0) };
    /// The watched payload's bytes, once dropped (the rest of the payload is in its
    /// `Watch`). `ManuallyDrop`, so the slot has no destructor to register and check on
    /// each use: it is emptied before the loop's poll returns, so nothing is left in it
    /// when a thread ends.
    static PARKED: Cell<ManuallyDrop<Option<Bytes>>> = const { Cell::new(ManuallyDrop::new(None)) };
}

/// Which payload to watch for: its bytes' address and length, nothing that keeps them;
/// and the rest of the payload (its original length, whether compressed), so only the
/// bytes are parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watch {
    ptr: NonZeroUsize,
    len: usize,
    pub(crate) original_len: u32,
    pub(crate) compressed: bool,
}

impl Watch {
    /// A watch for `payload`; `None` for an empty one (nothing to get back: any empty
    /// payload is as good, and empty ones share one address).
    #[inline]
    pub(crate) fn of(data: &Bytes, original_len: u32, compressed: bool) -> Option<Watch> {
        if data.is_empty() {
            return None;
        }
        Some(Watch {
            ptr: NonZeroUsize::new(data.as_ptr() as usize)?,
            len: data.len(),
            original_len,
            compressed,
        })
    }

    /// Whether `data` are the watched bytes: the same address and length.
    #[inline]
    fn watches(self, data: &Bytes) -> bool {
        data.as_ptr() as usize == self.ptr.get() && data.len() == self.len
    }

    /// Starts watching on this thread; false (and nothing armed) when another watch is
    /// armed here already.
    #[inline]
    pub(crate) fn arm(self) -> bool {
        if WATCHED.get() != 0 {
            return false;
        }
        WATCHED_LEN.set(self.len);
        WATCHED.set(self.ptr.get());
        true
    }

    /// Stops watching; the payload's bytes if it was dropped while armed.
    #[inline]
    pub(crate) fn disarm(self) -> Option<Bytes> {
        if WATCHED.get() == self.ptr.get() {
            // Not dropped: still armed.
            WATCHED.set(0);
            return None;
        }
        // Only ever this watch's payload: a foreign one (left by a watch that never
        // ended, which a panic in a drop could cause) is freed, not handed out.
        ManuallyDrop::into_inner(PARKED.take()).filter(|data| self.watches(data))
    }
}

/// Called by `Payload`'s `Drop`: parks `data` if it is the watched payload.
#[inline(always)]
pub(super) fn dropping(data: &mut Bytes) {
    let watched = WATCHED.get();
    if watched != 0 && watched == data.as_ptr() as usize {
        park(data);
    }
}

#[cold]
#[inline(never)]
fn park(data: &mut Bytes) {
    if WATCHED_LEN.get() != data.len() {
        return;
    }
    WATCHED.set(0);
    // Whatever was left there (never, but for a watch that never ended) is freed.
    drop(ManuallyDrop::into_inner(
        PARKED.replace(ManuallyDrop::new(Some(std::mem::take(data)))),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(mut data: Bytes) {
        dropping(&mut data);
    }

    fn watch_for(data: &Bytes) -> Option<Watch> {
        Watch::of(data, 0, false)
    }

    #[test]
    fn the_watched_bytes_come_back_and_others_are_freed() {
        let p = Bytes::from(vec![1u8, 2, 3]);
        let other = Bytes::from(vec![1u8, 2, 3]);
        let watch = watch_for(&p).unwrap();
        assert!(watch.arm());
        // A second watch on the same thread is refused, not nested.
        assert!(!watch_for(&other).unwrap().arm());
        dropped(other);
        dropped(p);
        let back = watch.disarm().expect("the watched bytes were parked");
        assert_eq!(&back[..], &[1, 2, 3]);
        assert!(watch.disarm().is_none());
    }

    #[test]
    fn bytes_not_dropped_are_not_taken_and_the_watch_ends() {
        let p = Bytes::from(vec![5u8; 10]);
        let watch = watch_for(&p).unwrap();
        assert!(watch.arm());
        assert!(watch.disarm().is_none());
        assert!(watch.arm());
        assert!(watch.disarm().is_none());
    }

    #[test]
    fn a_shorter_slice_of_the_same_bytes_is_not_the_watched_payload() {
        let p = Bytes::from(vec![9u8; 8]);
        let watch = watch_for(&p).unwrap();
        assert!(watch.arm());
        dropped(p.slice(0..4));
        assert!(watch.disarm().is_none());
    }

    #[test]
    fn empty_payloads_are_not_watched() {
        assert!(watch_for(&Bytes::new()).is_none());
    }
}
