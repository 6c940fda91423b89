//! One benchmark driver for every system: swarmbus and its peers (flume, tokio mpsc, kameo,
//! ractor, actix) run the same workloads through the same driver functions in the same run,
//! so a "swarmbus ÷ X" ratio measures the systems, not two different load loops.
//!
//! The drivers are shared: the same payloads (one fresh 64-byte buffer per message, one in
//! [`SAMPLE_EVERY`] stamped for latency, every one in `low-load`), the same sending tasks,
//! the same requesters with a 10 s timeout, the same in-flight cap (a run-wide bound on
//! messages sent and not yet received, `--in-flight`), and the same clock: throughput counts
//! until the last message is in its receiver's hands. Only received messages (and answered
//! round trips) are counted. A system plugs in through [`Mesh`]; the driver never knows which
//! one it drives.

mod actix_peer;
mod flume_peer;
mod inflight;
mod kameo_peer;
pub mod matrix;
mod ractor_peer;
mod swarmbus_peer;
mod tokio_peer;

use crate::load::payload::{read_stamp, PayloadMaker, PayloadSpec};
use crate::load::{Samples, SAMPLE_EVERY};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
pub(crate) use inflight::InFlight;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a requester waits for a reply, as in swarm-load.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounded mailboxes (tokio mpsc, kameo) hold this many messages per agent.
pub const BOUNDED_CAPACITY: usize = 1024;

/// Messages in flight across a whole run unless `--in-flight` says otherwise.
pub const DEFAULT_IN_FLIGHT: usize = 32_768;

/// Messages per `Vec` in the hand-batched flume reference.
pub const HAND_BATCH: usize = 50;

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum System {
    /// swarmbus through its public API: `Hub::start(HubConfig::default())`, one `Agent` per
    /// agent, `AgentSender::send` / `request`, `reply`.
    Swarmbus,
    /// One unbounded flume channel per agent; replies over a tokio oneshot.
    Flume,
    /// Raw flume sending `Vec`s of [`HAND_BATCH`] messages per send: batching by hand.
    FlumeVec50,
    /// One bounded (1024) tokio mpsc channel per agent; replies over a tokio oneshot.
    Tokio,
    /// One kameo actor per agent, bounded (1024) mailbox; `tell` and `ask`.
    Kameo,
    /// One ractor actor per agent (unbounded); `cast` and `call`.
    Ractor,
    /// One actix actor per agent on two arbiters (two threads); `do_send` and `send`.
    Actix,
    /// swarmbus with every receiving agent spawned (`Hub::spawn`, a supervised handler per
    /// agent) instead of a task looping on `recv`: what supervision costs.
    SwarmbusSpawned,
    /// swarmbus with every receiving agent in one group: the driver's sends and requests
    /// go to the group (`send_group`, `request_group`), whatever peer it drew.
    SwarmbusGroup,
}

impl FromStr for System {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        System::ALL
            .iter()
            .copied()
            .find(|sys| sys.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = System::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown system `{s}` ({})", names.join(", "))
            })
    }
}

impl System {
    /// Every system, in table order.
    pub const ALL: [System; 9] = [
        System::Swarmbus,
        System::Flume,
        System::Tokio,
        System::Kameo,
        System::Ractor,
        System::Actix,
        System::FlumeVec50,
        System::SwarmbusSpawned,
        System::SwarmbusGroup,
    ];

