//! `swarmbus`: runs a hub with its HTTP metrics endpoint and dashboard, optionally with a
//! demo swarm. See `docs/operations.md`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use swarmbus::{Hub, HubConfig};
use tracing_subscriber::EnvFilter;

mod demo;
mod dlq;

use demo::{Demo, DemoOptions};

/// Where `--demo` serves when no address is given.
const DEMO_METRICS_ADDR: &str = "127.0.0.1:9464";

/// The most agents `--agents` takes (documented in docs/operations.md). Ten million idle
/// agents already need several GiB; more is a typo, not a plan.
const MAX_AGENTS: usize = 10_000_000;

/// The longest `--duration` (365 days); without `--duration` the hub runs until stopped.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, Parser)]
#[command(
    name = "swarmbus",
    version,
    about = "A batching message bus for swarms of agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a hub until Ctrl-C, SIGTERM or --duration.
    Hub(HubArgs),
    /// Read a running hub's dead letters, or send them again.
    #[command(subcommand)]
    Dlq(dlq::Dlq),
}

#[derive(Debug, Args)]
struct HubArgs {
    /// Agents to register: the demo swarm's size with --demo (default 50), otherwise idle
    /// agents that only sit in the registry (for footprint measurements).
    /// At most 10,000,000.
    #[arg(long, value_name = "N", value_parser = parse_agents)]
    agents: Option<usize>,
    /// Start a demo swarm that exercises every feature, so the dashboard has live data.
    #[arg(long)]
    demo: bool,
    /// Stop after this long ("500ms", "10s", "2m"; at most 8760h); default: run until
    /// Ctrl-C or SIGTERM.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Serve /metrics, /api/stats, / and /healthz here (port 0 picks a free port).
    /// Default: the config file's metrics_addr, or 127.0.0.1:9464 with --demo.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Hub configuration in TOML (see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` on every route but /healthz.
    #[arg(long, value_name = "TOKEN")]
    auth_token: Option<String>,
    /// Join a multi-host swarm through this NATS server (needs --node).
    #[arg(long, value_name = "URL", requires = "node")]
    nats: Option<String>,
    /// This hub's name in the swarm (unique; letters, digits, `-`, `_`).
    #[arg(long, value_name = "NAME", requires = "nats")]
    node: Option<String>,
    /// The swarm's name on the NATS server (subjects are namespaced by it).
    #[arg(long, value_name = "NAME", default_value = "default")]
    swarm: String,
    /// Durable delivery between hubs through JetStream (the server runs `nats-server -js
    /// -sd DIR`): the defaults of `[nats.durable]`, or the config file's settings.
    #[arg(long, requires = "nats")]
    durable: bool,
}

/// Parses "500ms", "10s", "2m", "1h" or "1.5s", at most [`MAX_DURATION`].
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let d = swarmbus::config::parse_duration(text).map_err(|e| e.to_string())?;
    if d > MAX_DURATION {
        return Err(format!(
            "`{text}` is too long: --duration takes at most 8760h (365 days); leave it out to run until stopped"
        ));
    }
    Ok(d)
}

/// Parses a whole number of agents, at most [`MAX_AGENTS`].
fn parse_agents(text: &str) -> std::result::Result<usize, String> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of agents"))?;
    match usize::try_from(n) {
        Ok(n) if n <= MAX_AGENTS => Ok(n),
        _ => Err(format!(
            "{n} is too many: --agents takes at most {MAX_AGENTS}"
        )),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Hub(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            runtime.block_on(run_hub(args))
        }
        Command::Dlq(cmd) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            runtime.block_on(dlq::run(cmd))
        }
    }
}

async fn run_hub(args: HubArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => HubConfig::from_toml_file(path)
            .with_context(|| format!("cannot load config {}", path.display()))?,
        None => HubConfig::default(),
    };
    if let Some(addr) = args.metrics_addr {
        config.metrics_addr = Some(addr);
    } else if args.demo && config.metrics_addr.is_none() {
        config.metrics_addr = Some(DEMO_METRICS_ADDR.parse()?);
    }
    if let Some(token) = args.auth_token {
        if token.is_empty() {
            bail!("--auth-token must not be empty");
        }
        config.auth_token = Some(token);
    }

    if let (Some(url), Some(node)) = (&args.nats, &args.node) {
        let mut nats = config.nats.take().unwrap_or_default();
        nats.url = url.clone();
        nats.node = node.clone();
        nats.swarm = args.swarm.clone();
        if args.durable && nats.durable.is_none() {
            nats.durable = Some(swarmbus::nats::DurableConfig::default());
        }
        config.nats = Some(nats);
    }
    let hub = Hub::connect(config).await.context("cannot start the hub")?;
    if let Some(addr) = hub.local_addr() {
        // One machine-readable line on stdout, so scripts and tests learn the port.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }

    let mut demo = None;
    let mut idle = Vec::new();
    if args.demo {
        let options = DemoOptions {
            agents: args.agents.unwrap_or(50),
            ..DemoOptions::default()
        };
        demo = Some(Demo::start(&hub, options)?);
    } else if let Some(n) = args.agents {
        idle.reserve(n);
        for i in 0..n {
            idle.push(hub.register(format!("idle-{i}"))?);
        }
        tracing::info!(agents = n, "idle agents registered");
    }

    wait_for_stop(args.duration).await?;

    if let Some(demo) = demo.as_mut() {
        demo.stop_drivers().await;
    }
    let report = hub.shutdown().await?;
    if let Some(demo) = demo {
        demo.join().await;
    }
    drop(idle);
    tracing::info!(
        sent = report.sent,
        delivered = report.delivered,
        forwarded = report.forwarded,
        unconfirmed = report.unconfirmed,
        undelivered = report.undelivered,
        dropped = report.dropped,
        queued = report.queued,
        flushed_at_shutdown = report.flushed_at_shutdown,
        "hub shut down"
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "shutdown report: {}", serde_json::to_string(&report)?)?;
    out.flush()?;
    Ok(())
}

/// Returns at the end of `duration`, on Ctrl-C or on SIGTERM.
async fn wait_for_stop(duration: Option<Duration>) -> Result<()> {
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    #[cfg(unix)]
    let terminate = term.recv();
    #[cfg(not(unix))]
    let terminate = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = timer => tracing::info!("duration elapsed, shutting down"),
        r = tokio::signal::ctrl_c() => {
            r.context("cannot listen for Ctrl-C")?;
            tracing::info!("Ctrl-C, shutting down");
        }
        _ = terminate => tracing::info!("SIGTERM, shutting down"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_agents, parse_duration, MAX_AGENTS};
    use std::time::Duration;

    #[test]
    fn agents_are_range_checked() {
        assert_eq!(parse_agents("0"), Ok(0));
        assert_eq!(parse_agents("50"), Ok(50));
        assert_eq!(parse_agents("10000000"), Ok(MAX_AGENTS));
        assert!(parse_agents("10000001").is_err());
        assert!(parse_agents("18446744073709551615").is_err());
        assert!(parse_agents("18446744073709551616").is_err());
        assert!(parse_agents("-1").is_err());
        assert!(parse_agents("many").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(
            parse_duration("8760h"),
            Ok(Duration::from_secs(365 * 24 * 3600))
        );
        assert!(parse_duration("8761h").is_err());
        assert!(parse_duration("5000000000000h").is_err());
    }
}
