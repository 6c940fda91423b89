//! The comparison matrix: every (system, workload) cell through the same driver, with
//! repetitions interleaved across systems (rep 1 of every cell, then rep 2, ...) so drift
//! over the run hits every system alike, each run on a fresh tokio runtime. Each cell's
//! summary keeps the median and every rep.

use super::{run, PeerLatency, PeerPattern, PeerReport, PeerSpec, System, DEFAULT_IN_FLIGHT};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

/// A workload of the matrix: a pattern, bounded by the in-flight cap or open loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Workload {
    /// The pattern.
    pub pattern: PeerPattern,
    /// Open loop: no in-flight cap.
    pub open: bool,
}

impl Workload {
    /// `one-to-one`, `direct`, `request`, `low-load`, or one of them with `-open`.
    pub fn name(self) -> String {
        if self.open {
            format!("{}-open", self.pattern.as_str())
        } else {
            self.pattern.as_str().to_string()
        }
    }

    /// Whether the figure that matters is latency, not throughput.
    pub fn is_latency(self) -> bool {
        self.pattern == PeerPattern::LowLoad
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (base, open) = match s.strip_suffix("-open") {
            Some(base) => (base, true),
            None => (s, false),
        };
        Ok(Workload {
            pattern: base.parse()?,
            open,
        })
    }
}

/// The default cells: the five workloads of the issue, every system where it applies.
/// The hand-batched flume runs only where it is the reference (open-loop one-to-one).
pub fn default_cells() -> Vec<(Workload, System)> {
    let all = [
        System::Swarmbus,
        System::Flume,
        System::Tokio,
        System::Kameo,
        System::Ractor,
        System::Actix,
    ];
    let bounded = |pattern| Workload {
        pattern,
        open: false,
    };
    let mut cells = Vec::new();
    for pattern in [
        PeerPattern::OneToOne,
        PeerPattern::Direct,
        PeerPattern::Request,
    ] {
        cells.extend(all.iter().map(|&s| (bounded(pattern), s)));
    }
    let open = Workload {
        pattern: PeerPattern::OneToOne,
        open: true,
    };
    cells.extend(
        [System::Swarmbus, System::Flume, System::FlumeVec50]
            .iter()
            .map(|&s| (open, s)),
    );
    cells.extend(all.iter().map(|&s| (bounded(PeerPattern::LowLoad), s)));
    cells
}

/// How to run the matrix.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// The cells, in table order.
    pub cells: Vec<(Workload, System)>,
    /// Repetitions of every cell.
    pub reps: usize,
    /// Sending time of one run.
    pub duration: Duration,
    /// Tokio worker threads of each run's runtime.
    pub threads: usize,
    /// The in-flight cap of bounded workloads.
    pub in_flight: usize,
    /// Receiving agents of every cell, instead of each pattern's default.
    pub agents: Option<usize>,
}

impl Default for MatrixOptions {
    fn default() -> Self {
        Self {
            cells: default_cells(),
            reps: 3,
            duration: Duration::from_secs(3),
            threads: 2,
            in_flight: DEFAULT_IN_FLIGHT,
            agents: None,
        }
    }
}

/// The spec of one cell's run: the pattern's defaults, the matrix's cap, time and threads.
pub fn spec_for(workload: Workload, system: System, opts: &MatrixOptions) -> PeerSpec {
    let mut spec = PeerSpec::new(system, workload.pattern, opts.duration);
    spec.in_flight = (!workload.open).then_some(opts.in_flight);
    spec.threads = opts.threads;
    if let Some(agents) = opts.agents {
        spec.agents = agents;
    }
    spec
}

/// Runs one spec on a fresh multi-threaded runtime with `spec.threads` workers.
pub fn run_once(spec: PeerSpec) -> Result<PeerReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.threads.max(1))
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = runtime.block_on(run(spec));
    // Actors may still be winding down; don't wait for them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    report
}

/// One cell over every rep.
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    /// The system.
    pub system: String,
    /// The pattern.
    pub pattern: String,
    /// The workload (pattern, `-open` in open loop).
    pub workload: String,
    /// Receiving agents (responders for `request`).
    pub agents: usize,
    /// Sending tasks (requesters for `request`).
    pub senders: usize,
    /// Payload bytes.
    pub payload: usize,
    /// The in-flight cap; `null` in open loop.
    pub in_flight: Option<usize>,
    /// Tokio worker threads.
    pub threads: usize,
    /// Seconds of sending per rep.
    pub duration_s: f64,
    /// Reps run.
    pub reps: usize,
    /// Median over the reps of received per second.
    pub per_sec: f64,
    /// Received per second of every rep, in run order.
    pub per_sec_reps: Vec<f64>,
    /// Median over the reps of each percentile (samples: the total).
    pub latency_us: PeerLatency,
    /// p50 of every rep, in run order.
    pub p50_us_reps: Vec<f64>,
    /// Sent over every rep.
    pub messages_sent: u64,
    /// Received over every rep.
    pub messages: u64,
    /// Lost over every rep (a run that loses one fails).
    pub messages_lost: u64,
    /// Failed sends over every rep.
    pub send_errors: u64,
    /// What a mailbox is in this system.
    pub mailbox: String,
    /// Where it ran.
    pub machine: String,
    /// Every rep's full report.
    pub runs: Vec<PeerReport>,
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