    /// The name used on the command line, in file names and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            System::Swarmbus => "swarmbus",
            System::Flume => "flume",
            System::FlumeVec50 => "flume-vec50",
            System::Tokio => "tokio",
            System::Kameo => "kameo",
            System::Ractor => "ractor",
            System::Actix => "actix",
            System::SwarmbusSpawned => "swarmbus-spawned",
            System::SwarmbusGroup => "swarmbus-group",
        }
    }

    /// A column heading for tables.
    pub fn label(self) -> &'static str {
        match self {
            System::Swarmbus => "swarmbus",
            System::Flume => "raw flume",
            System::FlumeVec50 => "flume, Vec of 50",
            System::Tokio => "raw tokio mpsc",
            System::Kameo => "kameo",
            System::Ractor => "ractor",
            System::Actix => "actix",
            System::SwarmbusSpawned => "swarmbus, spawned",
            System::SwarmbusGroup => "swarmbus, one group",
        }
    }

    /// What an agent's mailbox is, for the report.
    pub fn mailbox(self) -> String {
        match self {
            System::Swarmbus => "swarmbus Agent per agent, HubConfig::default()".into(),
            System::Flume => "flume::unbounded per agent, tokio oneshot replies".into(),
            System::FlumeVec50 => format!(
                "flume::unbounded per agent carrying Vec<Bytes> of {HAND_BATCH} per send (per sending task and destination), tokio oneshot replies"
            ),
            System::Tokio => {
                format!("tokio::sync::mpsc::channel({BOUNDED_CAPACITY}) per agent, tokio oneshot replies")
            }
            System::Kameo => {
                format!("kameo actor per agent, mailbox::bounded({BOUNDED_CAPACITY}), tell/ask")
            }
            System::Ractor => "ractor actor per agent (unbounded), cast/call".into(),
            System::Actix => "actix actor per agent on 2 arbiters (the driver's tasks run on them too), do_send (unbounded) / send (mailbox 16)".into(),
            System::SwarmbusSpawned => "swarmbus Hub::spawn per agent (supervised handler, Restart::default()), HubConfig::default()".into(),
            System::SwarmbusGroup => "swarmbus Agent per agent, every one in one group; send_group / request_group".into(),
        }
    }
}

/// The workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerPattern {
    /// Sending tasks each feeding one receiving agent (default 1 → 1).
    OneToOne,
    /// Two sending tasks, 1,000 agents, random peers.
    Direct,
    /// Concurrent requesters (100) → responders (10), request → reply with a timeout.
    Request,
    /// One message per millisecond to an idle agent; every message's latency is recorded.
    LowLoad,
}

impl FromStr for PeerPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "one-to-one" => Ok(PeerPattern::OneToOne),
            "direct" => Ok(PeerPattern::Direct),
            "request" => Ok(PeerPattern::Request),
            "low-load" => Ok(PeerPattern::LowLoad),
            _ => Err(format!(
                "unknown pattern `{s}` (one-to-one, direct, request, low-load)"
            )),
        }
    }
}

