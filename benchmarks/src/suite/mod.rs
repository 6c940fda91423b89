//! The benchmark suite's results: the JSON reports of one run of
//! `scripts/benchmark_suite.sh`, the figures read from them, and the targets checked
//! against them. Used by `bench-report` and `validate-targets`.

pub mod report;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// What the suite script records about its run in `meta.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    /// The exact command that produced the results.
    #[serde(default)]
    pub command: String,
    /// UTC start time.
    #[serde(default)]
    pub date: String,
    /// Short commit hash the binaries were built from.
    #[serde(default)]
    pub commit: String,
    /// `quick` or `full`.
    #[serde(default)]
    pub suite: String,
    /// Runs that exited non-zero (e.g. a message lost without a counted reason).
    #[serde(default)]
    pub failed: Vec<String>,
}

/// Every report of one suite run, by file stem (`load-direct-64-1000-optimized`, ...).
#[derive(Debug, Default)]
pub struct Results {
    /// File stem → report.
    pub runs: BTreeMap<String, Value>,
    /// The run's metadata, when `meta.json` exists.
    pub meta: Option<Meta>,
}

impl Results {
    /// Reads every `*.json` in `dir`; `meta.json` is the run's metadata.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut results = Results::default();
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if stem == "meta" {
                results.meta = Some(
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))?,
                );
                continue;
            }
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            results.runs.insert(stem.to_string(), value);
        }
        Ok(results)
    }

    /// `metric` of run `id`, if both exist.
    pub fn metric(&self, id: &str, metric: &str) -> Option<f64> {
        self.runs.get(id).and_then(|v| metric_of(v, metric))
    }

    /// The machine named by the reports (the first one; all runs of a suite share it).
    pub fn machine(&self) -> String {
        self.runs
            .values()
            .find_map(|v| v.get("machine").and_then(Value::as_str))
            .unwrap_or("unknown machine")
            .to_string()
    }
}

/// A figure of one report. Named metrics:
/// - `throughput`: received per second (tasks per second for the `task` pattern, round
///   trips per second for `request`),
/// - `p50_us`, `p99_us`: latency percentiles,
/// - `messages_lost`,
/// - `rss_growth_mb`: resident memory growth after warm-up in MB (10^6 bytes),
///
/// and any other dotted path into the JSON (`batches.mean_size`).
pub fn metric_of(v: &Value, metric: &str) -> Option<f64> {
    let path = |p: &str| {
        p.split('.')
            .try_fold(v, |v, key| v.get(key))
            .and_then(Value::as_f64)
    };
    match metric {
        "throughput" => {
            if v.get("system").is_some() {
                path("per_sec")
            } else if v.get("pattern").and_then(Value::as_str) == Some("task") {
                path("tasks.per_sec")
            } else {
                path("msgs_per_sec")
            }
        }
        "p50_us" => path("latency_us.p50"),
        "p99_us" => path("latency_us.p99"),
        // The report says MiB.
        "rss_growth_mb" => path("rss_mb.growth").map(|mib| mib * 1_048_576.0 / 1e6),
        other => path(other),
    }
}

/// One target of `benchmarks/targets.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// What it promises, in words.
    pub name: String,
    /// The figure compared (see [`metric_of`]).
    pub metric: String,
    /// The run (file stem in the results) it is read from; `*` for every run that has it
    /// (the worst value counts).
    pub run: String,
    /// When set, the target is `run`'s metric divided by this run's.
    #[serde(default)]
    pub over: Option<String>,
    /// With `over` and `throughput`: the median of the per-repetition ratios
    /// (`per_sec_reps`, rep *i* of both cells ran back to back in the same process)
    /// instead of the ratio of the two medians. On a machine whose speed drifts between
    /// phases lasting seconds, a ratio of medians can pair a fast phase with a slow one;
    /// the paired ratio cancels the drift. The detail shows both.
    #[serde(default)]
    pub paired: bool,
    /// Lower bound (inclusive).
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound (inclusive).
    #[serde(default)]
    pub max: Option<f64>,
    /// Why this bound.
    #[serde(default)]
    pub why: Option<String>,
}

