//! Settings of the elastic worker pool: one `Default` that lists every default.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Settings of the elastic worker pool.
///
/// `WorkerConfig::default()` on a machine with `C` cores: between `2C` and `4C` workers,
/// load sampled every 100 ms, grow by `C` workers after 2 samples with queued work and CPU
/// under 75 %, shrink by 1 after 3 samples with CPU at or over 95 % or after 20 samples with
/// idle workers and nothing queued, at most one resize per 500 ms, and a unit that waited
/// 100 ms is promoted past higher priorities (at most one promotion per 4 dispatches).
///
/// ```
/// use swarmbus::workers::WorkerConfig;
///
/// let mut config = WorkerConfig::default();
/// config.fixed_workers = Some(3);
/// config.validate().unwrap();
/// assert_eq!(config.bounds(), (3, 3));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Fewest worker threads the controller keeps. Default 2 × CPU count.
    pub min_workers: usize,
    /// Most worker threads the controller starts. Default 4 × CPU count.
    pub max_workers: usize,
    /// Fixed mode: exactly this many workers, never resized (overrides min and max).
    /// Default none (elastic).
    pub fixed_workers: Option<usize>,
    /// How often the controller samples the load. Default 100 ms.
    #[serde(with = "crate::config::duration_serde")]
    pub sample_interval: Duration,
    /// System CPU (0..=1) below which the pool may grow when work is queued. Default 0.75.
    pub grow_below_cpu: f64,
    /// System CPU (0..=1) at or above which the pool shrinks (saturated). Default 0.95.
    pub shrink_above_cpu: f64,
    /// Consecutive samples with queued work and CPU headroom before growing. Default 2.
    pub grow_after: u32,
    /// Consecutive saturated samples before shrinking. Default 3.
    pub shrink_after: u32,
    /// Consecutive samples with idle workers and an empty queue before shrinking. Default 20.
    pub idle_after: u32,
    /// Workers added per grow. Default CPU count.
    pub grow_step: usize,
    /// Workers retired per shrink. Default 1.
    pub shrink_step: usize,
    /// Least time between two resizes. Default 500 ms.
    #[serde(with = "crate::config::duration_serde")]
    pub cooldown: Duration,
    /// A queued unit that has waited this long is served before higher priorities
    /// (anti-starvation). Default 100 ms.
    #[serde(with = "crate::config::duration_serde")]
    pub starvation_bound: Duration,
    /// At most one aged unit is promoted past higher lanes per this many dispatches, so
    /// aged low-priority work cannot crowd out higher lanes under overload. Default 4.
    pub promotion_interval: u32,
    /// How long one worker that ran out of work spins before it sleeps, so a quick next
    /// submit skips the thread wake-up. Default 50 µs; zero disables spinning.
    #[serde(with = "crate::config::duration_serde")]
    pub idle_spin: Duration,
    /// `submit_batch` splits a batch into about this many chunks per worker. Default 4.
    pub chunks_per_worker: usize,
    /// Load samples kept for the workers-vs-load chart. Default 120.
    pub history_len: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let cpus = cpu_count();
        Self {
            min_workers: 2 * cpus,
            max_workers: 4 * cpus,
            fixed_workers: None,
            sample_interval: Duration::from_millis(100),
            grow_below_cpu: 0.75,
            shrink_above_cpu: 0.95,
            grow_after: 2,
            shrink_after: 3,
            idle_after: 20,
            grow_step: cpus,
            shrink_step: 1,
            cooldown: Duration::from_millis(500),
            starvation_bound: Duration::from_millis(100),
            promotion_interval: 4,
            idle_spin: Duration::from_micros(50),
            chunks_per_worker: 4,
            history_len: 120,
        }
    }
}

/// Upper bound on workers; more threads than this is a configuration mistake.
const MAX_THREADS: usize = 4096;

impl WorkerConfig {
    /// A fixed-size pool of `workers` threads, other settings default.
    pub fn fixed(workers: usize) -> Self {
        Self {
            fixed_workers: Some(workers),
            ..Self::default()
        }
    }

    /// The `(min, max)` worker counts in force (both equal in fixed mode).
    pub fn bounds(&self) -> (usize, usize) {
        match self.fixed_workers {
            Some(n) => (n, n),
            None => (self.min_workers, self.max_workers),
        }
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("workers: {m}")));
        let (min, max) = self.bounds();
        if min == 0 {
            return bad("min_workers (or fixed_workers) must be at least 1");
        }
        if max < min {
            return bad("max_workers must be at least min_workers");
        }
        if max > MAX_THREADS {
            return bad("max_workers must be at most 4096");
        }
        if self.sample_interval.is_zero() {
            return bad("sample_interval must be positive");
        }
        let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        if !unit(self.grow_below_cpu) || !unit(self.shrink_above_cpu) {
            return bad("grow_below_cpu and shrink_above_cpu must be within 0..=1");
        }
        if self.grow_below_cpu >= self.shrink_above_cpu {
            return bad("grow_below_cpu must be below shrink_above_cpu");
        }
        if self.grow_after == 0 || self.shrink_after == 0 || self.idle_after == 0 {
            return bad("grow_after, shrink_after and idle_after must be at least 1");
        }
        if self.grow_step == 0 || self.shrink_step == 0 {
            return bad("grow_step and shrink_step must be at least 1");
        }
        if self.promotion_interval == 0 {
            return bad("promotion_interval must be at least 1");
        }
        if self.chunks_per_worker == 0 {
            return bad("chunks_per_worker must be at least 1");
        }
        Ok(())
    }
}

/// Cores available to this process (1 if unknown).
pub(crate) fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_scale_with_cpus_and_validate() {
        let c = WorkerConfig::default();
        let cpus = cpu_count();
        assert_eq!(c.bounds(), (2 * cpus, 4 * cpus));
        assert_eq!(c.sample_interval, Duration::from_millis(100));
        c.validate().unwrap();
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let mut c = WorkerConfig::default();
        c.max_workers = c.min_workers - 1;
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        let mut c = WorkerConfig::fixed(0);
        assert!(c.validate().is_err());
        c.fixed_workers = Some(2);
        c.grow_below_cpu = 0.99;
        assert!(c.validate().is_err());
        c.grow_below_cpu = f64::NAN;
        assert!(c.validate().is_err());
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = WorkerConfig::fixed(3);
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<WorkerConfig>(&text).unwrap(), c);
        let c: WorkerConfig = toml::from_str("cooldown = \"2s\"\nmin_workers = 1").unwrap();
        assert_eq!(c.cooldown, Duration::from_secs(2));
        assert_eq!(c.min_workers, 1);
        assert!(toml::from_str::<WorkerConfig>("min_worker = 1").is_err());
    }
}