impl PeerPattern {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerPattern::OneToOne => "one-to-one",
            PeerPattern::Direct => "direct",
            PeerPattern::Request => "request",
            PeerPattern::LowLoad => "low-load",
        }
    }

    /// Receiving agents (responders for `request`) by default.
    pub fn default_agents(self) -> usize {
        match self {
            PeerPattern::OneToOne | PeerPattern::LowLoad => 1,
            PeerPattern::Direct => 1000,
            PeerPattern::Request => 10,
        }
    }

    /// Sending tasks by default (`request` uses requesters instead).
    pub fn default_senders(self) -> usize {
        match self {
            PeerPattern::Direct => 2,
            _ => 1,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// System under test.
    pub system: System,
    /// Workload.
    pub pattern: PeerPattern,
    /// Receiving agents (responders for `request`).
    pub agents: usize,
    /// How long to send.
    pub duration: Duration,
    /// Sending tasks for `direct`, `one-to-one` and `low-load`.
    pub senders: usize,
    /// Concurrent requesters for `request`.
    pub requesters: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Messages in flight across the run (requests outstanding for `request`); `None` is
    /// open loop: senders go flat out.
    pub in_flight: Option<usize>,
    /// Time between two messages of a `low-load` sender.
    pub low_load_every: Duration,
    /// Tokio worker threads of the runtime it runs on (for the report).
    pub threads: usize,
}

impl PeerSpec {
    /// A spec with the pattern's defaults (agents, senders), 100 requesters, 64-byte
    /// payloads, the default in-flight cap, 1 ms low-load pacing, 2 threads.
    pub fn new(system: System, pattern: PeerPattern, duration: Duration) -> Self {
        Self {
            system,
            pattern,
            agents: pattern.default_agents(),
            duration,
            senders: pattern.default_senders(),
            requesters: 100,
            payload: 64,
            in_flight: Some(DEFAULT_IN_FLIGHT),
            low_load_every: Duration::from_millis(1),
            threads: 2,
        }
    }

    /// The workload's name: the pattern, with `-open` when the cap is off.
    pub fn workload(&self) -> String {
        match self.in_flight {
            Some(_) => self.pattern.as_str().to_string(),
            None => format!("{}-open", self.pattern.as_str()),
        }
    }

    /// Sending tasks of the driver.
    fn tasks(&self) -> usize {
        match self.pattern {
            PeerPattern::Request => self.requesters.max(1),
            _ => self.senders.max(1),
        }
    }

    /// Identities the senders need besides the receiving agents (swarmbus sends from an
    /// agent): one per sending task, except in `direct`, where the agents send to each other.
    pub(crate) fn clients(&self) -> usize {
        match self.pattern {
            PeerPattern::Direct => 0,
            _ => self.tasks(),
        }
    }
}

/// Latency percentiles in microseconds, as `swarm-load` reports them.
pub type PeerLatency = crate::load::report::Latency;

/// One run of one system on one workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerReport {
    /// `swarmbus`, `flume`, `flume-vec50`, `tokio`, `kameo`, `ractor` or `actix`.
    pub system: String,
    /// `one-to-one`, `direct`, `request` or `low-load`.
    pub pattern: String,
    /// The pattern, with `-open` in open loop.
    pub workload: String,
    /// Receiving agents (responders for `request`).
    pub agents: usize,
    /// Sending tasks (requesters for `request`).
    pub senders: usize,
    /// Payload bytes.
    pub payload: usize,
    /// The in-flight cap; `null` in open loop.
    pub in_flight: Option<usize>,
    /// Tokio worker threads.
    pub threads: usize,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Seconds from the end of sending until every receiver had everything.
    pub drain_s: f64,
    /// Messages (or requests) accepted by the system.
    pub messages_sent: u64,
    /// Messages received (or round trips answered for `request`).
    pub messages: u64,
    /// Sent minus received.
    pub messages_lost: u64,
    /// Sends (or requests) that failed or timed out.
    pub send_errors: u64,
    /// Received per second, from the first send until the last message was received.
    pub per_sec: f64,
    /// One-way latency (sampled; every message in `low-load`) or round trip (`request`).
    pub latency_us: PeerLatency,
    /// What a mailbox is in this system.
    pub mailbox: String,
    /// Where it ran.
    pub machine: String,
}

impl PeerReport {
    /// A compact table for a terminal.
    pub fn human(&self) -> String {
        let l = &self.latency_us;
        let cap = self
            .in_flight
            .map_or("open loop".to_string(), |n| format!("{n} in flight"));
        format!(
            "  {:<22} {} / {} ({cap})\n  {:<22} {} agents, {} senders, {} threads\n  {:<22} {:.2} s sending + {:.2} s draining\n  {:<22} {} / {} (lost {}, errors {})\n  {:<22} {:.0}/s\n  {:<22} p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0} ({} samples)\n",
            "system / workload", self.system, self.workload,
            "shape", self.agents, self.senders, self.threads,
            "duration", self.duration_s, self.drain_s,
            "sent / received", self.messages_sent, self.messages, self.messages_lost, self.send_errors,
            "throughput", self.per_sec,
            "latency µs", l.p50, l.p99, l.p999, l.max, l.samples,
        )
    }
}

/// The operations a system offers the driver. `to` indexes the receiving agents
/// (`0..len()`); `from` indexes the sending identities: the agents themselves in `direct`,
/// else `len() + task`. Systems that have no sender identity ignore `from`.
///
/// Each driver task works on its own clone, so a clone may keep per-task state (the
/// hand-batching flume reference keeps its unsent `Vec`s there).
pub(crate) trait Mesh: Clone + Send + Sync + 'static {
    /// Receiving agents.
    fn len(&self) -> usize;
    /// One-way send; true when the system accepted it.
    fn send(&mut self, from: usize, to: usize, body: Bytes) -> impl Future<Output = bool> + Send;
    /// Request and await the reply; true when the reply (an echo) arrived in time, whole.
    fn request(
        &mut self,
        from: usize,
        to: usize,
        body: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = bool> + Send;
    /// Hands over whatever this clone still holds; called once when a task stops sending.
    /// Returns the messages it failed to hand over.
    fn flush(&mut self) -> impl Future<Output = u64> + Send {
        std::future::ready(0)
    }
    /// Starts driver task `task` where this system wants its senders to run (a tokio task
    /// by default) and returns its outcome.
    fn spawn<F>(&self, task: usize, fut: F) -> impl Future<Output = Result<F::Output>> + Send
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let _ = task;
        let handle = tokio::spawn(fut);
        async move { handle.await.context("a load task panicked") }
    }
}

