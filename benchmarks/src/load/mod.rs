//! The `swarm-load` engine: drives a hub the way a busy swarm would and counts honestly.
//!
//! Receivers count what they really get; latency comes from a send timestamp stamped into
//! one payload in [`SAMPLE_EVERY`] and read on receipt, recorded in an HDR histogram.

pub mod churn;
pub mod nats;
pub mod payload;
pub mod register;
pub mod report;
pub mod rss;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use payload::{read_stamp, PayloadMaker, PayloadSpec};
use rand::{Rng, SeedableRng};
use report::Report;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use swarmbus::{Agent, AgentId, AgentSender, Hub, HubConfig, Priority};

/// One payload in this many carries a latency stamp.
pub const SAMPLE_EVERY: u64 = 8;

/// The traffic shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Agents send to random peers.
    Direct,
    /// Agents broadcast to everyone.
    Broadcast,
    /// Agents publish to topics with ~100 subscribers each.
    Topic,
    /// Concurrent requesters, every agent answers.
    Request,
    /// CPU units on the worker pool.
    Task,
    /// Direct, topic, request and task traffic at once.
    Mixed,
    /// `direct` traffic among the long-lived agents while short-lived agents are
    /// registered, sent one message each and dropped at `churn_rate` per second.
    Churn,
    /// Registers `agents` idle agents and reports the cost and memory at scale; no traffic.
    Register,
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "direct" => Pattern::Direct,
            "broadcast" => Pattern::Broadcast,
            "topic" => Pattern::Topic,
            "request" => Pattern::Request,
            "task" => Pattern::Task,
            "mixed" => Pattern::Mixed,
            "churn" => Pattern::Churn,
            "register" => Pattern::Register,
            _ => return Err(format!("unknown pattern `{s}`")),
        })
    }
}

impl Pattern {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Direct => "direct",
            Pattern::Broadcast => "broadcast",
            Pattern::Topic => "topic",
            Pattern::Request => "request",
            Pattern::Task => "task",
            Pattern::Mixed => "mixed",
            Pattern::Churn => "churn",
            Pattern::Register => "register",
        }
    }
}

/// Optimizations on, or all off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batching, compression and pools as configured.
    Optimized,
    /// No batching, no compression, no pools: the same code without them.
    Baseline,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "optimized" => Ok(Mode::Optimized),
            "baseline" => Ok(Mode::Baseline),
            _ => Err(format!("unknown mode `{s}`")),
        }
    }
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Optimized => "optimized",
            Mode::Baseline => "baseline",
        }
    }

    /// The hub configuration for this mode.
    pub fn config(self, base: HubConfig) -> HubConfig {
        match self {
            Mode::Optimized => base,
            Mode::Baseline => base
                .without_batching()
                .without_compression()
                .without_pools(),
        }
    }
}

/// Progress callback: (elapsed, delivered so far).
pub type Progress = Arc<dyn Fn(Duration, u64) + Send + Sync>;

/// What to run.
#[derive(Clone)]
pub struct LoadSpec {
    /// Agents to register.
    pub agents: usize,
    /// How long to send.
    pub duration: Duration,
    /// Traffic shape.
    pub pattern: Pattern,
    /// Payloads.
    pub payload: PayloadSpec,
    /// Optimized or baseline.
    pub mode: Mode,
    /// Offered messages (or requests, or tasks) per second; `None` for as fast as possible.
    pub rate: Option<u64>,
    /// Sending tasks.
    pub senders: usize,
    /// Concurrent requesters for `request` (and a tenth of them in `mixed`).
    pub requesters: usize,
    /// Memory growth is measured after this much of the run.
    pub warmup: Duration,
    /// The hub's configuration before the mode is applied.
    pub hub: HubConfig,
    /// Called about ten times a second with (elapsed, delivered so far).
    pub progress: Option<Progress>,
    /// Run across two hubs through this NATS server, against raw NATS.
    pub nats: Option<String>,
    /// With `nats`: durable delivery through JetStream, against raw JetStream and against
    /// swarmbus at most once, in the same run.
    pub durable: bool,
    /// `churn`: short-lived agents per second (0: none).
    pub churn_rate: u64,
    /// `churn`: tasks registering short-lived agents.
    pub churn_tasks: usize,
    /// `churn`: most short-lived agents alive at once.
    pub churn_in_flight: usize,
    /// `churn`: how long a short-lived agent waits for its message before counting it missed.
    pub churn_timeout: Duration,
    /// `register`: stop registering after this long.
    pub time_limit: Duration,
}

