//! `peer-load`: one driver for swarmbus and its peers (flume, tokio mpsc, kameo, ractor,
//! actix, and hand-batched flume), so every "swarmbus ÷ X" ratio comes from the same
//! driver code in the same run.
//!
//! ```text
//! peer-load --system S --pattern one-to-one|direct|request|low-load [--agents N]
//!           [--duration D] [--json FILE] [--senders K] [--requesters R] [--threads N]
//!           [--in-flight N | --open-loop]
//! peer-load --matrix [--reps 3] [--duration 3s] [--json-dir DIR] [--prefix driver-]
//!           [--markdown FILE] [--systems a,b] [--workloads w,x] [--threads 2] [--in-flight N]
//!           [--agents N]
//! ```
//! S: swarmbus, flume, flume-vec50, tokio, kameo, ractor, actix, and two swarmbus variants:
//! swarmbus-spawned (supervised handlers) and swarmbus-group (every send to one group).
//! With both `--systems` and `--workloads`, the matrix runs every pair of them; with one or
//! neither, the default table filtered by it.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use swarmbus_benchmarks::peers::matrix::{self, MatrixOptions, Workload};
use swarmbus_benchmarks::peers::{PeerPattern, PeerSpec, System, DEFAULT_IN_FLIGHT};

#[derive(Debug, Parser)]
#[command(
    name = "peer-load",
    version,
    about = "Run the shared benchmark driver on swarmbus or a peer system"
)]
struct Args {
    /// swarmbus, flume, flume-vec50, tokio, kameo, ractor, actix, swarmbus-spawned or
    /// swarmbus-group (one run).
    #[arg(long, value_parser = |s: &str| s.parse::<System>())]
    system: Option<System>,
    /// one-to-one, direct, request or low-load.
    #[arg(long, default_value = "direct", value_parser = |s: &str| s.parse::<PeerPattern>())]
    pattern: PeerPattern,
    /// Receiving agents (responders for `request`); default: one-to-one 1, direct 1000,
    /// request 10, low-load 1. With `--matrix`, for every cell.
    #[arg(long)]
    agents: Option<usize>,
    /// How long to send, e.g. 3s, 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Write the report as JSON here (and print nothing else).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Sending tasks (default: direct 2, one-to-one 1, low-load 1).
    #[arg(long)]
    senders: Option<usize>,
    /// Concurrent requesters for `request`.
    #[arg(long, default_value_t = 100)]
    requesters: usize,
    /// Tokio worker threads (actix: its arbiters).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Messages in flight across the run (sent, not yet received; requests outstanding).
    #[arg(long, default_value_t = DEFAULT_IN_FLIGHT)]
    in_flight: usize,
    /// No in-flight cap: senders go flat out.
    #[arg(long)]
    open_loop: bool,
    /// Run the comparison matrix (every system × workload) instead of one run.
    #[arg(long)]
    matrix: bool,
    /// Matrix: repetitions of every cell, interleaved across systems.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Matrix: write one JSON per (system, workload) here.
    #[arg(long)]
    json_dir: Option<PathBuf>,
    /// Matrix: file stem prefix of those JSONs.
    #[arg(long, default_value = "driver-")]
    prefix: String,
    /// Matrix: also write the markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Matrix: only these systems (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| s.parse::<System>())]
    systems: Vec<System>,
    /// Matrix: only these workloads (comma-separated; `one-to-one-open` is open loop).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| s.parse::<Workload>())]
    workloads: Vec<Workload>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    swarmbus::config::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.matrix {
        return run_matrix(&args);
    }
    let Some(system) = args.system else {
        bail!("--system is required (or --matrix)");
    };
    let mut spec = PeerSpec::new(system, args.pattern, args.duration);
    if let Some(n) = args.agents {
        spec.agents = n;
    }
    if let Some(n) = args.senders {
        spec.senders = n;
    }
    spec.requesters = args.requesters;
    spec.threads = args.threads;
    spec.in_flight = (!args.open_loop).then_some(args.in_flight);
    let report = matrix::run_once(spec)?;
    match &args.json {
        Some(path) => {
            let text = serde_json::to_string_pretty(&report)?;
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            println!("peer-load on {}", report.machine);
            print!("{}", report.human());
        }
    }
    Ok(())
}

fn run_matrix(args: &Args) -> Result<()> {
    // Both lists given: every workload of one with every system of the other (how the
    // systems outside the default table run); else the default table, filtered.
    let cells = if !args.systems.is_empty() && !args.workloads.is_empty() {
        args.workloads
            .iter()
            .flat_map(|&w| args.systems.iter().map(move |&s| (w, s)))
            .collect::<Vec<_>>()
    } else {
        matrix::default_cells()
            .into_iter()
            .filter(|(w, s)| {
                (args.systems.is_empty() || args.systems.contains(s))
                    && (args.workloads.is_empty() || args.workloads.contains(w))
            })
            .collect::<Vec<_>>()
    };
    if cells.is_empty() {
        bail!("no cell matches --systems / --workloads");
    }
    let opts = MatrixOptions {
        cells,
        reps: args.reps,
        duration: args.duration,
        threads: args.threads,
        in_flight: args.in_flight,
        agents: args.agents,
    };
    if let Some(dir) = &args.json_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let total = opts.cells.len() * opts.reps;
    let mut done = 0;
    let result = matrix::run_matrix(&opts, |rep, workload, system, outcome| {
        done += 1;
        let what = match outcome {
            Ok(r) if workload.is_latency() => format!(
                "p50 {:.0} µs, p99 {:.0} µs ({} samples)",
                r.latency_us.p50, r.latency_us.p99, r.latency_us.samples
            ),
            Ok(r) => format!("{:.0}/s", r.per_sec),
            Err(e) => format!("FAILED: {e:#}"),
        };
        eprintln!(
            "  [{done:>3}/{total}] rep {rep} {:<12} {:<16} {what}",
            system.as_str(),
            workload.name()
        );
    })?;
    if let Some(dir) = &args.json_dir {
        for (workload, system, summary) in &result.cells {
            let path = dir.join(format!(
                "{}.json",
                matrix::cell_id(&args.prefix, *system, *workload)
            ));
            let text = serde_json::to_string_pretty(summary)?;
            std::fs::write(&path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let table = matrix::markdown(&result, &opts);
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{table}");
    for f in &result.failures {
        eprintln!(
            "failed: {}",
            matrix::cell_id(&args.prefix, f.system, f.workload)
        );
    }
    if !result.failures.is_empty() {
        bail!("{} cells failed", result.failures.len());
    }
    Ok(())
}