/// Counters, the latency histogram and the in-flight cap of one run.
pub(crate) struct Shared {
    delivered: AtomicU64,
    latency: Arc<Mutex<Histogram<u64>>>,
    epoch: Instant,
    in_flight: Option<InFlight>,
}

impl Shared {
    fn new(in_flight: Option<usize>) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            delivered: AtomicU64::new(0),
            latency: Arc::new(Mutex::new(
                Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).context("histogram")?,
            )),
            epoch: Instant::now(),
            in_flight: in_flight.map(InFlight::new),
        }))
    }

    /// Waits for room under the cap (at once in open loop).
    #[inline]
    async fn acquire(&self) {
        if let Some(cap) = &self.in_flight {
            cap.acquire().await;
        }
    }

    /// One message (or request) left flight.
    #[inline]
    fn release(&self) {
        if let Some(cap) = &self.in_flight {
            cap.release();
        }
    }
}

/// A receiver's tally: counts locally, publishes every 256 and when flushed or dropped.
pub(crate) struct Counter {
    count: u64,
    samples: Samples,
    shared: Arc<Shared>,
}

impl Counter {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        Self {
            count: 0,
            samples: Samples::new(shared.latency.clone()),
            shared: shared.clone(),
        }
    }

    /// One message received: counted, its stamp read, its in-flight slot freed.
    #[inline]
    pub(crate) fn got(&mut self, body: &[u8]) {
        self.count += 1;
        self.shared.release();
        if let Some(sent) = read_stamp(body) {
            let now = self.shared.epoch.elapsed().as_nanos() as u64;
            self.samples.record(now.saturating_sub(sent) / 1000);
        }
        if self.count.is_multiple_of(256) {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        self.shared
            .delivered
            .fetch_add(std::mem::take(&mut self.count), Ordering::Relaxed);
        self.samples.flush();
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What the senders did.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    ok: u64,
    errors: u64,
    time: Duration,
}

/// Runs one workload on one system to the end and reports it. Fails if a message was lost.
pub async fn run(spec: PeerSpec) -> Result<PeerReport> {
    match spec.pattern {
        PeerPattern::Direct if spec.agents < 2 => bail!("direct needs at least 2 agents"),
        _ if spec.agents < 1 => bail!("--agents must be at least 1"),
        _ => {}
    }
    if spec.payload < crate::load::payload::STAMP_LEN {
        bail!("payload must hold the latency stamp");
    }
    if spec.in_flight == Some(0) {
        bail!("--in-flight must be at least 1 (or --open-loop)");
    }
    if let (System::FlumeVec50, Some(cap), false) = (
        spec.system,
        spec.in_flight,
        spec.pattern == PeerPattern::Request,
    ) {
        // Each task may hold a partial Vec per destination, each message holding a slot.
        let held = spec.tasks() * spec.agents * (HAND_BATCH - 1);
        if held >= cap {
            bail!("flume-vec50 could hold {held} unsent messages, not under an in-flight cap of {cap}: use --open-loop or fewer agents");
        }
    }
    let shared = Shared::new(spec.in_flight)?;
    let (sent, drain) = match spec.system {
        System::Swarmbus => {
            swarmbus_peer::run(&spec, &shared, swarmbus_peer::Flavor::Plain).await?
        }
        System::SwarmbusSpawned => {
            swarmbus_peer::run(&spec, &shared, swarmbus_peer::Flavor::Spawned).await?
        }
        System::SwarmbusGroup => {
            swarmbus_peer::run(&spec, &shared, swarmbus_peer::Flavor::Group).await?
        }
        System::Flume => flume_peer::run(&spec, &shared, 1).await?,
        System::FlumeVec50 => flume_peer::run(&spec, &shared, HAND_BATCH).await?,
        System::Tokio => tokio_peer::run(&spec, &shared).await?,
        System::Kameo => kameo_peer::run(&spec, &shared).await?,
        System::Ractor => ractor_peer::run(&spec, &shared).await?,
        System::Actix => actix_peer::run(&spec, &shared).await?,
    };
    let received = shared.delivered.load(Ordering::Relaxed);
    let hist = shared
        .latency
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?
        .clone();
    let busy = (sent.time + drain).as_secs_f64().max(1e-9);
    let lost = sent.ok.saturating_sub(received);
    let report = PeerReport {
        system: spec.system.as_str().into(),
        pattern: spec.pattern.as_str().into(),
        workload: spec.workload(),
        agents: spec.agents,
        senders: spec.tasks(),
        payload: spec.payload,
        in_flight: spec.in_flight,
        threads: spec.threads,
        duration_s: sent.time.as_secs_f64(),
        drain_s: drain.as_secs_f64(),
        messages_sent: sent.ok,
        messages: received,
        messages_lost: lost,
        send_errors: sent.errors,
        per_sec: received as f64 / busy,
        latency_us: PeerLatency {
            p50: hist.value_at_quantile(0.5) as f64,
            p99: hist.value_at_quantile(0.99) as f64,
            p999: hist.value_at_quantile(0.999) as f64,
            max: hist.max() as f64,
            samples: hist.len(),
        },
        mailbox: spec.system.mailbox(),
        machine: crate::load::machine(),
    };
    if lost != 0 {
        bail!(
            "{} {}: {lost} messages lost (sent {}, received {received})",
            spec.system.as_str(),
            spec.workload(),
            sent.ok
        );
    }
    if received > sent.ok {
        bail!(
            "{} {}: received {received} but only {} were sent",
            spec.system.as_str(),
            spec.workload(),
            sent.ok
        );
    }
    Ok(report)
}

/// Drives the workload through `mesh` until the duration is up.
pub(crate) async fn drive<M: Mesh>(
    mesh: &M,
    spec: &PeerSpec,
    shared: &Arc<Shared>,
) -> Result<Sent> {
    let deadline = Instant::now() + spec.duration;
    let started = Instant::now();
    let tasks = spec.tasks();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let own = mesh.clone();
        let shared = shared.clone();
        let pattern = spec.pattern;
        let every = spec.low_load_every;
        let payloads = PayloadMaker::new(
            &PayloadSpec::Fixed(spec.payload),
            shared.epoch,
            t as u64 + 1,
        );
        let seed = t as u64 + 7;
        let fut = async move {
            match pattern {
                PeerPattern::Direct => {
                    direct_task(own, payloads, shared, t, tasks, seed, deadline).await
                }
                PeerPattern::OneToOne => pair_task(own, payloads, shared, t, deadline).await,
                PeerPattern::LowLoad => paced_task(own, payloads, shared, t, every, deadline).await,
                PeerPattern::Request => {
                    request_task(own, payloads, shared, t, seed, deadline).await
                }
            }
        };
        handles.push(mesh.spawn(t, fut));
    }
    let mut sent = Sent::default();
    for h in handles {
        let (ok, errors) = h.await?;
        sent.ok += ok;
        sent.errors += errors;
    }
    sent.time = started.elapsed();
    Ok(sent)
}