impl std::fmt::Debug for LoadSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadSpec")
            .field("pattern", &self.pattern)
            .field("mode", &self.mode)
            .field("agents", &self.agents)
            .field("duration", &self.duration)
            .field("payload", &self.payload)
            .field("rate", &self.rate)
            .field("churn_rate", &self.churn_rate)
            .finish_non_exhaustive()
    }
}

impl LoadSpec {
    /// A spec with the defaults of the command line.
    pub fn new(pattern: Pattern, agents: usize, duration: Duration) -> Self {
        Self {
            agents,
            duration,
            pattern,
            payload: PayloadSpec::Fixed(64),
            mode: Mode::Optimized,
            rate: None,
            senders: 2,
            requesters: 100,
            warmup: duration / 10,
            hub: HubConfig::default(),
            progress: None,
            nats: None,
            durable: false,
            churn_rate: if pattern == Pattern::Churn {
                100_000
            } else {
                0
            },
            churn_tasks: 2,
            churn_in_flight: 20_000,
            churn_timeout: Duration::from_secs(10),
            time_limit: Duration::from_secs(60),
        }
    }
}

/// Counters shared by every task of a run.
#[derive(Debug, Default)]
struct Tally {
    sent: AtomicU64,
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    errors: AtomicU64,
    tasks: AtomicU64,
}

/// Latency samples in µs, gathered locally and merged into one HDR histogram in chunks.
pub(crate) struct Samples {
    local: Vec<u64>,
    // Taken once per thousand samples, so a plain mutex is enough.
    shared: Arc<Mutex<Histogram<u64>>>,
}

impl Samples {
    pub(crate) fn new(shared: Arc<Mutex<Histogram<u64>>>) -> Self {
        Self {
            local: Vec::with_capacity(1024),
            shared,
        }
    }

