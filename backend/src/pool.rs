//! Buffer pools: strings, bytes and UUID vectors, on the `object-pool` crate.
//!
//! A pool grows on a miss (the caller gets a fresh item, which joins the pool when returned)
//! up to `max` idle items, and shrinks back to `initial` once it has gone
//! `idle_shrink_after` without a miss. Items that grew past 4× their nominal capacity are
//! freed on return, so one huge payload does not pin memory. Hits and misses are counted.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Something a pool can hold: created with a capacity, cleared on return.
pub(crate) trait Recycle: Send + 'static {
    fn with_capacity(capacity: usize) -> Self;
    fn capacity(&self) -> usize;
    fn clear(&mut self);
}

impl<T: Send + 'static> Recycle for Vec<T> {
    fn with_capacity(capacity: usize) -> Self {
        Vec::with_capacity(capacity)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn clear(&mut self) {
        Vec::clear(self)
    }
}

impl Recycle for String {
    fn with_capacity(capacity: usize) -> Self {
        String::with_capacity(capacity)
    }
    fn capacity(&self) -> usize {
        String::capacity(self)
    }
    fn clear(&mut self) {
        String::clear(self)
    }
}

/// One bounded, self-shrinking pool.
pub(crate) struct BufferPool<T: Recycle> {
    name: &'static str,
    objects: object_pool::Pool<T>,
    sizing: PoolSizing,
    enabled: bool,
    idle: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    freed: AtomicU64,
    started: Instant,
    last_miss_ms: AtomicU64,
    shrink_after_ms: u64,
}

impl<T: Recycle> std::fmt::Debug for BufferPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("name", &self.name)
            .field("idle", &self.idle.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: Recycle> BufferPool<T> {
    pub(crate) fn new(
        name: &'static str,
        sizing: PoolSizing,
        enabled: bool,
        idle_shrink_after: Duration,
    ) -> Self {
        let initial = if enabled { sizing.initial } else { 0 };
        Self {
            name,
            objects: object_pool::Pool::new(initial, || T::with_capacity(sizing.item_capacity)),
            sizing,
            enabled,
            idle: AtomicUsize::new(initial),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            started: Instant::now(),
            last_miss_ms: AtomicU64::new(0),
            shrink_after_ms: idle_shrink_after.as_millis() as u64,
        }
    }

    /// An empty item; returned to the pool when the guard drops.
    pub(crate) fn take(&self) -> Pooled<'_, T> {
        let item = if self.enabled {
            match self.objects.try_pull() {
                Some(reusable) => {
                    self.idle.fetch_sub(1, Ordering::Relaxed);
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    Some(reusable.detach().1)
                }
                None => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    self.last_miss_ms
                        .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    None
                }
            }
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            None
        };
        Pooled {
            pool: self,
            item: Some(item.unwrap_or_else(|| T::with_capacity(self.sizing.item_capacity))),
        }
    }

    /// An item to keep; hand it back with [`put`](Self::put) when done, from any thread.
    pub(crate) fn take_owned(&self) -> T {
        self.take().into_inner()
    }

    /// Returns an item taken with [`take_owned`](Self::take_owned).
    pub(crate) fn put(&self, item: T) {
        self.give_back(item);
    }

    fn give_back(&self, mut item: T) {
        if !self.enabled || item.capacity() > self.sizing.item_capacity.saturating_mul(4) {
            self.freed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let idle = self.idle.load(Ordering::Relaxed);
        if idle >= self.sizing.max || (idle >= self.sizing.initial && self.is_quiet()) {
            self.freed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        item.clear();
        self.idle.fetch_add(1, Ordering::Relaxed);
        self.objects.attach(item);
    }

    fn is_quiet(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_miss_ms.load(Ordering::Relaxed)) > self.shrink_after_ms
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        PoolStats {
            pool: self.name,
            hits,
            misses,
            freed: self.freed.load(Ordering::Relaxed),
            idle: self.idle.load(Ordering::Relaxed) as u64,
            hit_rate: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
        }
    }
}