fn keep_going(i: u64, deadline: Instant) -> bool {
    // Checking the clock costs; every 64 operations is often enough (as in swarm-load).
    !i.is_multiple_of(64) || Instant::now() < deadline
}

/// One message under the cap: `(ok, errors)` of the send.
#[inline]
async fn send_one<M: Mesh>(
    mesh: &mut M,
    shared: &Shared,
    from: usize,
    to: usize,
    body: Bytes,
) -> (u64, u64) {
    shared.acquire().await;
    if mesh.send(from, to, body).await {
        (1, 0)
    } else {
        // Never reaches a receiver: its slot is free again.
        shared.release();
        (0, 1)
    }
}

/// The end of a sending task: what the mesh still held is handed over.
async fn finish<M: Mesh>(mut mesh: M, ok: u64, errors: u64) -> (u64, u64) {
    let failed = mesh.flush().await;
    (ok - failed.min(ok), errors + failed)
}

/// Sends from this task's share of the agents to random peers.
async fn direct_task<M: Mesh>(
    mut mesh: M,
    mut payloads: PayloadMaker,
    shared: Arc<Shared>,
    index: usize,
    count: usize,
    seed: u64,
    deadline: Instant,
) -> (u64, u64) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let n = mesh.len();
    let mine: Vec<usize> = (index % n..n).step_by(count.max(1)).collect();
    let mine = if mine.is_empty() {
        (0..n).collect()
    } else {
        mine
    };
    let (mut i, mut ok, mut errors) = (0u64, 0u64, 0u64);
    while keep_going(i, deadline) {
        let from = mine[i as usize % mine.len()];
        let mut to = rng.random_range(0..n);
        if to == from {
            to = (i as usize + 1) % n;
        }
        let body = payloads.make(i.is_multiple_of(SAMPLE_EVERY));
        let (o, e) = send_one(&mut mesh, &shared, from, to, body).await;
        ok += o;
        errors += e;
        i += 1;
    }
    finish(mesh, ok, errors).await
}