    pub(crate) fn record(&mut self, micros: u64) {
        self.local.push(micros.max(1));
        if self.local.len() == self.local.capacity() {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if self.local.is_empty() {
            return;
        }
        if let Ok(mut h) = self.shared.lock() {
            for &v in &self.local {
                h.saturating_record(v);
            }
        }
        self.local.clear();
    }
}

impl Drop for Samples {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Runs one load test to the end and reports it. Fails if a message was lost without a
/// counted reason.
pub async fn run(spec: LoadSpec) -> Result<Report> {
    if spec.pattern == Pattern::Register {
        if spec.nats.is_some() {
            bail!("--nats measures the direct pattern across two hubs");
        }
        return register::run(&spec).await;
    }
    if spec.agents < 2 {
        bail!("--agents must be at least 2");
    }
    if spec.durable && spec.nats.is_none() {
        bail!("--durable needs --nats URL (a server with JetStream: nats-server -js)");
    }
    if let Some(url) = spec.nats.clone() {
        if spec.pattern != Pattern::Direct {
            bail!("--nats measures the direct pattern across two hubs");
        }
        return nats::run(&spec, &url).await;
    }
    let start_rss = rss::rss_mb();
    let epoch = Instant::now();
    let (stop_rss, rss_rx) = tokio::sync::watch::channel(false);
    let rss_task = tokio::spawn(rss::RssTrace::record(
        Duration::from_millis(100),
        epoch,
        rss_rx,
    ));

    let hub = Hub::start(spec.mode.config(spec.hub.clone())).context("starting the hub")?;
    let tally = Arc::new(Tally::default());
    let latency = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).context("histogram")?,
    ));

    // Agents and their receive loops.
    let mut agents: Vec<Agent> = Vec::with_capacity(spec.agents);
    for i in 0..spec.agents {
        agents.push(hub.register(format!("agent-{i}"))?);
    }
    let topics = (spec.agents / 100).max(1);
    if matches!(spec.pattern, Pattern::Topic | Pattern::Mixed) {
        for (i, a) in agents.iter().enumerate() {
            a.subscribe(&format!("topic-{}", i % topics))?;
        }
    }
    let ids: Arc<Vec<AgentId>> = Arc::new(agents.iter().map(|a| a.id()).collect());
    let senders: Vec<AgentSender> = agents.iter().map(|a| a.sender()).collect();
    let mut receivers = Vec::with_capacity(agents.len());
    for agent in agents {
        receivers.push(tokio::spawn(receive_loop(
            agent,
            tally.clone(),
            Samples::new(latency.clone()),
            epoch,
            None,
        )));
    }

    let deadline = Instant::now() + spec.duration;
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    let send_started = Instant::now();
    let plan = Plan::for_pattern(spec.pattern, spec.senders, spec.requesters);
    let rate_per = |share: usize| {
        spec.rate
            .map(|r| (r as f64 * share as f64 / plan.total_share() as f64).max(1.0))
    };
    for (t, job) in plan.jobs.iter().enumerate() {
        let ctx = JobCtx {
            hub: hub.clone(),
            senders: senders.clone(),
            ids: ids.clone(),
            tally: tally.clone(),
            running: running.clone(),
            deadline,
            payloads: PayloadMaker::new(&spec.payload, epoch, t as u64 + 1),
            seed: t as u64 + 7,
            rate: rate_per(job.share),
            samples: Samples::new(latency.clone()),
            topics,
            index: t,
            count: plan.jobs.len(),
        };
        load.push(tokio::spawn(job.kind.run(ctx)));
    }
    let mut churn = (spec.pattern == Pattern::Churn)
        .then(|| churn::Churn::start(&spec, &hub, &senders, running.clone(), deadline))
        .transpose()?;

    // Watch the run.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < deadline && load.iter().any(|h| !h.is_finished()) {
        tick.tick().await;
        if let Some(p) = &spec.progress {
            p(
                send_started.elapsed(),
                tally.delivered.load(Ordering::Relaxed),
            );
        }
    }
    running.store(false, Ordering::Relaxed);
    for job in load {
        job.await.context("a load task panicked")??;
    }
    if let Some(c) = churn.as_mut() {
        c.stop_registering().await?;
    }
    let send_time = send_started.elapsed();
    let drain_started = Instant::now();

    // Shut down: everything accepted reaches a mailbox; receivers drain and stop.
    let before = hub.metrics();
    let shutdown = hub.shutdown().await?;
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    for r in receivers {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, r)
            .await
            .context("receivers did not drain within 60 s")?
            .context("a receiver panicked")?;
    }
    let drain_time = drain_started.elapsed();
    // Short-lived agents still waiting get their message from the shutdown flush.
    let churn = match churn {
        Some(c) => Some(c.finish().await?),
        None => None,
    };
    let _ = stop_rss.send(true);
    let trace = rss_task.await.unwrap_or_default();
    let end_rss = rss::rss_mb();
    let m = hub.metrics();

    let sent = tally.sent.load(Ordering::Relaxed);
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let dropped: u64 = m.messages_dropped.values().sum();
    let lost = sent.saturating_sub(delivered);
    let churn_lost = churn
        .as_ref()
        .map_or(0, |c| c.messages_sent.saturating_sub(c.messages_delivered));
    let hist = latency
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?
        .clone();
    let flushed = |r: &str| m.batches_flushed.get(r).copied().unwrap_or(0);
    let batches = m.batches_flushed.values().sum::<u64>();
    let (hits, total): (u64, u64) = m
        .pools
        .iter()
        .fold((0, 0), |(h, t), p| (h + p.hits, t + p.hits + p.misses));
    let secs = send_time.as_secs_f64().max(1e-9);
    // Throughput counts until the last message is in its receiver's hands, so a backlog
    // left at the end of sending is not mistaken for speed.
    let busy_secs = (send_time + drain_time).as_secs_f64().max(1e-9);
    let tasks = tally.tasks.load(Ordering::Relaxed);
    let warmup_s = spec.warmup.as_secs_f64();
    // RSS samples count from `epoch`; warm-up and sending count from the first send.
    let offset = send_started.duration_since(epoch).as_secs_f64();
    let report = Report {
        pattern: spec.pattern.as_str().into(),
        mode: spec.mode.as_str().into(),
        agents: spec.agents,
        payload: spec.payload.to_string(),
        rate: spec.rate.unwrap_or(0),
        duration_s: secs,
        drain_s: drain_time.as_secs_f64(),
        messages_sent: sent,
        messages_delivered: delivered,
        messages_lost: lost,
        messages_dropped_counted: dropped,
        send_errors: tally.errors.load(Ordering::Relaxed),
        msgs_per_sec: delivered as f64 / busy_secs,
        mb_per_sec: tally.delivered_bytes.load(Ordering::Relaxed) as f64 / busy_secs / 1e6,
        latency_us: report::Latency {
            p50: hist.value_at_quantile(0.5) as f64,
            p99: hist.value_at_quantile(0.99) as f64,
            p999: hist.value_at_quantile(0.999) as f64,
            max: hist.max() as f64,
            samples: hist.len(),
        },
        batches: report::Batches {
            count: batches,
            mean_size: m.batch_size.mean(),
            flushed_by_size: flushed("size"),
            flushed_by_linger: flushed("linger"),
            flushed_waiting: flushed("waiting"),
            flushed_other: batches
                .saturating_sub(flushed("size"))
                .saturating_sub(flushed("linger"))
                .saturating_sub(flushed("waiting")),
        },
        compression: report::Compression {
            compressed_messages: m.compressed_messages,
            bytes_in: m.payload_bytes_raw,
            bytes_out: m.payload_bytes_wire,
            ratio: m.compression_ratio,
        },
        pools: report::Pools {
            hit_rate: if total == 0 {
                0.0
            } else {
                hits as f64 / total as f64
            },
        },
        tasks: report::Tasks {
            completed: tasks,
            per_sec: tasks as f64 / busy_secs,
        },
        workers: report::Workers {
            min_seen: before.workers.min_seen as u64,
            max_seen: before.workers.max_seen as u64,
            final_: before.workers.workers as u64,
        },
        rss_mb: report::Rss {
            start: start_rss,
            end: end_rss,
            // From the end of warm-up to the end of sending, before shutdown frees
            // anything: the growth a long-running hub would carry.
            growth: trace.at(offset + send_time.as_secs_f64()) - trace.at(offset + warmup_s),
            warmup_s,
        },
        machine: machine(),
        nats: None,
        durable: None,
        messages_duplicated: None,
        redelivered: None,
        churn,
        register: None,
    };
    if shutdown.undelivered != 0 {
        bail!(
            "the hub reports {} accepted messages that reached no mailbox",
            shutdown.undelivered
        );
    }
    if lost + churn_lost > dropped {
        bail!(
            "{} messages lost without a counted reason (sent {sent}, delivered {delivered}, to short-lived agents lost {churn_lost}, counted drops {dropped}); hub before shutdown: {:?}",
            lost + churn_lost - dropped,
            before.messages_dropped
        );
    }
    Ok(report)
}