impl CellSummary {
    /// Summarizes the reps of one cell; `None` without reps.
    pub fn from_runs(runs: Vec<PeerReport>) -> Option<Self> {
        let first = runs.first()?.clone();
        let of = |f: fn(&PeerReport) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        Some(Self {
            system: first.system,
            pattern: first.pattern,
            workload: first.workload,
            agents: first.agents,
            senders: first.senders,
            payload: first.payload,
            in_flight: first.in_flight,
            threads: first.threads,
            duration_s: of(|r| r.duration_s),
            reps: runs.len(),
            per_sec: of(|r| r.per_sec),
            per_sec_reps: runs.iter().map(|r| r.per_sec).collect(),
            latency_us: PeerLatency {
                p50: of(|r| r.latency_us.p50),
                p99: of(|r| r.latency_us.p99),
                p999: of(|r| r.latency_us.p999),
                max: of(|r| r.latency_us.max),
                samples: runs.iter().map(|r| r.latency_us.samples).sum(),
            },
            p50_us_reps: runs.iter().map(|r| r.latency_us.p50).collect(),
            messages_sent: runs.iter().map(|r| r.messages_sent).sum(),
            messages: runs.iter().map(|r| r.messages).sum(),
            messages_lost: runs.iter().map(|r| r.messages_lost).sum(),
            send_errors: runs.iter().map(|r| r.send_errors).sum(),
            mailbox: first.mailbox,
            machine: first.machine,
            runs,
        })
    }
}

/// A cell that failed, with the error of its failing rep.
#[derive(Debug, Clone)]
pub struct CellFailure {
    /// The workload.
    pub workload: Workload,
    /// The system.
    pub system: System,
    /// Which rep failed (1-based).
    pub rep: usize,
    /// Why.
    pub error: String,
}

/// What the matrix produced: a summary per cell that completed every rep, and failures.
#[derive(Debug, Default)]
pub struct MatrixResult {
    /// Completed cells, in table order.
    pub cells: Vec<(Workload, System, CellSummary)>,
    /// Cells with a failed rep (not summarized).
    pub failures: Vec<CellFailure>,
}

/// Runs every cell `reps` times, interleaved: rep 1 of every cell, then rep 2, ...; within
/// a workload the system order rotates with the rep so no system always runs first.
/// `progress` sees every finished run.
pub fn run_matrix(
    opts: &MatrixOptions,
    mut progress: impl FnMut(usize, Workload, System, &Result<PeerReport>),
) -> Result<MatrixResult> {
    if opts.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let mut reps: Vec<Vec<PeerReport>> = vec![Vec::new(); opts.cells.len()];
    let mut failed: Vec<Option<CellFailure>> = vec![None; opts.cells.len()];
    for rep in 0..opts.reps {
        for i in rotated_order(&opts.cells, rep) {
            if failed[i].is_some() {
                continue;
            }
            let (workload, system) = opts.cells[i];
            let outcome = run_once(spec_for(workload, system, opts));
            progress(rep + 1, workload, system, &outcome);
            match outcome {
                Ok(report) => reps[i].push(report),
                Err(e) => {
                    failed[i] = Some(CellFailure {
                        workload,
                        system,
                        rep: rep + 1,
                        error: format!("{e:#}"),
                    })
                }
            }
        }
    }
    let mut result = MatrixResult::default();
    for (i, runs) in reps.into_iter().enumerate() {
        let (workload, system) = opts.cells[i];
        match failed[i].take() {
            Some(f) => result.failures.push(f),
            None => {
                if let Some(summary) = CellSummary::from_runs(runs) {
                    result.cells.push((workload, system, summary));
                }
            }
        }
    }
    Ok(result)
}

/// Cell indices in run order for `rep`: workloads in order, systems rotated by `rep`.
fn rotated_order(cells: &[(Workload, System)], rep: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(cells.len());
    let mut start = 0;
    while start < cells.len() {
        let w = cells[start].0;
        let end = (start..cells.len())
            .find(|&j| cells[j].0 != w)
            .unwrap_or(cells.len());
        let n = end - start;
        order.extend((0..n).map(|k| start + (k + rep) % n));
        start = end;
    }
    order
}