/// The targets file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Every target.
    #[serde(rename = "target")]
    pub targets: Vec<Target>,
}

impl Targets {
    /// Reads and checks `benchmarks/targets.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let targets: Targets =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for t in &targets.targets {
            if t.min.is_none() && t.max.is_none() {
                bail!("target `{}` has neither min nor max", t.name);
            }
            if t.run == "*" && t.over.is_some() {
                bail!("target `{}`: a ratio needs a named run, not `*`", t.name);
            }
            if t.paired && (t.over.is_none() || t.metric != "throughput") {
                bail!(
                    "target `{}`: `paired` needs `over` and `throughput`",
                    t.name
                );
            }
        }
        Ok(targets)
    }
}

/// How a target fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Within bounds.
    Pass,
    /// Out of bounds (or a run it depends on failed).
    Miss,
    /// An input is missing from the results.
    NotMeasured,
}

impl Status {
    /// `PASS`, `MISS` or `not measured`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Miss => "MISS",
            Status::NotMeasured => "not measured",
        }
    }
}

/// A target with its measured value.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The target.
    pub target: Target,
    /// The measured value (a ratio for ratio targets).
    pub value: Option<f64>,
    /// Where the value came from.
    pub detail: String,
    /// Verdict.
    pub status: Status,
}

impl Outcome {
    /// The bound as text: `≥ 3`, `≤ 12000`, `0 … 1`.
    pub fn bound(&self) -> String {
        match (self.target.min, self.target.max) {
            (Some(lo), Some(hi)) => format!("{} … {}", num(lo), num(hi)),
            (Some(lo), None) => format!("≥ {}", num(lo)),
            (None, Some(hi)) => format!("≤ {}", num(hi)),
            (None, None) => String::new(),
        }
    }
}

/// Checks every target against one run's results.
pub fn evaluate(targets: &Targets, results: &Results) -> Vec<Outcome> {
    let failed = results
        .meta
        .as_ref()
        .map(|m| m.failed.clone())
        .unwrap_or_default();
    targets
        .targets
        .iter()
        .map(|t| {
            let (value, mut detail) = measure(t, results);
            let mut status = match value {
                None => Status::NotMeasured,
                Some(v) => {
                    let ok = t.min.is_none_or(|lo| v >= lo) && t.max.is_none_or(|hi| v <= hi);
                    if ok {
                        Status::Pass
                    } else {
                        Status::Miss
                    }
                }
            };
            // A run that failed produced no report; a target reading it cannot pass.
            let depends: Vec<&String> = failed
                .iter()
                .filter(|f| t.run == "*" || **f == t.run || t.over.as_deref() == Some(f.as_str()))
                .collect();
            if !depends.is_empty() {
                status = Status::Miss;
                let names: Vec<&str> = depends.iter().map(|s| s.as_str()).collect();
                detail = format!("{detail}; failed runs: {}", names.join(", "));
            }
            Outcome {
                target: t.clone(),
                value,
                detail,
                status,
            }
        })
        .collect()
}

