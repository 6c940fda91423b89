//! `peer-load`: swarm-load's `direct` and `request` workloads on flume, tokio mpsc, kameo
//! and ractor, so swarmbus can be compared with them in the same run.
//!
//! ```text
//! peer-load --system flume|tokio|kameo|ractor --pattern direct|request [--agents N]
//!           [--duration D] [--json FILE] [--senders K] [--requesters R] [--threads N]
//! ```

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use swarmbus_benchmarks::peers::{self, PeerPattern, PeerSpec, System};

#[derive(Debug, Parser)]
#[command(
    name = "peer-load",
    version,
    about = "Run swarm-load's direct/request workloads on a peer system"
)]
struct Args {
    /// flume, tokio, kameo or ractor.
    #[arg(long, value_parser = |s: &str| s.parse::<System>())]
    system: System,
    /// direct or request.
    #[arg(long, default_value = "direct", value_parser = |s: &str| s.parse::<PeerPattern>())]
    pattern: PeerPattern,
    /// Agents (receivers, or responders for `request`).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// How long to send, e.g. 3s, 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Write the report as JSON here (and print nothing else).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Sending tasks for `direct`.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Concurrent requesters for `request`.
    #[arg(long, default_value_t = 100)]
    requesters: usize,
    /// Tokio worker threads (default: one per core, as swarm-load).
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    swarmbus::config::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().context("tokio runtime")?;
    let mut spec = PeerSpec::new(args.system, args.pattern, args.agents, args.duration);
    spec.senders = args.senders;
    spec.requesters = args.requesters;
    let report = runtime.block_on(peers::run(spec))?;
    // Actors may still be winding down; don't wait for them.
    runtime.shutdown_timeout(Duration::from_secs(1));
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