/// The file stem of a cell's summary: `{prefix}{system}-{workload}`.
pub fn cell_id(prefix: &str, system: System, workload: Workload) -> String {
    format!("{prefix}{}-{}", system.as_str(), workload.name())
}

/// A markdown table: one row per workload, one column per system, then `swarmbus ÷ X`
/// for every other system. Throughput rows show the median received/s; the low-load row
/// shows median p50 / p99 latency and no ratios.
pub fn markdown(result: &MatrixResult, opts: &MatrixOptions) -> String {
    let systems: Vec<System> = System::ALL
        .iter()
        .copied()
        .filter(|s| result.cells.iter().any(|c| c.1 == *s))
        .collect();
    let others: Vec<System> = systems
        .iter()
        .copied()
        .filter(|s| *s != System::Swarmbus)
        .collect();
    let mut workloads: Vec<Workload> = Vec::new();
    for (w, _) in &opts.cells {
        if !workloads.contains(w) {
            workloads.push(*w);
        }
    }
    let find = |w: Workload, s: System| {
        result
            .cells
            .iter()
            .find(|c| c.0 == w && c.1 == s)
            .map(|c| &c.2)
    };
    let mut out = String::new();
    let _ = write!(out, "| workload |");
    for s in &systems {
        let _ = write!(out, " {} |", s.label());
    }
    for s in &others {
        let _ = write!(out, " swarmbus ÷ {} |", s.label());
    }
    out.push_str("\n|---|");
    for _ in 0..systems.len() + others.len() {
        out.push_str("---:|");
    }
    out.push('\n');
    for w in workloads {
        let _ = write!(out, "| {} |", w.name());
        for s in &systems {
            let cell = match find(w, *s) {
                None => "–".to_string(),
                Some(c) if w.is_latency() => format!(
                    "p50 {} / p99 {} µs",
                    crate::suite::num(c.latency_us.p50),
                    crate::suite::num(c.latency_us.p99)
                ),
                Some(c) => format!("{}/s", crate::suite::num(c.per_sec)),
            };
            let _ = write!(out, " {cell} |");
        }
        let ours = find(w, System::Swarmbus);
        for s in &others {
            let ratio = match (ours, find(w, *s)) {
                (Some(a), Some(b)) if !w.is_latency() && b.per_sec > 0.0 => {
                    // Rep i of both ran back to back: the ratio cancels the machine's drift.
                    let reps = a.per_sec_reps.len();
                    match crate::suite::paired_median(&a.per_sec_reps, &b.per_sec_reps)
                        .filter(|_| reps > 1)
                    {
                        Some(p) => {
                            match crate::suite::paired_interval(&a.per_sec_reps, &b.per_sec_reps) {
                                Some((lo, hi)) => format!(
                                    "{:.2} (paired {p:.2}, 90% CI {lo:.2}–{hi:.2})",
                                    a.per_sec / b.per_sec
                                ),
                                None => format!("{:.2} (paired {p:.2})", a.per_sec / b.per_sec),
                            }
                        }
                        None => format!("{:.2}", a.per_sec / b.per_sec),
                    }
                }
                _ => "–".to_string(),
            };
            let _ = write!(out, " {ratio} |");
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "\nMedian of {} reps of {} s each, interleaved across systems, {} tokio workers, 64 B payloads, \
         in-flight cap {} (`-open`: none); paired: the median of rep-by-rep ratios, with its 90% bootstrap interval. Failed cells: {}.\n",
        opts.reps,
        crate::suite::num(opts.duration.as_secs_f64()),
        opts.threads,
        crate::suite::num(opts.in_flight as f64),
        if result.failures.is_empty() {
            "none".to_string()
        } else {
            result
                .failures
                .iter()
                .map(|f| format!("{} {} (rep {}: {})", f.system.as_str(), f.workload.name(), f.rep, f.error))
                .collect::<Vec<_>>()
                .join("; ")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn workload_names_round_trip() {
        for name in [
            "one-to-one",
            "direct",
            "request",
            "low-load",
            "one-to-one-open",
        ] {
            let w: Workload = name.parse().expect("parses");
            assert_eq!(w.name(), name);
        }
        assert!("sideways".parse::<Workload>().is_err());
    }

    #[test]
    fn rotation_covers_every_cell_once_per_rep() {
        let cells = default_cells();
        for rep in 0..4 {
            let mut order = rotated_order(&cells, rep);
            // Workloads stay grouped and in order.
            let groups: Vec<Workload> = order.iter().map(|&i| cells[i].0).collect();
            let expected: Vec<Workload> = cells.iter().map(|c| c.0).collect();
            assert_eq!(groups, expected);
            order.sort_unstable();
            assert_eq!(order, (0..cells.len()).collect::<Vec<_>>());
        }
        // Rep 1 starts the first workload with its second system.
        assert_eq!(rotated_order(&cells, 1)[0], 1);
    }
}