/// Sending task `index` feeds agent `index % agents`, flat out (under the cap).
async fn pair_task<M: Mesh>(
    mut mesh: M,
    mut payloads: PayloadMaker,
    shared: Arc<Shared>,
    index: usize,
    deadline: Instant,
) -> (u64, u64) {
    let n = mesh.len();
    let (from, to) = (n + index, index % n);
    let (mut i, mut ok, mut errors) = (0u64, 0u64, 0u64);
    while keep_going(i, deadline) {
        let body = payloads.make(i.is_multiple_of(SAMPLE_EVERY));
        let (o, e) = send_one(&mut mesh, &shared, from, to, body).await;
        ok += o;
        errors += e;
        i += 1;
    }
    finish(mesh, ok, errors).await
}

/// One stamped message every `every` to agent `index % agents`: every latency is recorded.
async fn paced_task<M: Mesh>(
    mut mesh: M,
    mut payloads: PayloadMaker,
    shared: Arc<Shared>,
    index: usize,
    every: Duration,
    deadline: Instant,
) -> (u64, u64) {
    let n = mesh.len();
    let (from, to) = (n + index, index % n);
    let mut tick = tokio::time::interval(every);
    // A late tick sends one message, not a burst: the load stays low.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut ok, mut errors) = (0u64, 0u64);
    loop {
        tick.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let (o, e) = send_one(&mut mesh, &shared, from, to, payloads.make(true)).await;
        ok += o;
        errors += e;
    }
    finish(mesh, ok, errors).await
}

/// Request → reply round trips to random responders; every one is timed.
async fn request_task<M: Mesh>(
    mut mesh: M,
    mut payloads: PayloadMaker,
    shared: Arc<Shared>,
    index: usize,
    seed: u64,
    deadline: Instant,
) -> (u64, u64) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut samples = Samples::new(shared.latency.clone());
    let n = mesh.len();
    let from = n + index;
    let (mut i, mut ok, mut errors) = (0u64, 0u64, 0u64);
    while keep_going(i, deadline) {
        let to = rng.random_range(0..n);
        let t0 = Instant::now();
        shared.acquire().await;
        let answered = mesh
            .request(from, to, payloads.make(false), REQUEST_TIMEOUT)
            .await;
        shared.release();
        if answered {
            samples.record(t0.elapsed().as_micros() as u64);
            ok += 1;
        } else {
            errors += 1;
        }
        i += 1;
    }
    // A round trip counts as received when its reply arrived.
    shared.delivered.fetch_add(ok, Ordering::Relaxed);
    finish(mesh, ok, errors).await
}

/// Waits for receive tasks to finish, at most 60 s.
pub(crate) async fn join_all(handles: Vec<tokio::task::JoinHandle<()>>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for h in handles {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, h)
            .await
            .context("receivers did not drain within 60 s")?
            .context("a receiver panicked")?;
    }
    Ok(())
}
