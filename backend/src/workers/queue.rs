//! The run queue: one FIFO lane per priority, served strictly by priority, with aging.
//!
//! Anti-starvation: when a lane below the highest non-empty lane has a head that has waited
//! at least `starvation_bound`, the oldest such head is served instead, but at most once
//! per `promotion_interval` dispatches. So aged `Low` work gets at least one dispatch in N
//! however much `High` work keeps arriving, while under overload (when every `Low` head
//! is aged) higher lanes keep the other N-1 dispatches and their waits stay short.

use crate::Priority;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One queued entry: a single unit or a chunk of a batch.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub(crate) priority: Priority,
    /// Units this entry stands for (1, or the chunk length).
    pub(crate) units: usize,
    pub(crate) enqueued: Instant,
    pub(crate) item: T,
}

/// Four lanes plus the counters that are cheapest to keep under the queue's lock.
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    lanes: [VecDeque<Entry<T>>; 4],
    units: [usize; 4],
    submitted: [u64; 4],
    promoted: u64,
    starvation_bound: Duration,
    promotion_interval: u32,
    /// Strict dispatches since the last promotion.
    since_promotion: u32,
}

impl<T> Lanes<T> {
    pub(crate) fn new(starvation_bound: Duration, promotion_interval: u32) -> Self {
        let promotion_interval = promotion_interval.max(1);
        Self {
            lanes: Default::default(),
            units: [0; 4],
            submitted: [0; 4],
            promoted: 0,
            starvation_bound,
            promotion_interval,
            since_promotion: promotion_interval,
        }
    }

    pub(crate) fn push(&mut self, entry: Entry<T>) {
        let i = entry.priority.index();
        self.units[i] += entry.units;
        self.submitted[i] += entry.units as u64;
        self.lanes[i].push_back(entry);
    }

