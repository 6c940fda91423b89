//! Message payloads: shared bytes, gzip-compressed above a threshold.

mod reclaim;

pub(crate) use reclaim::Watch;

use crate::{codec, Result};
use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;

/// The body of a message.
///
/// Cheap to clone (the bytes are reference-counted), so fan-out shares one payload between
/// all recipients. The hub gzips payloads over `HubConfig::compress_over` bytes when that
/// makes them smaller; [`Payload::bytes`] gives the original bytes back either way.
///
/// ```
/// use swarmbus::Payload;
/// let p = Payload::from("hello");
/// assert_eq!(p.len(), 5);
/// assert!(!p.is_compressed());
/// assert_eq!(&*p.bytes().unwrap(), b"hello");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    data: Bytes,
    /// Size after decompression; only meaningful when `compressed` (u32 keeps an
    /// `Envelope` within 128 bytes, so moving one is a few vector moves, not a memcpy).
    original_len: u32,
    compressed: bool,
}

impl Payload {
    /// An uncompressed payload.
    pub fn new(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            original_len: 0,
            data,
            compressed: false,
        }
    }

    /// A payload that arrived gzip-compressed (from the wire), expanding to `original_len`
    /// bytes. Nothing is decompressed until [`bytes`](Self::bytes) is called, and then at
    /// most `original_len` bytes are allocated; a lie is [`Error::CorruptPayload`](crate::Error::CorruptPayload).
    ///
    /// A hub accepts it only when both sizes fit `HubConfig::max_payload` and the stored
    /// size is no more than gzip can expand `original_len` bytes to (about 0.03% plus
    /// 25 bytes); otherwise the send is [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge).
    pub fn from_compressed(gz: impl Into<Bytes>, original_len: usize) -> Self {
        Self {
            data: gz.into(),
            // A declared size beyond u32 cannot be real: it fails decompression as corrupt.
            original_len: u32::try_from(original_len).unwrap_or(u32::MAX),
            compressed: true,
        }
    }

    /// The same payload in a buffer of its own: a payload sliced out of a larger buffer (a
    /// frame from another hub) no longer keeps that buffer alive. For what is kept long
    /// (the dead letters), never on the send path.
    pub(crate) fn detached(&self) -> Payload {
        Payload {
            data: Bytes::copy_from_slice(&self.data),
            original_len: self.original_len,
            compressed: self.compressed,
        }
    }

    /// No bytes (no allocation).
    pub(crate) const fn empty() -> Payload {
        Payload {
            data: Bytes::new(),
            original_len: 0,
            compressed: false,
        }
    }

    /// A watch for this payload's bytes (see `reclaim`); `None` when empty.
    #[inline]
    pub(crate) fn watch(&self) -> Option<Watch> {
        Watch::of(&self.data, self.original_len, self.compressed)
    }

    /// The watched payload again, from the bytes its watch got back.
    pub(crate) fn from_parked(data: Bytes, watch: Watch) -> Payload {
        Payload {
            data,
            original_len: watch.original_len,
            compressed: watch.compressed,
        }
    }

    /// Size of the original bytes.
    pub fn len(&self) -> usize {
        if self.compressed {
            self.original_len as usize
        } else {
            self.data.len()
        }
    }

    /// True when the original is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when stored gzip-compressed.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Size as stored (compressed size when compressed).
    pub fn wire_len(&self) -> usize {
        self.data.len()
    }

    /// The stored bytes: gzip when [`is_compressed`](Self::is_compressed), else the original.
    pub fn wire_bytes(&self) -> &Bytes {
        &self.data
    }

    /// The original bytes, decompressed when needed (borrowed when not).
    ///
    /// # Errors
    ///
    /// [`Error::CorruptPayload`](crate::Error::CorruptPayload) when the payload is stored
    /// compressed and the data is not a valid gzip member, is truncated, fails its CRC, or
    /// does not expand to exactly its declared size. An uncompressed payload never fails.
    #[inline]
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>> {
        if self.compressed {
            let len = self.original_len as usize;
            codec::decompress(&self.data, len, len).map(Cow::Owned)
        } else {
            Ok(Cow::Borrowed(&self.data))
        }
    }

    /// The largest stored size a gzip member of `declared` original bytes can honestly have:
    /// zlib's `compressBound` (`n + n/4096 + n/16384 + n/2^25 + 13`, which holds for stored
    /// blocks, 5 bytes per 64 KiB, the worst case of any deflate encoder) plus the 12 bytes
    /// by which the gzip wrapper (18 bytes) exceeds zlib's (6). A longer stream is padding
    /// or a lie about its size, and only costs memory while it waits.
    pub(crate) fn max_stored_len(declared: usize) -> usize {
        declared
            .saturating_add(declared >> 12)
            .saturating_add(declared >> 14)
            .saturating_add(declared >> 25)
            .saturating_add(25)
    }

    /// Checks both sizes against `max`: the original size, and the stored size, which for a
    /// compressed payload must also fit [`max_stored_len`](Self::max_stored_len) of the
    /// declared size.
    ///
    /// # Errors
    ///
    /// [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge) naming the size over its
    /// bound: the original size over `max`, the stored size over `max`, or the stored size
    /// over what the declared size can compress to.
    pub(crate) fn check_size(&self, max: usize) -> Result<()> {
        let too_large = |size, max| Err(crate::Error::PayloadTooLarge { size, max });
        if self.len() > max {
            return too_large(self.len(), max);
        }
        if self.wire_len() > max {
            return too_large(self.wire_len(), max);
        }
        if self.compressed {
            let bound = Self::max_stored_len(self.len());
            if self.wire_len() > bound {
                return too_large(self.wire_len(), bound);
            }
        }
        Ok(())
    }

    /// The original bytes as UTF-8, when they are.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptPayload`](crate::Error::CorruptPayload) when the bytes are not UTF-8,
    /// or when decompressing fails as for [`bytes`](Self::bytes).
    pub fn to_text(&self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.into_owned())
            .map_err(|_| crate::Error::CorruptPayload("payload is not UTF-8"))
    }

    /// Compresses in place when larger than `over` and gzip shrinks it.
    pub(crate) fn compress_if_worth(
        &mut self,
        over: usize,
        level: u32,
        scratch: &crate::pool::BufferPool<Vec<u8>>,
    ) -> bool {
        let len = self.data.len();
        if self.compressed || len <= over || u32::try_from(len).is_err() {
            return false;
        }
        match codec::compress(&self.data, level, scratch) {
            Some(gz) => {
                self.original_len = len as u32;
                self.data = Bytes::from(gz);
                self.compressed = true;
                true
            }
            None => false,
        }
    }
}