/// A pooled item; derefs to `T` and goes back to its pool on drop.
pub(crate) struct Pooled<'a, T: Recycle> {
    pool: &'a BufferPool<T>,
    item: Option<T>,
}

impl<T: Recycle> Pooled<'_, T> {
    /// Keeps the item, taking it out of the pool's care.
    pub(crate) fn into_inner(mut self) -> T {
        self.item.take().unwrap_or_else(|| T::with_capacity(0))
    }
}

impl<T: Recycle> Deref for Pooled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only `into_inner` and `drop` empty the option, and both consume the guard.
        match &self.item {
            Some(item) => item,
            None => unreachable!("pooled item used after release"),
        }
    }
}

impl<T: Recycle> DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.item {
            Some(item) => item,
            None => unreachable!("pooled item used after release"),
        }
    }
}

impl<T: Recycle> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.give_back(item);
        }
    }
}

/// Counters of one pool.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolStats {
    /// `strings`, `bytes`, `uuids` or `batches`.
    pub pool: &'static str,
    /// Acquisitions served from the pool.
    pub hits: u64,
    /// Acquisitions that allocated.
    pub misses: u64,
    /// Items freed on return (pool full, shrinking, or item grown too large).
    pub freed: u64,
    /// Items waiting in the pool now.
    pub idle: u64,
    /// `hits / (hits + misses)`.
    pub hit_rate: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(initial: usize, max: usize, shrink: Duration) -> BufferPool<Vec<u8>> {
        BufferPool::new(
            "bytes",
            PoolSizing {
                initial,
                max,
                item_capacity: 64,
            },
            true,
            shrink,
        )
    }

    #[test]
    fn hits_then_misses_then_grows_to_max() {
        let p = pool(2, 3, Duration::from_secs(60));
        let held: Vec<_> = (0..5).map(|_| p.take()).collect();
        let s = p.stats();
        assert_eq!((s.hits, s.misses, s.idle), (2, 3, 0));
        drop(held);
        // Five come back, three are kept (max), two are freed.
        let s = p.stats();
        assert_eq!((s.idle, s.freed), (3, 2));
    }

    #[test]
    fn returned_items_are_cleared_and_oversized_freed() {
        let p = pool(1, 2, Duration::from_secs(60));
        {
            let mut b = p.take();
            b.extend_from_slice(b"abc");
        }
        assert!(p.take().is_empty());
        {
            let mut b = p.take();
            b.reserve(10_000);
        }
        assert_eq!(p.stats().freed, 1);
    }

    #[test]
    fn shrinks_to_initial_when_quiet() {
        let p = pool(1, 8, Duration::ZERO);
        let held: Vec<_> = (0..4).map(|_| p.take()).collect();
        std::thread::sleep(Duration::from_millis(3));
        drop(held);
        assert_eq!(p.stats().idle, 1);
    }

    #[test]
    fn disabled_pool_always_allocates() {
        let p = BufferPool::<Vec<u8>>::new(
            "bytes",
            PoolSizing {
                initial: 4,
                max: 4,
                item_capacity: 8,
            },
            false,
            Duration::from_secs(1),
        );
        drop(p.take());
        let s = p.stats();
        assert_eq!((s.hits, s.misses, s.idle), (0, 1, 0));
    }
}

/// The largest envelope an item of the `batches` pool holds, for its memory bound.
const ENVELOPE_BYTES: usize = 128;

/// Settings of the buffer pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolConfig {
    /// `false` allocates every buffer fresh (for baseline measurements).
    pub enabled: bool,
    /// String buffers: 500 of 1 KiB.
    pub strings: PoolSizing,
    /// Byte buffers (compression scratch): 200 of 4 KiB.
    pub bytes: PoolSizing,
    /// UUID vectors (fan-out recipient lists): 100 of 64 ids.
    pub uuids: PoolSizing,
    /// Batch buffers, recycled from receivers back to senders: 64 of 64 messages.
    pub batches: PoolSizing,
    /// A pool that has had no miss for this long shrinks back to its initial size.
    #[serde(with = "crate::duration")]
    pub idle_shrink_after: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            strings: PoolSizing {
                initial: 500,
                max: 2_000,
                item_capacity: 1024,
            },
            bytes: PoolSizing {
                initial: 200,
                max: 1_000,
                item_capacity: 4096,
            },
            uuids: PoolSizing {
                initial: 100,
                max: 400,
                item_capacity: 64,
            },
            batches: PoolSizing {
                initial: 64,
                max: 4_096,
                item_capacity: 64,
            },
            idle_shrink_after: Duration::from_secs(30),
        }
    }
}

