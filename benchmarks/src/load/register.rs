//! `swarm-load --pattern register`: registers `--agents` idle agents, the way
//! `swarmbus hub --agents N` does, and reports the cost at every power of ten from 10,000.
//!
//! At each checkpoint the registration time of the last [`WINDOW`] agents shows whether a
//! registration costs more in a bigger swarm; RSS over the empty hub's gives KB per idle
//! agent (the harness's own `Vec<Agent>` is part of it, as it is in the hub binary's, and
//! its share is reported). Registration stops at `--time-limit`, reporting how far it got.

use super::report::{RegisterCheckpoint, RegisterReport, Report};
use super::{machine, rss, LoadSpec};
use anyhow::{Context, Result};
use std::time::Instant;
use swarmbus::{Agent, Hub};

/// Agents whose registration time is reported at every checkpoint.
pub const WINDOW: usize = 10_000;

/// 10,000, 100,000, ... up to `n`, and `n` itself.
pub fn checkpoints(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut c = WINDOW;
    while c < n {
        out.push(c);
        c = c.saturating_mul(10);
    }
    if n > 0 {
        out.push(n);
    }
    out
}

/// Registers, measures, drops, shuts down.
pub async fn run(spec: &LoadSpec) -> Result<Report> {
    let hub = Hub::start(spec.mode.config(spec.hub.clone())).context("starting the hub")?;
    let n = spec.agents;
    let marks = checkpoints(n);
    let rss_start = rss::rss_mb();
    let mut agents: Vec<Agent> = Vec::with_capacity(n);
    let mut points = Vec::with_capacity(marks.len());
    let started = Instant::now();
    let limit = started + spec.time_limit;
    let mut next = 0;
    let mut window_started = started;
    let mut window_from = 0usize;
    let mut completed = true;
    // The last two multiples of WINDOW passed: a run cut short reports the window between.
    let mut recent = [(started, 0usize); 2];
    while agents.len() < n {
        let count = agents.len();
        if count > 0 && count.is_multiple_of(WINDOW) {
            recent = [recent[1], (Instant::now(), count)];
        }
        if count.is_multiple_of(1000) {
            if Instant::now() >= limit {
                completed = false;
                break;
            }
            // Registration is synchronous: let the hub's own tasks run now and then.
            if count.is_multiple_of(WINDOW) {
                tokio::task::yield_now().await;
            }
        }
        if let Some(&mark) = marks.get(next) {
            if count == mark.saturating_sub(WINDOW) {
                (window_started, window_from) = (Instant::now(), count);
            }
        }
        agents.push(hub.register(format!("idle-{count}"))?);
        if marks.get(next) == Some(&agents.len()) {
            points.push(checkpoint(
                &hub,
                agents.len(),
                started,
                window_started,
                window_from,
                rss_start,
            ));
            next += 1;
        }
    }
    let total = started.elapsed();
    let reached = points
        .last()
        .map(|p: &RegisterCheckpoint| p.agents as usize);
    if !completed && !agents.is_empty() && reached != Some(agents.len()) {
        let (at, from) = recent[0];
        points.push(checkpoint(&hub, agents.len(), started, at, from, rss_start));
    }
    let registered = agents.len();
    let dropping = Instant::now();
    drop(agents);
    let drop_s = dropping.elapsed().as_secs_f64();
    let agents_after_drop = hub.metrics().agents;
    let shutdown = hub.shutdown().await?;
    let rss_end = rss::rss_mb();
    let secs = total.as_secs_f64().max(1e-9);
    let last = points.last().cloned().unwrap_or_default();
    let register = RegisterReport {
        target: n as u64,
        registered: registered as u64,
        completed,
        time_limit_s: spec.time_limit.as_secs_f64(),
        total_s: total.as_secs_f64(),
        agents_per_sec: registered as f64 / secs,
        us_per_agent: secs * 1e6 / registered.max(1) as f64,
        kb_per_idle_agent: last.kb_per_agent,
        harness_bytes_per_agent: std::mem::size_of::<Agent>() as u64,
        checkpoints: points,
        drop_s,
        agents_after_drop,
        shutdown_undelivered: shutdown.undelivered,
    };
    Ok(Report {
        pattern: spec.pattern.as_str().into(),
        mode: spec.mode.as_str().into(),
        agents: registered,
        payload: spec.payload.to_string(),
        duration_s: secs,
        rss_mb: super::report::Rss {
            start: rss_start,
            end: rss_end,
            growth: last.rss_mb - rss_start,
            warmup_s: 0.0,
        },
        machine: machine(),
        register: Some(register),
        ..Report::default()
    })
}

fn checkpoint(
    hub: &Hub,
    agents: usize,
    started: Instant,
    window_started: Instant,
    window_from: usize,
    rss_start: f64,
) -> RegisterCheckpoint {
    let elapsed = started.elapsed();
    let window = agents - window_from;
    let window_s = window_started.elapsed().as_secs_f64();
    let rss_mb = rss::rss_mb();
    let t = Instant::now();
    let snapshot = hub.metrics();
    let metrics_ms = t.elapsed().as_secs_f64() * 1e3;
    RegisterCheckpoint {
        agents: agents as u64,
        elapsed_s: elapsed.as_secs_f64(),
        window_agents: window as u64,
        window_us_per_agent: window_s * 1e6 / window.max(1) as f64,
        rss_mb,
        kb_per_agent: (rss_mb - rss_start) * 1024.0 / agents.max(1) as f64,
        metrics_snapshot_ms: metrics_ms,
        hub_agents: snapshot.agents,
    }
}
