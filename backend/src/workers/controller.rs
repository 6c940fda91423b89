//! The resize rule, as a pure function of the controller's memory and one observation.
//!
//! | condition (for N consecutive samples, after the cool-down)            | action                      |
//! |------------------------------------------------------------------------|-----------------------------|
//! | queued units > idle workers, CPU < `grow_below_cpu`, workers < max     | grow by `grow_step` (`grow_queued_headroom`) |
//! | CPU ≥ `shrink_above_cpu`, workers > min                                | shrink by `shrink_step` (`shrink_saturated`) |
//! | queue empty, some worker idle, workers > min                           | shrink by `shrink_step` (`shrink_idle`) |
//! | anything else                                                          | hold                        |
//!
//! N is `grow_after`, `shrink_after` and `idle_after` respectively. A sample that breaks a
//! condition resets its streak, and every resize resets all streaks, so an alternating or
//! noisy signal does not make the pool flap.

use super::config::WorkerConfig;
use super::sampler::LoadSample;
use serde::Serialize;
use std::time::Duration;

/// Why the pool was resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeReason {
    /// Work was queued and the CPU had headroom (units blocked on I/O or sleeping).
    GrowQueuedHeadroom,
    /// The CPU was saturated.
    ShrinkSaturated,
    /// Workers sat idle with nothing queued.
    ShrinkIdle,
}

impl ResizeReason {
    /// The snake_case name, as used in stats and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResizeReason::GrowQueuedHeadroom => "grow_queued_headroom",
            ResizeReason::ShrinkSaturated => "shrink_saturated",
            ResizeReason::ShrinkIdle => "shrink_idle",
        }
    }
}

/// What the controller does after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep the current size.
    Hold,
    /// Start `by` more workers.
    Grow {
        /// Workers to add.
        by: usize,
        /// Why.
        reason: ResizeReason,
    },
    /// Retire `by` workers (each finishes its current unit first).
    Shrink {
        /// Workers to retire.
        by: usize,
        /// Why.
        reason: ResizeReason,
    },
}

/// What the controller sees at one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observation {
    /// Workers the pool is sized for (retiring workers excluded).
    pub workers: usize,
    /// Workers waiting for work.
    pub idle: usize,
    /// Units waiting in the queue.
    pub queued: usize,
    /// The load reading.
    pub sample: LoadSample,
    /// Time since the pool started.
    pub now: Duration,
}

/// The controller's memory between samples: streaks and the last resize time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControllerState {
    grow_streak: u32,
    saturated_streak: u32,
    idle_streak: u32,
    last_resize: Option<Duration>,
}