fn measure(t: &Target, results: &Results) -> (Option<f64>, String) {
    if t.run == "*" {
        // The worst value over every run that reports the metric.
        let lower_is_worse = t.min.is_some() && t.max.is_none();
        let worst = results
            .runs
            .iter()
            .filter_map(|(id, v)| metric_of(v, &t.metric).map(|m| (id, m)))
            .reduce(|a, b| {
                let b_worse = if lower_is_worse { b.1 < a.1 } else { b.1 > a.1 };
                if b_worse {
                    b
                } else {
                    a
                }
            });
        let n = results
            .runs
            .values()
            .filter(|v| metric_of(v, &t.metric).is_some())
            .count();
        return match worst {
            Some((id, v)) => (Some(v), format!("worst of {n} runs: {id}")),
            None => (None, "no run reports it".into()),
        };
    }
    let Some(a) = results.metric(&t.run, &t.metric) else {
        return (None, format!("{} missing", t.run));
    };
    match &t.over {
        None => (Some(a), t.run.clone()),
        Some(over) => match results.metric(over, &t.metric) {
            Some(b) if b > 0.0 && t.paired => match paired_ratio(results, &t.run, over) {
                Some((ratio, reps)) => (
                    Some(ratio),
                    format!(
                        "median of {reps} paired reps; medians {} {} ÷ {} {} = {:.2}",
                        t.run,
                        num(a),
                        over,
                        num(b),
                        a / b
                    ),
                ),
                None => (None, format!("{} and {over} have no paired reps", t.run)),
            },
            Some(b) if b > 0.0 => (
                Some(a / b),
                format!("{} {} ÷ {} {}", t.run, num(a), over, num(b)),
            ),
            Some(_) => (None, format!("{over} is zero")),
            None => (None, format!("{over} missing")),
        },
    }
}

/// The median of `run`'s per-rep throughput over `over`'s, rep by rep, and how many reps:
/// `None` unless both have `per_sec_reps` of one length with every rep of `over` above 0.
pub fn paired_ratio(results: &Results, run: &str, over: &str) -> Option<(f64, usize)> {
    let reps = |id: &str| -> Option<Vec<f64>> {
        results
            .runs
            .get(id)?
            .get("per_sec_reps")?
            .as_array()?
            .iter()
            .map(Value::as_f64)
            .collect()
    };
    let (a, b) = (reps(run)?, reps(over)?);
    Some((paired_median(&a, &b)?, a.len()))
}

/// The median of `a[i] / b[i]`; `None` when empty, of unequal lengths, or a `b` is not
/// above 0.
pub fn paired_median(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || a.len() != b.len() || b.iter().any(|x| *x <= 0.0) {
        return None;
    }
    Some(median(a.iter().zip(b).map(|(x, y)| x / y).collect()))
}

/// The median of a non-empty list.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A 90% bootstrap interval of [`paired_median`]: the 5th and 95th percentiles of the
/// median over 2,000 resamples of the rep-by-rep ratios, with a fixed seed (the same reps
/// give the same interval). `None` as for [`paired_median`], or with fewer than 5 reps.
pub fn paired_interval(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    use rand::{Rng, SeedableRng};
    let n = a.len();
    if n < 5 || n != b.len() || b.iter().any(|x| *x <= 0.0) {
        return None;
    }
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
    let mut medians: Vec<f64> = (0..2000)
        .map(|_| median((0..n).map(|_| ratios[rng.random_range(0..n)]).collect()))
        .collect();
    medians.sort_by(f64::total_cmp);
    Some((medians[100], medians[1899]))
}

