//! `bench-report`: turns one suite run's `benchmarks/results/*.json` into the generated
//! blocks of `docs/benchmarks.md` (load, peers, targets) and SVG plots under `docs/img/`.
//!
//! ```text
//! bench-report [--results benchmarks/results] [--doc docs/benchmarks.md]
//!              [--img docs/img] [--targets benchmarks/targets.toml]
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use swarmbus_benchmarks::suite::{evaluate, report, Results, Targets};

#[derive(Debug, Parser)]
#[command(
    name = "bench-report",
    version,
    about = "Write the suite's tables and plots"
)]
struct Args {
    /// Directory of the run's JSON reports.
    #[arg(long, default_value = "benchmarks/results")]
    results: PathBuf,
    /// Markdown file whose generated blocks are replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: PathBuf,
    /// Directory for the SVG plots.
    #[arg(long, default_value = "docs/img")]
    img: PathBuf,
    /// Targets checked in the targets block.
    #[arg(long, default_value = "benchmarks/targets.toml")]
    targets: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let results = Results::load(&args.results)?;
    if results.runs.is_empty() {
        bail!("no reports in {}", args.results.display());
    }
    let targets = Targets::load(&args.targets)?;
    let outcomes = evaluate(&targets, &results);
    // The doc links the plots relative to itself.
    let img_rel = relative(&args.doc, &args.img);
    let doc = match std::fs::read_to_string(&args.doc) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.doc.display())),
    };
    let doc = report::splice(
        &doc,
        "load",
        "## Load suite",
        &report::load_markdown(&results, &img_rel),
    );
    let doc = report::splice(&doc, "peers", "## Peers", &report::peers_markdown(&results));
    let doc = report::splice(
        &doc,
        "targets",
        "## Targets",
        &report::targets_markdown(&results, &outcomes),
    );
    if let Some(dir) = args.doc.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.doc, doc).with_context(|| format!("writing {}", args.doc.display()))?;
    report::plots(&results, &args.img)?;
    println!(
        "bench-report: {} runs → {} and {}/load-{{throughput,p99}}.svg",
        results.runs.len(),
        args.doc.display(),
        args.img.display()
    );
    Ok(())
}

/// `img` as seen from the doc's directory (both relative to the repo root, or both absolute).
fn relative(doc: &std::path::Path, img: &std::path::Path) -> String {
    let base = doc.parent().unwrap_or(std::path::Path::new(""));
    match img.strip_prefix(base) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => img.display().to_string(),
    }
}