/// One agent: counts, samples latency, answers requests, until the hub shuts down.
/// What the receivers of a cross-hub run counted: messages that reached an agent twice
/// (by message id; each receiver keeps the ids it saw) and messages flagged
/// `redelivered` by a durable hub.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) duplicated: AtomicU64,
    pub(crate) redelivered: AtomicU64,
}

async fn receive_loop(
    mut agent: Agent,
    tally: Arc<Tally>,
    mut samples: Samples,
    epoch: Instant,
    seen: Option<Arc<Seen>>,
) {
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut ids = std::collections::HashSet::new();
    while let Some(env) = agent.recv().await {
        if let Some(seen) = &seen {
            if env.redelivered() {
                seen.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            if !ids.insert(env.id()) {
                seen.duplicated.fetch_add(1, Ordering::Relaxed);
            }
        }
        if env.is_request() {
            // The requester counts the round trip; a reply after shutdown just fails.
            let _ = agent.reply(&env, env.payload().clone()).await;
            continue;
        }
        count += 1;
        bytes += env.payload().len() as u64;
        if let Ok(body) = env.payload().bytes() {
            if let Some(sent) = read_stamp(&body) {
                let now = epoch.elapsed().as_nanos() as u64;
                samples.record(now.saturating_sub(sent) / 1000);
            }
        }
        if count.is_multiple_of(256) {
            tally.delivered.fetch_add(count, Ordering::Relaxed);
            tally.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
            (count, bytes) = (0, 0);
        }
    }
    tally.delivered.fetch_add(count, Ordering::Relaxed);
    tally.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
}

/// What one load task does.
#[derive(Debug, Clone, Copy)]
enum JobKind {
    Direct,
    Broadcast,
    Topic,
    Request,
    Task,
}

struct Job {
    kind: JobKind,
    /// Its share of `--rate`.
    share: usize,
}

struct Plan {
    jobs: Vec<Job>,
}

impl Plan {
    fn for_pattern(pattern: Pattern, senders: usize, requesters: usize) -> Self {
        let n = senders.max(1);
        let many = |kind, count: usize| (0..count).map(move |_| Job { kind, share: 1 });
        let jobs: Vec<Job> = match pattern {
            Pattern::Direct | Pattern::Churn => many(JobKind::Direct, n).collect(),
            // Registration only; `run` hands it to `register::run` before any plan.
            Pattern::Register => Vec::new(),
            Pattern::Broadcast => many(JobKind::Broadcast, n).collect(),
            Pattern::Topic => many(JobKind::Topic, n).collect(),
            Pattern::Request => many(JobKind::Request, requesters.max(1)).collect(),
            Pattern::Task => many(JobKind::Task, n).collect(),
            Pattern::Mixed => many(JobKind::Direct, n)
                .chain(many(JobKind::Topic, 1))
                .chain(many(JobKind::Request, (requesters / 10).max(1)))
                .chain(many(JobKind::Task, 1))
                .collect(),
        };
        Plan { jobs }
    }

    fn total_share(&self) -> usize {
        self.jobs.iter().map(|j| j.share).sum::<usize>().max(1)
    }
}

struct JobCtx {
    hub: Hub,
    senders: Vec<AgentSender>,
    ids: Arc<Vec<AgentId>>,
    tally: Arc<Tally>,
    running: Arc<AtomicBool>,
    deadline: Instant,
    payloads: PayloadMaker,
    seed: u64,
    /// Operations per second for this task.
    rate: Option<f64>,
    samples: Samples,
    topics: usize,
    index: usize,
    count: usize,
}

impl JobCtx {
    /// Paces to the rate: waits until operation `done` is due.
    async fn pace(&self, started: Instant, done: u64) {
        if let Some(rate) = self.rate {
            let due = started + Duration::from_secs_f64(done as f64 / rate);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
    }

    fn keep_going(&self, i: u64) -> bool {
        // Checking the clock costs; every 64 operations is often enough.
        !i.is_multiple_of(64)
            || (self.running.load(Ordering::Relaxed) && Instant::now() < self.deadline)
    }
}

impl JobKind {
    async fn run(self, mut ctx: JobCtx) -> Result<()> {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(ctx.seed);
        let started = Instant::now();
        let mine: Vec<AgentSender> = ctx
            .senders
            .iter()
            .skip(ctx.index % ctx.count.max(1))
            .step_by(ctx.count.max(1))
            .cloned()
            .collect();
        let mine = if mine.is_empty() {
            ctx.senders.clone()
        } else {
            mine
        };
        let mut i = 0u64;
        let mut ok = 0u64;
        let mut errors = 0u64;
        while ctx.keep_going(i) {
            ctx.pace(started, i).await;
            let from = &mine[i as usize % mine.len()];
            let stamp = i.is_multiple_of(SAMPLE_EVERY);
            let outcome = match self {
                JobKind::Direct => {
                    let mut to = ctx.ids[rng.random_range(0..ctx.ids.len())];
                    if to == from.id() {
                        to = ctx.ids[(i as usize + 1) % ctx.ids.len()];
                    }
                    from.send(to, ctx.payloads.make(stamp)).await.map(|_| 1)
                }
                JobKind::Broadcast => from
                    .broadcast(ctx.payloads.make(stamp))
                    .await
                    .map(|n| n as u64),
                JobKind::Topic => {
                    let topic = format!("topic-{}", rng.random_range(0..ctx.topics));
                    from.publish(&topic, ctx.payloads.make(stamp))
                        .await
                        .map(|n| n as u64)
                }
                JobKind::Request => {
                    let to = ctx.ids[rng.random_range(0..ctx.ids.len())];
                    let t0 = Instant::now();
                    match from
                        .request(to, ctx.payloads.make(false), Duration::from_secs(10))
                        .await
                    {
                        Ok(_) => {
                            ctx.samples.record(t0.elapsed().as_micros() as u64);
                            ctx.tally.delivered.fetch_add(1, Ordering::Relaxed);
                            Ok(1)
                        }
                        Err(e) => Err(e),
                    }
                }
                JobKind::Task => {
                    let units: Vec<_> = (0..64u64).map(|k| move || cpu_unit(k)).collect();
                    match ctx.hub.submit_batch(Priority::Normal, units).await {
                        Ok(out) => {
                            ctx.tally
                                .tasks
                                .fetch_add(out.len() as u64, Ordering::Relaxed);
                            Ok(0)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match outcome {
                Ok(n) => ok += n,
                Err(swarmbus::Error::ShuttingDown) => break,
                Err(_) => errors += 1,
            }
            i += 1;
            if i.is_multiple_of(256) {
                ctx.tally.sent.fetch_add(ok, Ordering::Relaxed);
                ctx.tally.errors.fetch_add(errors, Ordering::Relaxed);
                (ok, errors) = (0, 0);
            }
        }
        ctx.tally.sent.fetch_add(ok, Ordering::Relaxed);
        ctx.tally.errors.fetch_add(errors, Ordering::Relaxed);
        Ok(())
    }
}

/// A few microseconds of real CPU work: FNV-1a over a small buffer, repeated.
fn cpu_unit(seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for round in 0..2_000u64 {
        h ^= round;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    std::hint::black_box(h)
}

/// The CPU model and core count, named next to every figure.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} vCPU, {model}")
}