/// Applies the resize rule (see the module table) to one observation.
pub fn decide(state: &mut ControllerState, obs: &Observation, config: &WorkerConfig) -> Decision {
    let (min, max) = config.bounds();
    let cpu = obs.sample.system_cpu;
    let bump = |streak: u32, holds: bool| if holds { streak.saturating_add(1) } else { 0 };
    state.grow_streak = bump(
        state.grow_streak,
        obs.queued > obs.idle && cpu < config.grow_below_cpu && obs.workers < max,
    );
    state.saturated_streak = bump(
        state.saturated_streak,
        cpu >= config.shrink_above_cpu && obs.workers > min,
    );
    state.idle_streak = bump(
        state.idle_streak,
        obs.queued == 0 && obs.idle > 0 && obs.workers > min,
    );
    let cooled = state
        .last_resize
        .is_none_or(|t| obs.now.saturating_sub(t) >= config.cooldown);
    if !cooled {
        return Decision::Hold;
    }
    let decision = if state.grow_streak >= config.grow_after {
        let by = config
            .grow_step
            .min(max - obs.workers)
            .min(obs.queued - obs.idle);
        Decision::Grow {
            by,
            reason: ResizeReason::GrowQueuedHeadroom,
        }
    } else if state.saturated_streak >= config.shrink_after {
        Decision::Shrink {
            by: config.shrink_step.min(obs.workers - min),
            reason: ResizeReason::ShrinkSaturated,
        }
    } else if state.idle_streak >= config.idle_after {
        Decision::Shrink {
            by: config.shrink_step.min(obs.idle).min(obs.workers - min),
            reason: ResizeReason::ShrinkIdle,
        }
    } else {
        Decision::Hold
    };
    if decision != Decision::Hold {
        *state = ControllerState {
            last_resize: Some(obs.now),
            ..ControllerState::default()
        };
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig {
            min_workers: 2,
            max_workers: 8,
            grow_step: 2,
            shrink_step: 1,
            grow_after: 2,
            shrink_after: 3,
            idle_after: 4,
            cooldown: Duration::from_millis(300),
            ..WorkerConfig::default()
        }
    }

    fn obs(workers: usize, idle: usize, queued: usize, cpu: f64, tick: u64) -> Observation {
        Observation {
            workers,
            idle,
            queued,
            sample: LoadSample {
                system_cpu: cpu,
                process_cpu: cpu,
            },
            now: Duration::from_millis(100 * tick),
        }
    }

    /// Feeds samples through `decide`, applying each decision to the worker count.
    fn run(
        c: &WorkerConfig,
        start: usize,
        samples: impl IntoIterator<Item = (usize, usize, f64)>,
    ) -> (usize, Vec<Decision>) {
        let mut s = ControllerState::default();
        let mut workers = start;
        let mut resizes = Vec::new();
        for (tick, (idle, queued, cpu)) in samples.into_iter().enumerate() {
            let d = decide(&mut s, &obs(workers, idle, queued, cpu, tick as u64), c);
            match d {
                Decision::Hold => {}
                Decision::Grow { by, .. } => workers += by,
                Decision::Shrink { by, .. } => workers -= by,
            }
            assert!((2..=8).contains(&workers), "{workers} out of bounds");
            if d != Decision::Hold {
                resizes.push(d);
            }
        }
        (workers, resizes)
    }

    #[test]
    fn grows_after_hysteresis_when_queued_with_headroom() {
        let c = config();
        let mut s = ControllerState::default();
        assert_eq!(decide(&mut s, &obs(2, 0, 50, 0.2, 0), &c), Decision::Hold);
        assert_eq!(
            decide(&mut s, &obs(2, 0, 50, 0.2, 1), &c),
            Decision::Grow {
                by: 2,
                reason: ResizeReason::GrowQueuedHeadroom
            }
        );
    }

    #[test]
    fn io_bound_load_grows_to_max_and_stops() {
        let (workers, resizes) = run(&config(), 2, std::iter::repeat_n((0, 1000, 0.1), 40));
        assert_eq!(workers, 8);
        assert_eq!(resizes.len(), 3);
    }

    #[test]
    fn no_grow_without_headroom_or_without_backlog() {
        let c = config();
        // Saturated CPU with a queue: CPU-bound work, more threads would not help.
        let (w, _) = run(&c, 4, std::iter::repeat_n((0, 1000, 0.9), 20));
        assert_eq!(w, 4);
        // Headroom but the queue is covered by idle workers.
        let (w, r) = run(&c, 4, std::iter::repeat_n((3, 2, 0.1), 3));
        assert_eq!((w, r.len()), (4, 0));
    }

    #[test]
    fn saturated_load_shrinks_to_min() {
        let c = config();
        let (workers, resizes) = run(&c, 8, std::iter::repeat_n((0, 500, 1.0), 60));
        assert_eq!(workers, 2);
        assert!(resizes.iter().all(|d| matches!(
            d,
            Decision::Shrink {
                reason: ResizeReason::ShrinkSaturated,
                ..
            }
        )));
        // Needs `shrink_after` samples in a row.
        let mut s = ControllerState::default();
        assert_eq!(decide(&mut s, &obs(8, 0, 5, 0.99, 0), &c), Decision::Hold);
        assert_eq!(decide(&mut s, &obs(8, 0, 5, 0.99, 1), &c), Decision::Hold);
        assert!(matches!(
            decide(&mut s, &obs(8, 0, 5, 0.99, 2), &c),
            Decision::Shrink { by: 1, .. }
        ));
    }

    #[test]
    fn idle_workers_shrink_to_min() {
        let c = config();
        let (workers, resizes) = run(&c, 8, std::iter::repeat_n((6, 0, 0.05), 100));
        assert_eq!(workers, 2);
        assert!(resizes.iter().all(|d| matches!(
            d,
            Decision::Shrink {
                reason: ResizeReason::ShrinkIdle,
                ..
            }
        )));
    }

    #[test]
    fn cooldown_spaces_resizes() {
        let mut c = config();
        c.grow_after = 1;
        c.grow_step = 1;
        c.cooldown = Duration::from_millis(500);
        let mut s = ControllerState::default();
        let mut at = Vec::new();
        let mut workers = 2;
        for tick in 0..20 {
            if let Decision::Grow { by, .. } = decide(&mut s, &obs(workers, 0, 99, 0.1, tick), &c) {
                workers += by;
                at.push(tick);
            }
        }
        assert_eq!(at, vec![0, 5, 10, 15]);
    }

    #[test]
    fn alternating_signal_does_not_flap() {
        let c = config();
        let noisy = (0..200).map(|i| {
            if i % 2 == 0 {
                (0, 100, 0.1)
            } else {
                (0, 100, 0.99)
            }
        });
        let (workers, resizes) = run(&c, 4, noisy);
        assert_eq!((workers, resizes.len()), (4, 0));
        // Pseudo-random noise around the thresholds: a bounded number of resizes.
        let mut x = 12345u64;
        let random = (0..200).map(move |_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let cpu = (x >> 33) as f64 / (1u64 << 31) as f64;
            (0, 100, cpu)
        });
        let (_, resizes) = run(&c, 4, random);
        assert!(resizes.len() <= 12, "{} resizes", resizes.len());
    }

    #[test]
    fn fixed_mode_never_resizes() {
        let c = WorkerConfig::fixed(3);
        let (w1, r1) = {
            let mut s = ControllerState::default();
            let mut r = Vec::new();
            for t in 0..50 {
                let cpu = if t < 25 { 0.0 } else { 1.0 };
                r.push(decide(&mut s, &obs(3, 0, 100, cpu, t), &c));
            }
            (3, r)
        };
        assert_eq!(w1, 3);
        assert!(r1.iter().all(|d| *d == Decision::Hold));
    }
}