impl PoolConfig {
    /// Checks every pool's sizes against the documented maxima (see [`config::limits`](crate::config::limits)).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the pool and field out of range.
    pub fn validate(&self) -> Result<()> {
        // An envelope is at most 128 bytes (`envelope.rs` checks it), an id 16.
        let envelope = ENVELOPE_BYTES;
        let uuid = 16;
        for (name, sizing, item_bytes) in [
            ("strings", self.strings, 1),
            ("bytes", self.bytes, 1),
            ("uuids", self.uuids, uuid),
            ("batches", self.batches, envelope),
        ] {
            sizing.validate(name, item_bytes)?;
        }
        if self.idle_shrink_after > limits::MAX_IDLE_SHRINK_AFTER {
            return Err(Error::Config(format!(
                "pools.idle_shrink_after must be at most {} (got {:?})",
                crate::duration::format_duration(limits::MAX_IDLE_SHRINK_AFTER),
                self.idle_shrink_after
            )));
        }
        Ok(())
    }
}

/// How big one pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSizing {
    /// Items created up front, and the size an idle pool shrinks back to.
    pub initial: usize,
    /// Items kept at most; a returned item beyond this is freed.
    pub max: usize,
    /// Capacity of each new item (bytes, chars or ids). Items that grew past 4× this are
    /// freed on return rather than kept.
    pub item_capacity: usize,
}

impl PoolSizing {
    /// `name` is the pool (`pools.<name>` in messages); `item_bytes` the size of one element
    /// of an item (1 for strings and bytes).
    fn validate(&self, name: &str, item_bytes: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.max > limits::MAX_POOL_ITEMS {
            return bad(format!(
                "pools.{name}.max must be at most {} (got {})",
                limits::MAX_POOL_ITEMS,
                self.max
            ));
        }
        if self.initial > self.max {
            return bad(format!(
                "pools.{name}.initial ({}) must be at most pools.{name}.max ({})",
                self.initial, self.max
            ));
        }
        if self.item_capacity > limits::MAX_POOL_ITEM_CAPACITY {
            return bad(format!(
                "pools.{name}.item_capacity must be at most {} (got {})",
                limits::MAX_POOL_ITEM_CAPACITY,
                self.item_capacity
            ));
        }
        let held = (self.max as u128) * (self.item_capacity as u128) * (item_bytes as u128);
        if held > limits::MAX_POOL_BYTES as u128 {
            return bad(format!(
                "pools.{name}: max × item_capacity ({} × {} items of {item_bytes} bytes) may hold more than {} bytes",
                self.max,
                self.item_capacity,
                limits::MAX_POOL_BYTES
            ));
        }
        Ok(())
    }
}

/// The ranges [`PoolConfig::validate`] enforces (also in `config::limits`).
pub mod limits {
    use std::time::Duration;

    /// Most items one pool may keep (`max`; `initial` must not exceed `max`).
    pub const MAX_POOL_ITEMS: usize = 1_000_000;
    /// Largest `item_capacity` of a pool item (elements: bytes, chars, ids or envelopes).
    pub const MAX_POOL_ITEM_CAPACITY: usize = 1 << 24;
    /// Most memory one pool may hold: `max × item_capacity × element size` (1 GiB).
    pub const MAX_POOL_BYTES: usize = 1 << 30;
    /// Longest `pools.idle_shrink_after`.
    pub const MAX_IDLE_SHRINK_AFTER: Duration = Duration::from_secs(24 * 3600);
}
