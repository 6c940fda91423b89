//! `validate-targets`: checks `benchmarks/targets.toml` against one suite run's results and
//! exits non-zero naming every target it misses. With `--against DIR` it also compares
//! every same-run ratio of the run with the one in `DIR` (the committed results) and
//! exits non-zero when a ratio regressed by more than the tolerance.
//!
//! ```text
//! validate-targets [--results benchmarks/results] [--targets benchmarks/targets.toml] [--strict]
//!                  [--against DIR [--tolerance PCT] [--regressions-only]]
//! ```

use anyhow::Result;
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use swarmbus_benchmarks::suite::{evaluate, num, Results, Status, Targets};

/// How far (in %) a same-run ratio may fall before it counts as a regression.
///
/// Chosen from run-to-run noise: `scripts/benchmark_suite.sh --quick --no-docs --out DIR`
/// run back to back at one commit (a50d9eb) on the shared 2-vCPU machine, which had a
/// load average of 7–9 from other jobs. The figure is the largest fall of each ratio between
/// any two of those runs (min ÷ max − 1):
///
/// | ratio                            | 3 runs (1 s) | 8 runs (1 s) | 5 runs (`--seconds 3`) |
/// |----------------------------------|--------------|--------------|------------------------|
/// | direct 64 B optimized ÷ baseline | −64%         | −70%         | −52%                   |
/// | direct ÷ flume                   | −15%         | −44%         | −41%                   |
/// | direct ÷ tokio mpsc              | −46%         | −56%         | −41%                   |
/// | request optimized ÷ baseline     | −41%         | −56%         | −34%                   |
/// | task optimized ÷ baseline        | −64%         | −72%         | −65%                   |
///
/// So on this machine only a ratio that keeps less than a quarter of its value stands
/// out of the noise (worst fall seen: −72%). On a quiet machine pass a tighter `--tolerance`.
const TOLERANCE_PCT: f64 = 75.0;

#[derive(Debug, Parser)]
#[command(
    name = "validate-targets",
    version,
    about = "Check the benchmark targets"
)]
struct Args {
    /// Directory of the run's JSON reports.
    #[arg(long, default_value = "benchmarks/results")]
    results: PathBuf,
    /// The targets.
    #[arg(long, default_value = "benchmarks/targets.toml")]
    targets: PathBuf,
    /// A target whose input is missing counts as a miss.
    #[arg(long)]
    strict: bool,
    /// Reference results (e.g. the committed benchmarks/results): compare every same-run
    /// ratio of `--results` with this run's and fail on a regression.
    #[arg(long)]
    against: Option<PathBuf>,
    /// With --against: how far (in %) a ratio may move the wrong way.
    #[arg(long, default_value_t = TOLERANCE_PCT)]
    tolerance: f64,
    /// With --against: skip the fixed bounds, only look for regressions.
    #[arg(long, requires = "against")]
    regressions_only: bool,
}

/// One same-run ratio: a target with `over`, or `load-X-optimized ÷ load-X-baseline`.
#[derive(Debug, Clone, PartialEq)]
struct Ratio {
    /// `run ÷ over` and the metric when it is not throughput.
    label: String,
    value: f64,
    /// False for a ratio whose target is an upper bound (a latency ratio, say).
    higher_is_better: bool,
}

/// Every same-run ratio that `results` yields, by label.
fn ratios(targets: &Targets, results: &Results) -> BTreeMap<String, Ratio> {
    let mut out = BTreeMap::new();
    let mut add = |run: &str, over: &str, metric: &str, higher_is_better: bool| {
        let (Some(a), Some(b)) = (results.metric(run, metric), results.metric(over, metric)) else {
            return;
        };
        if !(a.is_finite() && b.is_finite() && b > 0.0) {
            return;
        }
        let label = if metric == "throughput" {
            format!("{run} ÷ {over}")
        } else {
            format!("{run} ÷ {over} ({metric})")
        };
        out.entry(label.clone()).or_insert(Ratio {
            label,
            value: a / b,
            higher_is_better,
        });
    };
    for t in &targets.targets {
        if let Some(over) = &t.over {
            // Only an upper bound means "smaller is better".
            add(
                &t.run,
                over,
                &t.metric,
                !(t.max.is_some() && t.min.is_none()),
            );
        }
    }
    for run in results.runs.keys() {
        if let Some(stem) = run
            .strip_prefix("load-")
            .and_then(|s| s.strip_suffix("-optimized"))
        {
            add(run, &format!("load-{stem}-baseline"), "throughput", true);
        }
    }
    // A paired target compares its paired ratio, as the report does.
    for t in targets.targets.iter().filter(|t| t.paired) {
        let Some(over) = &t.over else { continue };
        if let (Some(r), Some((value, _))) = (
            out.get_mut(&format!("{} ÷ {over}", t.run)),
            swarmbus_benchmarks::suite::paired_ratio(results, &t.run, over),
        ) {
            r.value = value;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Improved,
    Regressed,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
        }
    }
}