impl Drop for Payload {
    /// Frees the bytes, unless a spawned agent's loop watches for them on this thread
    /// (see `reclaim`).
    #[inline]
    fn drop(&mut self) {
        reclaim::dropping(&mut self.data);
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.len())
            .field("compressed", &self.compressed)
            .field("wire_len", &self.data.len())
            .finish()
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Self::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Payload {
    fn from(s: String) -> Self {
        Self::new(Bytes::from(s))
    }
}

impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Self::new(Bytes::copy_from_slice(b))
    }
}

impl<const N: usize> From<&[u8; N]> for Payload {
    fn from(b: &[u8; N]) -> Self {
        Self::new(Bytes::copy_from_slice(b))
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Self::new(Bytes::from(v))
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Self::new(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_payload_holds_its_own_bytes_only() {
        let frame = Bytes::from(vec![7u8; 1 << 20]);
        let slice = frame.slice(100..164);
        let gz = Payload::from_compressed(slice.clone(), 500);
        let plain = Payload::new(slice);
        for p in [gz, plain] {
            let d = p.detached();
            assert_eq!(d, p, "same bytes, same compression, same declared size");
            let range = frame.as_ptr_range();
            assert!(
                !range.contains(&d.wire_bytes().as_ptr()),
                "still inside the frame"
            );
        }
    }
}