    /// The next entry by strict priority, unless a lower lane's head has aged past the bound.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<Entry<T>> {
        let top = (0..4).rev().find(|&i| !self.lanes[i].is_empty())?;
        let mut pick = top;
        let mut oldest: Option<Instant> = None;
        let may_promote = self.since_promotion.saturating_add(1) >= self.promotion_interval;
        let lower = if may_promote { top } else { 0 };
        for (i, lane) in self.lanes[..lower].iter().enumerate() {
            if let Some(head) = lane.front() {
                let aged = now.saturating_duration_since(head.enqueued) >= self.starvation_bound;
                if aged && oldest.is_none_or(|o| head.enqueued < o) {
                    oldest = Some(head.enqueued);
                    pick = i;
                }
            }
        }
        if pick != top {
            self.promoted += 1;
            self.since_promotion = 0;
        } else {
            self.since_promotion = self.since_promotion.saturating_add(1);
        }
        let entry = self.lanes[pick].pop_front()?;
        self.units[pick] -= entry.units;
        Some(entry)
    }

    /// Takes every queued entry out, highest lane first (for cancellation).
    pub(crate) fn drain(&mut self) -> Vec<Entry<T>> {
        self.units = [0; 4];
        self.lanes
            .iter_mut()
            .rev()
            .flat_map(|l| l.drain(..))
            .collect()
    }

    /// Queued units per priority, lowest first.
    pub(crate) fn depth(&self) -> [usize; 4] {
        self.units
    }

    /// Queued units in all lanes.
    pub(crate) fn total_units(&self) -> usize {
        self.units.iter().sum()
    }

    /// Queued entries (units or chunks) in all lanes.
    pub(crate) fn entries(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    /// Units ever pushed, per priority.
    pub(crate) fn submitted(&self) -> [u64; 4] {
        self.submitted
    }

    /// Entries served ahead of a higher lane by the anti-starvation rule.
    pub(crate) fn promoted(&self) -> u64 {
        self.promoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Priority::*;

    fn entry(priority: Priority, at: Instant, item: u32) -> Entry<u32> {
        Entry {
            priority,
            units: 1,
            enqueued: at,
            item,
        }
    }

    fn drain(q: &mut Lanes<u32>, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| q.pop(now).map(|e| e.item)).collect()
    }

    #[test]
    fn strict_priority_then_fifo() {
        let t0 = Instant::now();
        let mut q = Lanes::new(Duration::from_secs(60), 4);
        let order = [Low, High, Normal, Critical, Low, High, Normal, Critical];
        for (n, p) in order.into_iter().enumerate() {
            q.push(entry(p, t0, n as u32));
        }
        assert_eq!(q.depth(), [2, 2, 2, 2]);
        assert_eq!(q.submitted(), [2, 2, 2, 2]);
        assert_eq!(drain(&mut q, t0), vec![3, 7, 1, 5, 2, 6, 0, 4]);
        assert_eq!(q.total_units(), 0);
        assert_eq!(q.promoted(), 0);
    }

    #[test]
    fn aged_low_unit_jumps_ahead_of_high() {
        let t0 = Instant::now();
        let bound = Duration::from_millis(100);
        let mut q = Lanes::new(bound, 4);
        q.push(entry(Low, t0, 0));
        for n in 1..=5 {
            q.push(entry(High, t0 + Duration::from_millis(n), n as u32));
        }
        // Before the bound: High first.
        assert_eq!(
            q.pop(t0 + Duration::from_millis(99)).map(|e| e.item),
            Some(1)
        );
        // At the bound: the Low head goes next even though High is queued.
        assert_eq!(q.pop(t0 + bound).map(|e| e.item), Some(0));
        assert_eq!(q.promoted(), 1);
        assert_eq!(drain(&mut q, t0 + bound), vec![2, 3, 4, 5]);
    }

    #[test]
    fn oldest_aged_lane_goes_first_and_top_lane_is_not_promoted() {
        let t0 = Instant::now();
        let mut q = Lanes::new(Duration::from_millis(10), 4);
        q.push(entry(Normal, t0 + Duration::from_millis(5), 1));
        q.push(entry(Low, t0, 0));
        q.push(entry(Critical, t0, 9));
        let now = t0 + Duration::from_millis(50);
        // Critical's head is as old as Low's but it is the top lane: aging only lifts lower
        // lanes, and only once per 4 dispatches, so Critical goes before the aged Normal.
        assert_eq!(drain(&mut q, now), vec![0, 9, 1]);
    }

    #[test]
    fn promotions_are_rate_limited_under_overload() {
        let t0 = Instant::now();
        let mut q = Lanes::new(Duration::from_millis(10), 4);
        for n in 0..40 {
            q.push(entry(Low, t0, 1000 + n));
            q.push(entry(Critical, t0, n));
        }
        // Every Low head is aged: Low gets one dispatch in four, Critical the rest.
        let order = drain(&mut q, t0 + Duration::from_secs(1));
        let first: Vec<bool> = order[..12].iter().map(|&i| i >= 1000).collect();
        let pattern = [true, false, false, false];
        assert_eq!(first, pattern.repeat(3));
        assert_eq!(q.promoted(), 14);
    }

    #[test]
    fn huge_promotion_interval_does_not_overflow() {
        let t0 = Instant::now();
        let mut q = Lanes::new(Duration::ZERO, u32::MAX);
        q.push(entry(Low, t0, 0));
        q.push(entry(High, t0, 1));
        assert_eq!(drain(&mut q, t0), vec![0, 1]);
        q.push(entry(Low, t0, 2));
        q.push(entry(Critical, t0, 3));
        assert_eq!(q.drain().iter().map(|e| e.item).collect::<Vec<_>>(), [3, 2]);
        assert_eq!((q.total_units(), q.entries()), (0, 0));
    }

    #[test]
    fn chunk_units_are_counted() {
        let t0 = Instant::now();
        let mut q = Lanes::new(Duration::from_secs(1), 4);
        q.push(Entry {
            priority: Normal,
            units: 250,
            enqueued: t0,
            item: 7,
        });
        q.push(entry(Normal, t0, 8));
        assert_eq!(q.total_units(), 251);
        assert_eq!(q.entries(), 2);
        q.pop(t0);
        assert_eq!(q.depth(), [0, 1, 0, 0]);
    }
}