/// One ratio in both runs.
#[derive(Debug, Clone)]
struct Change {
    label: String,
    committed: f64,
    new: f64,
    /// `new ÷ committed − 1`, in %.
    pct: f64,
    verdict: Verdict,
}

/// The ratios of both runs side by side, and the labels found in only one of them.
#[derive(Debug, Default)]
struct Comparison {
    changes: Vec<Change>,
    only_committed: Vec<String>,
    only_new: Vec<String>,
}

fn compare(
    committed: &BTreeMap<String, Ratio>,
    new: &BTreeMap<String, Ratio>,
    tolerance_pct: f64,
) -> Comparison {
    let mut cmp = Comparison::default();
    for (label, c) in committed {
        let Some(n) = new.get(label) else {
            cmp.only_committed.push(label.clone());
            continue;
        };
        let pct = (n.value / c.value - 1.0) * 100.0;
        // Positive when the ratio moved the good way.
        let gain = if c.higher_is_better { pct } else { -pct };
        let verdict = if gain < -tolerance_pct {
            Verdict::Regressed
        } else if gain > tolerance_pct {
            Verdict::Improved
        } else {
            Verdict::Ok
        };
        cmp.changes.push(Change {
            label: label.clone(),
            committed: c.value,
            new: n.value,
            pct,
            verdict,
        });
    }
    cmp.only_new = new
        .keys()
        .filter(|k| !committed.contains_key(*k))
        .cloned()
        .collect();
    cmp
}

fn describe(results: &Results) -> String {
    match &results.meta {
        Some(meta) => format!(
            "`{}` at {} (commit {}, {} suite)",
            meta.command, meta.date, meta.commit, meta.suite
        ),
        None => "(no meta.json)".into(),
    }
}

