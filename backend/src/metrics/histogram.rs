//! A fixed-bucket histogram with atomic counts, cheap enough for hot paths.
//!
//! Hot paths should record into a [`LocalHistogram`] and [`Histogram::merge`] it once per
//! batch, so the shared cache line is touched per batch, not per message.

use super::Counter;
use serde::Serialize;

/// Upper bounds (inclusive) shared by a family of histograms, ascending; `+Inf` is implicit.
pub type Bounds = &'static [f64];

/// Seconds, 1 µs to 10 s, roughly 1-2-5 steps: latency and wait times.
pub const SECONDS: Bounds = &[
    0.000_001, 0.000_002, 0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_2, 0.000_5,
    0.001, 0.002, 0.005, 0.01, 0.011, 0.012, 0.015, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Counts, 1 to 1024 in powers of two: batch sizes and queue depths.
pub const COUNTS: Bounds = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 49.0, 50.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A shared histogram: one striped counter per bucket plus a striped sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: Bounds,
    // One more than bounds: the last is +Inf.
    buckets: Box<[Counter]>,
    // Sum as f64 bits would need a CAS loop; keep it in integer micro-units instead.
    sum_micros: Counter,
}

impl Histogram {
    /// A histogram with the given bucket bounds.
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| Counter::default()).collect(),
            sum_micros: Counter::default(),
        }
    }

    /// Records one value (touches shared cache lines: prefer [`LocalHistogram`] on hot paths).
    pub fn observe(&self, value: f64) {
        self.observe_n(value, 1);
    }

    /// Records `n` equal values at the cost of one.
    pub fn observe_n(&self, value: f64, n: u64) {
        if n == 0 {
            return;
        }
        let i = bucket_index(self.bounds, value);
        self.buckets[i].add(n);
        self.sum_micros.add(to_micros(value).saturating_mul(n));
    }

    /// Adds a local histogram's counts (with the same bounds) and clears it.
    pub fn merge(&self, local: &mut LocalHistogram) {
        if local.count == 0 {
            return;
        }
        debug_assert_eq!(local.buckets.len(), self.buckets.len());
        for (shared, n) in self.buckets.iter().zip(local.buckets.iter_mut()) {
            if *n != 0 {
                shared.add(*n);
                *n = 0;
            }
        }
        self.sum_micros.add(to_micros(local.sum));
        local.count = 0;
        local.sum = 0.0;
    }

    /// A fresh local accumulator with this histogram's bounds.
    pub fn local(&self) -> LocalHistogram {
        LocalHistogram::new(self.bounds)
    }

    /// A consistent-enough copy of the counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self.buckets.iter().map(Counter::get).collect();
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            count: counts.iter().sum(),
            sum: self.sum_micros.get() as f64 / 1e6,
            counts,
        }
    }
}

/// A single-owner histogram with plain counters; merge it into a [`Histogram`].
#[derive(Debug, Clone)]
pub struct LocalHistogram {
    bounds: Bounds,
    buckets: Box<[u64]>,
    count: u64,
    sum: f64,
}

impl LocalHistogram {
    /// An empty local histogram.
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len() + 1].into_boxed_slice(),
            count: 0,
            sum: 0.0,
        }
    }

    /// Records `n` equal values.
    #[inline]
    pub fn observe_n(&mut self, value: f64, n: u64) {
        let i = bucket_index(self.bounds, value);
        self.buckets[i] += n;
        self.count += n;
        self.sum += value * n as f64;
    }

    /// Values recorded since the last merge.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// A point-in-time copy of a histogram: per-bucket counts (not cumulative).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the finite buckets.
    pub bounds: Vec<f64>,
    /// Count per bucket; one more than `bounds` (the last is `+Inf`).
    pub counts: Vec<u64>,
    /// Number of observations.
    pub count: u64,
    /// Sum of observations (micro-unit resolution).
    pub sum: f64,
}

impl HistogramSnapshot {
    /// The mean, or 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// An estimate of quantile `q` (0..=1), interpolated linearly inside the bucket; 0 when empty.
    /// Values in the `+Inf` bucket report the last finite bound.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).max(1.0);
        let mut seen = 0.0;
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let next = seen + n as f64;
            if next >= rank {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().copied().unwrap_or(0.0);
                };
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let frac = (rank - seen) / n as f64;
                return lower + (upper - lower) * frac;
            }
            seen = next;
        }
        self.bounds.last().copied().unwrap_or(0.0)
    }

    /// Cumulative counts per finite bound, as Prometheus wants them.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut acc = 0;
        self.bounds
            .iter()
            .zip(self.counts.iter())
            .map(move |(&b, &n)| {
                acc += n;
                (b, acc)
            })
    }
}

fn bucket_index(bounds: Bounds, value: f64) -> usize {
    // partition_point: first bound >= value; NaN lands in +Inf.
    bounds.partition_point(|&b| b < value)
}

fn to_micros(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        (value * 1e6) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let h = Histogram::new(COUNTS);
        h.observe(50.0);
        h.observe(51.0);
        h.observe(1.0);
        h.observe(5000.0);
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.counts[0], 1); // <= 1
        assert_eq!(s.counts[7], 1); // <= 50
        assert_eq!(s.counts[8], 1); // <= 64
        assert_eq!(*s.counts.last().unwrap(), 1); // +Inf
    }

    #[test]
    fn merge_adds_and_clears_local() {
        let h = Histogram::new(SECONDS);
        let mut l = h.local();
        l.observe_n(0.001, 3);
        h.merge(&mut l);
        assert_eq!(l.count(), 0);
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert!((s.sum - 0.003).abs() < 1e-6);
    }

    #[test]
    fn quantiles_interpolate_within_bucket() {
        let h = Histogram::new(COUNTS);
        for _ in 0..100 {
            h.observe(50.0);
        }
        let s = h.snapshot();
        let p50 = s.quantile(0.5);
        assert!(p50 > 49.0 && p50 <= 50.0, "{p50}");
        assert_eq!(HistogramSnapshot::default().quantile(0.99), 0.0);
    }
}
