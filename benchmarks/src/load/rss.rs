//! Resident memory of this process, from /proc.

use std::time::{Duration, Instant};

/// Resident set size in MiB, or 0 where /proc is unavailable.
pub fn rss_mb() -> f64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0.0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages as f64 * page_size() as f64 / (1024.0 * 1024.0)
}

fn page_size() -> u64 {
    // 4 KiB on every Linux target this runs on; /proc/self/smaps would say otherwise.
    4096
}

/// RSS samples over a run.
#[derive(Debug, Default, Clone)]
pub struct RssTrace {
    /// (seconds since start, MiB).
    pub samples: Vec<(f64, f64)>,
}

impl RssTrace {
    /// Samples every `every` until `stop` resolves.
    pub async fn record(
        every: Duration,
        start: Instant,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let mut trace = RssTrace::default();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            trace
                .samples
                .push((start.elapsed().as_secs_f64(), rss_mb()));
            if *stop.borrow() {
                return trace;
            }
        }
    }

    /// The last sample at or before `t` seconds (the first sample if none).
    pub fn at(&self, t: f64) -> f64 {
        self.samples
            .iter()
            .take_while(|(s, _)| *s <= t)
            .last()
            .or(self.samples.first())
            .map_or(0.0, |(_, mb)| *mb)
    }
}
