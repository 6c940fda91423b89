//! A snapshot of the pool's counters, histograms and recent load.

use crate::metrics::histogram::HistogramSnapshot;
use crate::Priority;
use serde::Serialize;

/// One value per priority; serializes as `{"low": .., "normal": .., "high": .., "critical": ..}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ByPriority<T> {
    /// `Priority::Low`.
    pub low: T,
    /// `Priority::Normal`.
    pub normal: T,
    /// `Priority::High`.
    pub high: T,
    /// `Priority::Critical`.
    pub critical: T,
}

impl<T: Copy> ByPriority<T> {
    /// From an array indexed by [`Priority::index`].
    pub fn from_array(a: [T; 4]) -> Self {
        Self {
            low: a[0],
            normal: a[1],
            high: a[2],
            critical: a[3],
        }
    }

    /// The value for one priority.
    pub fn get(&self, priority: Priority) -> T {
        match priority {
            Priority::Low => self.low,
            Priority::Normal => self.normal,
            Priority::High => self.high,
            Priority::Critical => self.critical,
        }
    }
}

impl<T: Copy + std::iter::Sum<T>> ByPriority<T> {
    /// The sum over all priorities.
    pub fn total(&self) -> T {
        [self.low, self.normal, self.high, self.critical]
            .into_iter()
            .sum()
    }
}

/// Resizes counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ResizeCounts {
    /// Grew because work was queued and the CPU had headroom.
    pub grow_queued_headroom: u64,
    /// Shrank because the CPU was saturated.
    pub shrink_saturated: u64,
    /// Shrank because workers sat idle.
    pub shrink_idle: u64,
}

impl ResizeCounts {
    /// All resizes.
    pub fn total(&self) -> u64 {
        self.grow_queued_headroom + self.shrink_saturated + self.shrink_idle
    }
}

/// One controller sample, for a workers-vs-load chart.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LoadPoint {
    /// Milliseconds since the pool started.
    pub elapsed_ms: u64,
    /// Workers the pool is sized for after this sample's decision.
    pub workers: usize,
    /// Workers running a unit at the sample.
    pub busy: usize,
    /// Units queued at the sample.
    pub queued: usize,
    /// System CPU, 0..=1.
    pub cpu: f64,
    /// This process's CPU, 0..=1 of all cores.
    pub process_cpu: f64,
}

/// A point-in-time copy of the pool's state.
///
/// Counters are exact once the matching submit has resolved; the histograms are merged from
/// each worker every 64 units and whenever it runs out of work, so they may lag slightly.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct WorkerStats {
    /// Live worker threads (including ones about to retire).
    pub workers: usize,
    /// Workers the pool is sized for.
    pub target_workers: usize,
    /// Workers running a unit right now.
    pub busy_workers: usize,
    /// Fewest live workers seen.
    pub min_seen: usize,
    /// Most live workers seen.
    pub max_seen: usize,
    /// System CPU at the last sample, 0..=1.
    pub cpu_load_ratio: f64,
    /// This process's CPU at the last sample, 0..=1 of all cores.
    pub process_cpu_ratio: f64,
    /// Units submitted (a batch counts each unit).
    pub tasks_submitted: ByPriority<u64>,
    /// Units that returned normally.
    pub tasks_completed: ByPriority<u64>,
    /// Units that panicked.
    pub tasks_panicked: u64,
    /// Units waiting in the queue.
    pub task_queue_depth: usize,
    /// Units waiting, per priority.
    pub task_queue_depth_by_priority: ByPriority<usize>,
    /// Queue entries waiting: single units plus batch chunks (a batch adds a few, not one
    /// per unit).
    pub task_queue_entries: usize,
    /// Queue entries served ahead of a higher priority by the anti-starvation rule.
    pub starvation_promotions: u64,
    /// Units dropped unrun because a shutdown's `shutdown_timeout` ran out (their
    /// submitters got `Error::ShuttingDown`).
    pub tasks_cancelled: u64,
    /// Panics caught on a worker while dropping what a unit left behind: a result nobody
    /// waited for, the results of a failed batch, a panic payload (the worker survives).
    pub drop_panics: u64,
    /// Worker threads whose own loop panicked (a bug: units cannot cause it); each one was
    /// replaced while the pool still wanted it.
    pub worker_deaths: u64,
    /// Panics of the load sampler caught on the controller thread (the controller goes on).
    pub controller_panics: u64,
    /// Shutdowns that gave up waiting after `shutdown_timeout` with threads still busy.
    pub shutdown_timeouts: u64,
    /// Seconds from submit to start, per unit.
    pub wait_seconds: HistogramSnapshot,
    /// Seconds of run time, per unit (a batch chunk's time is spread over its units).
    pub run_seconds: HistogramSnapshot,
    /// Resizes by reason.
    pub resizes: ResizeCounts,
    /// The most recent controller samples, oldest first.
    pub history: Vec<LoadPoint>,
}