/// Prints the comparison table; returns the regressed labels.
fn report_comparison(args: &Args, targets: &Targets, new: &Results) -> Result<Vec<String>> {
    let Some(dir) = &args.against else {
        return Ok(Vec::new());
    };
    let committed = Results::load(dir)?;
    let cmp = compare(
        &ratios(targets, &committed),
        &ratios(targets, new),
        args.tolerance,
    );
    println!(
        "\nsame-run ratios, committed {} vs new {}",
        dir.display(),
        args.results.display()
    );
    println!("  committed: {}", describe(&committed));
    println!("  new:       {}", describe(new));
    if let (Some(a), Some(b)) = (&committed.meta, &new.meta) {
        if a.suite != b.suite {
            println!(
                "  note: a {} suite against a {} suite: only runs in both are compared, and run lengths may differ (see the commands)",
                b.suite, a.suite
            );
        }
    }
    let width = cmp
        .changes
        .iter()
        .map(|c| c.label.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "\n{:<width$}  {:>9}  {:>9}  {:>8}  verdict (tolerance {}%)",
        "ratio", "committed", "new", "change", args.tolerance
    );
    for c in &cmp.changes {
        println!(
            "{:<width$}  {:>9.3}  {:>9.3}  {:>+7.1}%  {}",
            c.label,
            c.committed,
            c.new,
            c.pct,
            c.verdict.as_str()
        );
    }
    let count = |v: Verdict| cmp.changes.iter().filter(|c| c.verdict == v).count();
    println!(
        "\n{} ratios compared: {} ok, {} improved, {} regressed; {} only in the committed run, {} only in the new run",
        cmp.changes.len(),
        count(Verdict::Ok),
        count(Verdict::Improved),
        count(Verdict::Regressed),
        cmp.only_committed.len(),
        cmp.only_new.len()
    );
    if cmp.changes.is_empty() {
        anyhow::bail!("no ratio is present in both runs: nothing was compared");
    }
    Ok(cmp
        .changes
        .iter()
        .filter(|c| c.verdict == Verdict::Regressed)
        .map(|c| format!("{} ({:+.1}%)", c.label, c.pct))
        .collect())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let targets = Targets::load(&args.targets)?;
    let results = Results::load(&args.results)?;
    let mut missed = Vec::new();
    if !args.regressions_only {
        missed = report_targets(&args, &targets, &results);
    }
    let regressed = report_comparison(&args, &targets, &results)?;
    if !missed.is_empty() {
        eprintln!("missed targets:");
        for name in &missed {
            eprintln!("  - {name}");
        }
    }
    if !regressed.is_empty() {
        eprintln!("regressed ratios (beyond {}%):", args.tolerance);
        for name in &regressed {
            eprintln!("  - {name}");
        }
    }
    if !missed.is_empty() || !regressed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// Prints every target with its verdict; returns the missed ones.
fn report_targets(args: &Args, targets: &Targets, results: &Results) -> Vec<String> {
    let outcomes = evaluate(targets, results);
    if let Some(meta) = &results.meta {
        println!(
            "results of `{}` at {} (commit {}) on {}",
            meta.command,
            meta.date,
            meta.commit,
            results.machine()
        );
    }
    let mut missed = Vec::new();
    for o in &outcomes {
        let measured = o.value.map_or("–".to_string(), |v| {
            if v.abs() < 1000.0 {
                format!("{v:.3}")
            } else {
                num(v)
            }
        });
        println!(
            "{:<13} {}\n              measured {measured} (bound {}) — {}",
            o.status.as_str(),
            o.target.name,
            o.bound(),
            o.detail
        );
        let counts = match o.status {
            Status::Pass => false,
            Status::Miss => true,
            Status::NotMeasured => args.strict,
        };
        if counts {
            missed.push(o.target.name.clone());
        }
    }
    let pass = outcomes.iter().filter(|o| o.status == Status::Pass).count();
    let unmeasured = outcomes
        .iter()
        .filter(|o| o.status == Status::NotMeasured)
        .count();
    println!(
        "\n{pass} passed, {} missed, {unmeasured} not measured{}",
        outcomes.len() - pass - unmeasured,
        if args.strict { " (strict)" } else { "" }
    );
    missed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use swarmbus_benchmarks::suite::Target;

    fn target(run: &str, over: &str, metric: &str, min: Option<f64>, max: Option<f64>) -> Target {
        Target {
            name: format!("{run} over {over}"),
            metric: metric.into(),
            run: run.into(),
            over: Some(over.into()),
            paired: false,
            min,
            max,
            why: None,
        }
    }

    fn targets() -> Targets {
        Targets {
            targets: vec![
                target("load-a-optimized", "peer-x", "throughput", Some(1.0), None),
                target("driver-b", "peer-x", "p99_us", None, Some(2.0)),
                // Duplicates the load pair below: counted once.
                target(
                    "load-a-optimized",
                    "load-a-baseline",
                    "throughput",
                    Some(3.0),
                    None,
                ),
            ],
        }
    }

    /// A run with `load-a` (optimized/baseline), `load-c` (optimized only), a peer and a
    /// `driver-*` run, scaled by the factors given.
    fn run(opt: f64, base: f64, peer: f64, driver_p99: f64) -> Results {
        let mut r = Results::default();
        let load = |v: f64| json!({"pattern": "direct", "msgs_per_sec": v});
        r.runs.insert("load-a-optimized".into(), load(opt));
        r.runs.insert("load-a-baseline".into(), load(base));
        r.runs.insert("load-c-optimized".into(), load(opt));
        r.runs.insert(
            "peer-x".into(),
            json!({"system": "flume", "per_sec": peer, "latency_us": {"p99": 100.0}}),
        );
        r.runs.insert(
            "driver-b".into(),
            json!({"pattern": "direct", "msgs_per_sec": 1.0, "latency_us": {"p99": driver_p99}}),
        );
        r
    }

    #[test]
    fn every_over_target_and_every_load_pair_is_a_ratio() {
        let got = ratios(&targets(), &run(900.0, 300.0, 600.0, 150.0));
        let labels: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            labels,
            [
                "driver-b ÷ peer-x (p99_us)",
                "load-a-optimized ÷ load-a-baseline",
                "load-a-optimized ÷ peer-x",
            ]
        );
        assert_eq!(got["load-a-optimized ÷ load-a-baseline"].value, 3.0);
        assert_eq!(got["load-a-optimized ÷ peer-x"].value, 1.5);
        assert_eq!(got["driver-b ÷ peer-x (p99_us)"].value, 1.5);
        assert!(!got["driver-b ÷ peer-x (p99_us)"].higher_is_better);
        assert!(got["load-a-optimized ÷ peer-x"].higher_is_better);
    }

    #[test]
    fn a_fall_beyond_the_tolerance_regresses() {
        let t = targets();
        let committed = ratios(&t, &run(900.0, 300.0, 600.0, 150.0));
        // optimized ÷ baseline 3.0 → 2.0 (−33%); ÷ peer 1.5 → 1.0 (−33%).
        let new = ratios(&t, &run(600.0, 300.0, 600.0, 150.0));
        let cmp = compare(&committed, &new, 25.0);
        let verdicts: Vec<(&str, Verdict)> = cmp
            .changes
            .iter()
            .map(|c| (c.label.as_str(), c.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("driver-b ÷ peer-x (p99_us)", Verdict::Ok),
                ("load-a-optimized ÷ load-a-baseline", Verdict::Regressed),
                ("load-a-optimized ÷ peer-x", Verdict::Regressed),
            ]
        );
        assert!((cmp.changes[1].pct - -100.0 / 3.0).abs() < 1e-9);
        // Within the tolerance: −10% is noise.
        let new = ratios(&t, &run(810.0, 300.0, 600.0, 150.0));
        let cmp = compare(&committed, &new, 25.0);
        assert!(cmp.changes.iter().all(|c| c.verdict == Verdict::Ok));
    }

    #[test]
    fn a_smaller_is_better_ratio_regresses_when_it_rises() {
        let t = targets();
        let committed = ratios(&t, &run(900.0, 300.0, 600.0, 150.0));
        let worse = compare(
            &committed,
            &ratios(&t, &run(900.0, 300.0, 600.0, 300.0)),
            25.0,
        );
        let better = compare(
            &committed,
            &ratios(&t, &run(900.0, 300.0, 600.0, 75.0)),
            25.0,
        );
        let p99 = |c: &Comparison| {
            c.changes
                .iter()
                .find(|c| c.label.contains("p99_us"))
                .map(|c| c.verdict)
        };
        assert_eq!(p99(&worse), Some(Verdict::Regressed));
        assert_eq!(p99(&better), Some(Verdict::Improved));
    }

    #[test]
    fn ratios_in_one_run_only_are_listed_not_judged() {
        let t = targets();
        let committed = ratios(&t, &run(900.0, 300.0, 600.0, 150.0));
        let mut partial = run(900.0, 300.0, 600.0, 150.0);
        partial.runs.remove("peer-x");
        partial.runs.insert(
            "load-c-baseline".into(),
            json!({"pattern": "direct", "msgs_per_sec": 100.0}),
        );
        let cmp = compare(&committed, &ratios(&t, &partial), 25.0);
        assert_eq!(cmp.changes.len(), 1);
        assert_eq!(
            cmp.only_committed,
            ["driver-b ÷ peer-x (p99_us)", "load-a-optimized ÷ peer-x"]
        );
        assert_eq!(cmp.only_new, ["load-c-optimized ÷ load-c-baseline"]);
    }

    #[test]
    fn a_zero_denominator_gives_no_ratio() {
        // Baseline and peer throughput are zero; only the latency ratio is left.
        let got = ratios(&targets(), &run(900.0, 0.0, 0.0, 150.0));
        let labels: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(labels, ["driver-b ÷ peer-x (p99_us)"]);
    }
}
