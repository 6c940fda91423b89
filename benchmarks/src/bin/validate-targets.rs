//! `validate-targets`: checks `benchmarks/targets.toml` against one suite run's results and
//! exits non-zero naming every target it misses.
//!
//! ```text
//! validate-targets [--results benchmarks/results] [--targets benchmarks/targets.toml] [--strict]
//! ```

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use swarmbus_benchmarks::suite::{evaluate, num, Results, Status, Targets};

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
}

fn main() -> Result<()> {
    let args = Args::parse();
    let targets = Targets::load(&args.targets)?;
    let results = Results::load(&args.results)?;
    let outcomes = evaluate(&targets, &results);
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
    if !missed.is_empty() {
        eprintln!("missed targets:");
        for name in &missed {
            eprintln!("  - {name}");
        }
        std::process::exit(1);
    }
    Ok(())
}