/// A number for tables: thousands separated, few decimals.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if v.abs() >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_paired_interval_holds_the_median_and_narrows_with_reps() {
        let over = vec![100.0; 41];
        // Ratios 0.80, 0.81, ..., 1.20: median 1.00.
        let run: Vec<f64> = (0..41).map(|i| 80.0 + i as f64).collect();
        let (lo, hi) = paired_interval(&run, &over).unwrap();
        assert!(lo < 1.0 && 1.0 < hi, "{lo} {hi}");
        assert!(lo > 0.9 && hi < 1.1, "{lo} {hi}");
        // The same reps, the same interval.
        assert_eq!(paired_interval(&run, &over), Some((lo, hi)));
        let few: Vec<f64> = (0..5).map(|i| 80.0 + 10.0 * i as f64).collect();
        let (flo, fhi) = paired_interval(&few, &over[..5]).unwrap();
        assert!(fhi - flo > hi - lo);
        assert_eq!(paired_interval(&few[..4], &over[..4]), None);
        assert_eq!(paired_interval(&run, &over[..40]), None);
    }

    fn results() -> Results {
        let mut r = Results::default();
        r.runs.insert(
            "a".into(),
            json!({"pattern": "direct", "msgs_per_sec": 600.0, "messages_lost": 0,
                   "latency_us": {"p99": 900.0}, "rss_mb": {"growth": 0.5}}),
        );
        r.runs.insert(
            "b".into(),
            json!({"pattern": "direct", "msgs_per_sec": 200.0, "messages_lost": 3}),
        );
        r.runs.insert(
            "p".into(),
            json!({"system": "flume", "per_sec": 300.0, "messages_lost": 0}),
        );
        r
    }

    fn target(
        run: &str,
        over: Option<&str>,
        metric: &str,
        min: Option<f64>,
        max: Option<f64>,
    ) -> Target {
        Target {
            name: format!("{run} {metric}"),
            metric: metric.into(),
            run: run.into(),
            over: over.map(Into::into),
            paired: false,
            min,
            max,
            why: None,
        }
    }

    #[test]
    fn a_paired_ratio_is_the_median_of_rep_by_rep_ratios() {
        let mut r = Results::default();
        // Rep 2 ran in a fast phase for `a` only: the ratio of medians says 1.0, the
        // paired ratio 0.9.
        r.runs.insert(
            "a".into(),
            json!({"system": "x", "per_sec": 90.0, "per_sec_reps": [90.0, 300.0, 45.0]}),
        );
        r.runs.insert(
            "b".into(),
            json!({"system": "x", "per_sec": 90.0, "per_sec_reps": [100.0, 90.0, 50.0]}),
        );
        let mut t = target("a", Some("b"), "throughput", Some(0.95), None);
        assert_eq!(
            evaluate(
                &Targets {
                    targets: vec![t.clone()]
                },
                &r
            )[0]
            .status,
            Status::Pass
        );
        t.paired = true;
        let out = evaluate(
            &Targets {
                targets: vec![t.clone()],
            },
            &r,
        );
        assert_eq!(out[0].status, Status::Miss);
        assert!(
            (out[0].value.unwrap() - 0.9).abs() < 1e-9,
            "{:?}",
            out[0].value
        );
        assert!(out[0].detail.contains("3 paired reps"), "{}", out[0].detail);
        // Reps of different counts cannot be paired.
        r.runs.insert(
            "b".into(),
            json!({"system": "x", "per_sec": 90.0, "per_sec_reps": [100.0, 90.0]}),
        );
        let out = evaluate(&Targets { targets: vec![t] }, &r);
        assert_eq!(out[0].status, Status::NotMeasured);
    }

    #[test]
    fn ratios_bounds_worst_and_missing() {
        let targets = Targets {
            targets: vec![
                target("a", Some("b"), "throughput", Some(3.0), None),
                target("a", Some("p"), "throughput", Some(3.0), None),
                target("*", None, "messages_lost", None, Some(0.0)),
                target("a", None, "p99_us", None, Some(12_000.0)),
                target("zzz", None, "p99_us", None, Some(1.0)),
                target("a", None, "rss_growth_mb", None, Some(0.5)),
            ],
        };
        let out = evaluate(&targets, &results());
        let got: Vec<Status> = out.iter().map(|o| o.status).collect();
        assert_eq!(
            got,
            [
                Status::Pass,
                Status::Miss,
                Status::Miss,
                Status::Pass,
                Status::NotMeasured,
                Status::Miss
            ]
        );
        assert_eq!(out[0].value, Some(3.0));
        assert_eq!(out[2].value, Some(3.0));
        assert!(out[2].detail.contains("b"));
    }

    #[test]
    fn failed_runs_miss() {
        let mut r = results();
        r.meta = Some(Meta {
            failed: vec!["a".into()],
            ..Meta::default()
        });
        let targets = Targets {
            targets: vec![target("a", None, "p99_us", None, Some(12_000.0))],
        };
        assert_eq!(evaluate(&targets, &r)[0].status, Status::Miss);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(1_234_567.8), "1,234,568");
        assert_eq!(num(3.456), "3.46");
        assert_eq!(num(42.0), "42");
        assert_eq!(num(0.0), "0");
    }
}
