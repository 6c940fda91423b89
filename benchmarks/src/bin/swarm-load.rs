//! `swarm-load`: drives a swarmbus hub and reports what really happened.
//!
//! ```text
//! swarm-load [--agents N] [--duration D] [--pattern direct|broadcast|topic|request|task|mixed]
//!            [--payload BYTES|mixed] [--mode optimized|baseline] [--json FILE] [--rate R]
//! swarm-load --pattern churn [--churn-rate R] [--churn-compare] ...   # short-lived agents
//! swarm-load --pattern register --agents 1000000 [--time-limit 60s]   # registration at scale
//! ```

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use swarmbus::HubConfig;
use swarmbus_benchmarks::load::{self, payload::PayloadSpec, LoadSpec, Mode, Pattern};

#[derive(Debug, Parser)]
#[command(
    name = "swarm-load",
    version,
    about = "Load-test a swarmbus hub and report honestly"
)]
struct Args {
    /// Agents to register.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// How long to send, e.g. 10s, 500ms, 10m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Traffic shape.
    #[arg(long, default_value = "direct", value_parser = |s: &str| s.parse::<Pattern>())]
    pattern: Pattern,
    /// Payload bytes (at least 9), or `mixed` (64 B, 512 B, 2 KiB JSON, 4 KiB random).
    #[arg(long, default_value = "64", value_parser = |s: &str| s.parse::<PayloadSpec>())]
    payload: PayloadSpec,
    /// `baseline` turns batching, compression and pooling off.
    #[arg(long, default_value = "optimized", value_parser = |s: &str| s.parse::<Mode>())]
    mode: Mode,
    /// Write the report as JSON here (and print nothing else).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Offered load in operations per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    /// Sending tasks.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Concurrent requesters for the request pattern.
    #[arg(long, default_value_t = 100)]
    requesters: usize,
    /// Memory growth is measured after this warm-up (default: a tenth of the duration).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Hub configuration (TOML) to start from.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Measure cross-hub traffic through this NATS server (two hubs, direct pattern),
    /// against raw NATS publish→subscribe in the same run.
    #[arg(long)]
    nats: Option<String>,
    /// With --nats: durable delivery through JetStream (the server runs with -js), against
    /// raw JetStream and against swarmbus at most once in the same run; exits non-zero if
    /// a message was lost or delivered twice.
    #[arg(long, requires = "nats")]
    durable: bool,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// `churn`: short-lived agents registered, sent one message and dropped per second.
    #[arg(long, default_value_t = 100_000)]
    churn_rate: u64,
    /// `churn`: tasks registering short-lived agents.
    #[arg(long, default_value_t = 2)]
    churn_tasks: usize,
    /// `churn`: most short-lived agents alive at once (registration waits beyond it).
    #[arg(long, default_value_t = 20_000)]
    churn_in_flight: usize,
    /// `churn`: a short-lived agent waits this long for its message, then counts it missed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    churn_timeout: Duration,
    /// `churn`: run without churn, then with it, in this process; report both and the ratio.
    #[arg(long)]
    churn_compare: bool,
    /// `register`: stop registering after this long and report how many were registered.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    time_limit: Duration,
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
    let hub = match &args.config {
        Some(path) => HubConfig::from_toml_file(path).context("reading --config")?,
        None => HubConfig::default(),
    };
    let mut spec = LoadSpec::new(args.pattern, args.agents, args.duration);
    spec.payload = args.payload.clone();
    spec.mode = args.mode;
    spec.rate = args.rate;
    spec.senders = args.senders;
    spec.requesters = args.requesters;
    spec.hub = hub;
    spec.nats = args.nats.clone();
    spec.durable = args.durable;
    if let Some(w) = args.warmup {
        spec.warmup = w;
    }
    if args.pattern == Pattern::Churn {
        spec.churn_rate = args.churn_rate;
    }
    spec.churn_tasks = args.churn_tasks;
    spec.churn_in_flight = args.churn_in_flight;
    spec.churn_timeout = args.churn_timeout;
    spec.time_limit = args.time_limit;
    if args.churn_compare && args.pattern != Pattern::Churn {
        anyhow::bail!("--churn-compare needs --pattern churn");
    }
    let bar = (args.json.is_none() && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(args.duration.as_millis() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40.cyan/blue} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    if let Some(bar) = &bar {
        let bar = bar.clone();
        spec.progress = Some(Arc::new(move |elapsed: Duration, delivered: u64| {
            bar.set_position(elapsed.as_millis() as u64);
            let rate = delivered as f64 / elapsed.as_secs_f64().max(1e-3);
            bar.set_message(format!("{delivered} delivered, {rate:.0} msg/s"));
        }));
    }
    let result = if args.churn_compare {
        runtime.block_on(load::churn::compare(spec))
    } else {
        runtime.block_on(load::run(spec))
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = result?;
    match &args.json {
        Some(path) => {
            let text = serde_json::to_string_pretty(&report)?;
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            println!("swarm-load on {}", report.machine);
            print!("{}", report.human());
        }
    }
    if args.durable {
        let duplicated = report.messages_duplicated.unwrap_or(0);
        if report.messages_lost > 0 || duplicated > 0 {
            anyhow::bail!(
                "durable delivery broke its guarantee: {} messages lost, {duplicated} delivered twice",
                report.messages_lost
            );
        }
    }
    Ok(())
}
