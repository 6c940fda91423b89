//! Load sampling: what the controller looks at before it resizes the pool.

use crate::{Error, Result};
use serde::Serialize;
use std::fmt;
use std::time::Instant;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, MINIMUM_CPU_UPDATE_INTERVAL};

/// One load reading.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LoadSample {
    /// CPU use of the whole machine, 0..=1 over all cores.
    pub system_cpu: f64,
    /// CPU use of this process, 0..=1 of all cores.
    pub process_cpu: f64,
}

/// A source of load readings. The controller calls `sample` once per `sample_interval`
/// from a single thread; tests plug in scripted samplers.
pub trait LoadSampler: Send + 'static {
    /// The load since the previous call (the first call may report zero).
    fn sample(&mut self) -> LoadSample;
}

/// The real sampler: system and own-process CPU from `sysinfo`.
///
/// sysinfo only recomputes CPU usage every `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`
/// (200 ms on Linux); a sample taken sooner repeats the previous reading.
pub struct SysinfoSampler {
    system: System,
    pid: Pid,
    cpus: f64,
    last_refresh: Instant,
    last: LoadSample,
}

impl SysinfoSampler {
    /// Reads the CPU list and this process once, so the next sample has a baseline.
    ///
    /// # Errors
    ///
    /// [`Error::CpuSampler`], keeping sysinfo's error, when the system's CPU times or this
    /// process cannot be read (no `/proc`, say).
    pub fn new() -> Result<Self> {
        let sys_err = |e: sysinfo::Error| Error::CpuSampler(Box::new(e));
        let mut system = System::new().map_err(sys_err)?;
        let pid = sysinfo::get_current_pid().map_err(sys_err)?;
        system.refresh_cpu_usage();
        let cpus = system.cpus().len().max(1) as f64;
        let mut sampler = Self {
            system,
            pid,
            cpus,
            last_refresh: Instant::now(),
            last: LoadSample::default(),
        };
        sampler.refresh();
        Ok(sampler)
    }

    /// Also refreshes the global CPU times (sysinfo does both in one call).
    fn refresh(&mut self) {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu(),
        );
        self.last_refresh = Instant::now();
    }
}

impl LoadSampler for SysinfoSampler {
    fn sample(&mut self) -> LoadSample {
        if self.last_refresh.elapsed() < MINIMUM_CPU_UPDATE_INTERVAL {
            return self.last;
        }
        self.refresh();
        let system_cpu = f64::from(self.system.global_cpu_usage()) / 100.0;
        // sysinfo reports process CPU in percent of one core.
        let process_cpu = self
            .system
            .process(self.pid)
            .map_or(0.0, |p| f64::from(p.cpu_usage()) / 100.0 / self.cpus);
        self.last = LoadSample {
            system_cpu: clamp_unit(system_cpu),
            process_cpu: clamp_unit(process_cpu),
        };
        self.last
    }
}

impl fmt::Debug for SysinfoSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SysinfoSampler")
            .field("pid", &self.pid)
            .field("cpus", &self.cpus)
            .finish_non_exhaustive()
    }
}

fn clamp_unit(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysinfo_sampler_reports_ratios_and_sees_own_cpu() {
        let mut s = SysinfoSampler::new().unwrap();
        let burn = || {
            // Busy on this thread so our own process shows up.
            let until = Instant::now() + MINIMUM_CPU_UPDATE_INTERVAL * 3 / 2;
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        };
        burn();
        // The first reading may lack a process baseline; the second cannot.
        let first = s.sample();
        assert_eq!(s.sample(), first, "a sample within the interval repeats");
        burn();
        let sample = s.sample();
        assert!((0.0..=1.0).contains(&sample.system_cpu), "{sample:?}");
        assert!((0.0..=1.0).contains(&sample.process_cpu), "{sample:?}");
        assert!(sample.process_cpu > 0.0, "{sample:?}");
        assert!(sample.system_cpu >= sample.process_cpu * 0.5, "{sample:?}");
    }
}
