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
/// 100 ms is promoted past higher priorities (at most one promotion per 4 dispatches);
/// a shutdown waits at most 10 s for the pool threads.
///
/// Every count and duration has a range, given in its field's doc and enforced by
/// [`validate`](Self::validate) (which [`WorkerPool`](super::WorkerPool) runs at start):
/// worker counts and steps at most 4096, durations at most one hour, `idle_spin` at most
/// 10 ms, so no accepted value can overflow an `Instant`, a multiplication or an allocation.
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
    /// Start the worker threads (and the CPU sampler) with the hub. Default `false`: they
    /// start on the first `Hub::submit`, so a hub that only moves messages runs none.
    pub start_with_hub: bool,
    /// Fewest worker threads the controller keeps. Default 2 × CPU count (at most 4096).
    /// Range 1..=4096 (`WorkerConfig::MAX_WORKERS`).
    pub min_workers: usize,
    /// Most worker threads the controller starts. Default 4 × CPU count (at most 4096).
    /// Range `min_workers`..=4096.
    pub max_workers: usize,
    /// Fixed mode: exactly this many workers, never resized (overrides min and max).
    /// Default none (elastic). Range 1..=4096.
    pub fixed_workers: Option<usize>,
    /// How often the controller samples the load. Default 100 ms. Range 1 ms..=1 h.
    #[serde(with = "crate::duration")]
    pub sample_interval: Duration,
    /// System CPU (0..=1) below which the pool may grow when work is queued. Default 0.75.
    /// Must be below `shrink_above_cpu`.
    pub grow_below_cpu: f64,
    /// System CPU (0..=1) at or above which the pool shrinks (saturated). Default 0.95.
    pub shrink_above_cpu: f64,
    /// Consecutive samples with queued work and CPU headroom before growing. Default 2.
    /// Range 1..=100,000.
    pub grow_after: u32,
    /// Consecutive saturated samples before shrinking. Default 3. Range 1..=100,000.
    pub shrink_after: u32,
    /// Consecutive samples with idle workers and an empty queue before shrinking. Default 20.
    /// Range 1..=100,000.
    pub idle_after: u32,
    /// Workers added per grow. Default CPU count (at most 4096). Range 1..=4096.
    pub grow_step: usize,
    /// Workers retired per shrink. Default 1. Range 1..=4096.
    pub shrink_step: usize,
    /// Least time between two resizes. Default 500 ms. Range 0..=1 h.
    #[serde(with = "crate::duration")]
    pub cooldown: Duration,
    /// A queued unit that has waited this long is served before higher priorities
    /// (anti-starvation). Default 100 ms. Range 0..=1 h.
    #[serde(with = "crate::duration")]
    pub starvation_bound: Duration,
    /// At most one aged unit is promoted past higher lanes per this many dispatches, so
    /// aged low-priority work cannot crowd out higher lanes under overload. Default 4.
    /// Range 1..=1024.
    pub promotion_interval: u32,
    /// How long one worker that ran out of work spins before it sleeps, so a quick next
    /// submit skips the thread wake-up. Default 50 µs; zero disables spinning. Range
    /// 0..=10 ms (a longer spin only burns a core).
    #[serde(with = "crate::duration")]
    pub idle_spin: Duration,
    /// `submit_batch` splits a batch into about this many chunks per worker. Default 4.
    /// Range 1..=1024.
    pub chunks_per_worker: usize,
    /// Load samples kept for the workers-vs-load chart (allocated up front and copied into
    /// every stats snapshot). Default 120. Range 0..=10,000.
    pub history_len: usize,
    /// How long [`WorkerPool::shutdown`](super::WorkerPool::shutdown) waits for the pool
    /// threads to finish the queued units and exit. When it runs out, the units still
    /// queued are cancelled (their submitters get `Error::ShuttingDown`), the threads still
    /// busy are left running detached, and the shutdown returns and reports them.
    /// Default 10 s. Range 1 ms..=1 h.
    #[serde(with = "crate::duration")]
    pub shutdown_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let cpus = cpu_count();
        let workers = |n: usize| n.clamp(1, Self::MAX_WORKERS);
        Self {
            start_with_hub: false,
            min_workers: workers(cpus.saturating_mul(2)),
            max_workers: workers(cpus.saturating_mul(4)),
            fixed_workers: None,
            sample_interval: Duration::from_millis(100),
            grow_below_cpu: 0.75,
            shrink_above_cpu: 0.95,
            grow_after: 2,
            shrink_after: 3,
            idle_after: 20,
            grow_step: workers(cpus),
            shrink_step: 1,
            cooldown: Duration::from_millis(500),
            starvation_bound: Duration::from_millis(100),
            promotion_interval: 4,
            idle_spin: Duration::from_micros(50),
            chunks_per_worker: 4,
            history_len: 120,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Longest accepted duration for the interval-like settings.
const HOUR: Duration = Duration::from_secs(3600);

impl WorkerConfig {
    /// Most worker threads a pool may have; more is a configuration mistake.
    pub const MAX_WORKERS: usize = 4096;
    /// Most consecutive samples a resize may wait for (`grow_after`, `shrink_after`,
    /// `idle_after`): about 2.8 hours at the default 100 ms sample interval.
    pub const MAX_STREAK: u32 = 100_000;
    /// Longest `idle_spin`.
    pub const MAX_IDLE_SPIN: Duration = Duration::from_millis(10);
    /// Most `promotion_interval` and `chunks_per_worker`.
    pub const MAX_PER: usize = 1024;
    /// Most `history_len`.
    pub const MAX_HISTORY: usize = 10_000;

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

    /// Checks that every value is within its documented range and that the values make
    /// sense together.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field out of range, e.g.
    /// `workers: idle_spin must be at most 10ms, got 1s`.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, m: String| Err(Error::Config(format!("workers: {field} {m}")));
        let count = |field: &str, v: usize, min: usize, max: usize| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                bad(field, format!("must be within {min}..={max}, got {v}"))
            }
        };
        let duration = |field: &str, v: Duration, min: Duration, max: Duration| {
            if v < min {
                bad(field, format!("must be at least {min:?}, got {v:?}"))
            } else if v > max {
                bad(field, format!("must be at most {max:?}, got {v:?}"))
            } else {
                Ok(())
            }
        };
        let streak = |field: &str, v: u32| count(field, v as usize, 1, Self::MAX_STREAK as usize);
        let ms = Duration::from_millis(1);
        count("min_workers", self.min_workers, 1, Self::MAX_WORKERS)?;
        count("max_workers", self.max_workers, 1, Self::MAX_WORKERS)?;
        match self.fixed_workers {
            Some(n) => count("fixed_workers", n, 1, Self::MAX_WORKERS)?,
            None if self.max_workers < self.min_workers => {
                return bad(
                    "max_workers",
                    format!(
                        "must be at least min_workers ({}), got {}",
                        self.min_workers, self.max_workers
                    ),
                );
            }
            None => {}
        }
        duration("sample_interval", self.sample_interval, ms, HOUR)?;
        let unit = |field: &str, x: f64| {
            if x.is_finite() && (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                bad(field, format!("must be within 0..=1, got {x}"))
            }
        };
        unit("grow_below_cpu", self.grow_below_cpu)?;
        unit("shrink_above_cpu", self.shrink_above_cpu)?;
        if self.grow_below_cpu >= self.shrink_above_cpu {
            return bad(
                "grow_below_cpu",
                format!(
                    "must be below shrink_above_cpu ({}), got {}",
                    self.shrink_above_cpu, self.grow_below_cpu
                ),
            );
        }
        streak("grow_after", self.grow_after)?;
        streak("shrink_after", self.shrink_after)?;
        streak("idle_after", self.idle_after)?;
        count("grow_step", self.grow_step, 1, Self::MAX_WORKERS)?;
        count("shrink_step", self.shrink_step, 1, Self::MAX_WORKERS)?;
        duration("cooldown", self.cooldown, Duration::ZERO, HOUR)?;
        duration(
            "starvation_bound",
            self.starvation_bound,
            Duration::ZERO,
            HOUR,
        )?;
        count(
            "promotion_interval",
            self.promotion_interval as usize,
            1,
            Self::MAX_PER,
        )?;
        duration(
            "idle_spin",
            self.idle_spin,
            Duration::ZERO,
            Self::MAX_IDLE_SPIN,
        )?;
        count(
            "chunks_per_worker",
            self.chunks_per_worker,
            1,
            Self::MAX_PER,
        )?;
        count("history_len", self.history_len, 0, Self::MAX_HISTORY)?;
        duration("shutdown_timeout", self.shutdown_timeout, ms, HOUR)?;
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
