//! Peers: swarm-load's `direct` and `request` workloads on other message-passing systems,
//! so swarmbus is compared with them in the same run, on the same machine.
//!
//! The drivers are shared: the same payloads (one fresh 64-byte buffer per message, one in
//! [`SAMPLE_EVERY`] stamped for latency), the same two sending tasks round-robining over
//! their half of the agents to random peers, the same 100 requesters with a 10 s timeout,
//! and the same clock: throughput counts until the last message is in its receiver's hands.
//! Only received messages (and answered round trips) are counted.

mod flume_peer;
mod kameo_peer;
mod ractor_peer;
mod tokio_peer;

use crate::load::payload::{read_stamp, PayloadMaker, PayloadSpec};
use crate::load::{Samples, SAMPLE_EVERY};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
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

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// One unbounded flume channel per agent; replies over a tokio oneshot.
    Flume,
    /// One bounded (1024) tokio mpsc channel per agent; replies over a tokio oneshot.
    Tokio,
    /// One kameo actor per agent, bounded (1024) mailbox; `tell` and `ask`.
    Kameo,
    /// One ractor actor per agent (unbounded); `cast` and `call`.
    Ractor,
}

impl FromStr for System {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "flume" => System::Flume,
            "tokio" => System::Tokio,
            "kameo" => System::Kameo,
            "ractor" => System::Ractor,
            _ => {
                return Err(format!(
                    "unknown system `{s}` (flume, tokio, kameo, ractor)"
                ))
            }
        })
    }
}

impl System {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            System::Flume => "flume",
            System::Tokio => "tokio",
            System::Kameo => "kameo",
            System::Ractor => "ractor",
        }
    }

    /// What an agent's mailbox is, for the report.
    pub fn mailbox(self) -> String {
        match self {
            System::Flume => "flume::unbounded per agent, tokio oneshot replies".into(),
            System::Tokio => {
                format!("tokio::sync::mpsc::channel({BOUNDED_CAPACITY}) per agent, tokio oneshot replies")
            }
            System::Kameo => {
                format!("kameo actor per agent, mailbox::bounded({BOUNDED_CAPACITY}), tell/ask")
            }
            System::Ractor => "ractor actor per agent (unbounded), cast/call".into(),
        }
    }
}

/// The workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerPattern {
    /// Two sending tasks, random peers, 64-byte owned buffers.
    Direct,
    /// Concurrent requesters, request → reply with a timeout.
    Request,
}

impl FromStr for PeerPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "direct" => Ok(PeerPattern::Direct),
            "request" => Ok(PeerPattern::Request),
            _ => Err(format!("unknown pattern `{s}` (direct, request)")),
        }
    }
}

impl PeerPattern {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerPattern::Direct => "direct",
            PeerPattern::Request => "request",
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
    /// Agents (receivers, or responders for `request`).
    pub agents: usize,
    /// How long to send.
    pub duration: Duration,
    /// Sending tasks for `direct`.
    pub senders: usize,
    /// Concurrent requesters for `request`.
    pub requesters: usize,
    /// Payload bytes.
    pub payload: usize,
}

impl PeerSpec {
    /// A spec with swarm-load's defaults.
    pub fn new(system: System, pattern: PeerPattern, agents: usize, duration: Duration) -> Self {
        Self {
            system,
            pattern,
            agents,
            duration,
            senders: 2,
            requesters: 100,
            payload: 64,
        }
    }
}

/// Latency percentiles in microseconds, as `swarm-load` reports them.
pub type PeerLatency = crate::load::report::Latency;

/// One peer run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerReport {
    /// `flume`, `tokio`, `kameo` or `ractor`.
    pub system: String,
    /// `direct` or `request`.
    pub pattern: String,
    /// Agents.
    pub agents: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Seconds from the end of sending until every receiver had everything.
    pub drain_s: f64,
    /// Messages (or requests) accepted by the system.
    pub messages_sent: u64,
    /// Messages received (direct) or round trips answered (request).
    pub messages: u64,
    /// Sent minus received.
    pub messages_lost: u64,
    /// Sends (or requests) that failed or timed out.
    pub send_errors: u64,
    /// Received per second, from the first send until the last message was received.
    pub per_sec: f64,
    /// One-way latency (direct, sampled) or round trip (request, every one).
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
        format!(
            "  {:<22} {} / {}\n  {:<22} {}\n  {:<22} {:.2} s sending + {:.2} s draining\n  {:<22} {} / {} (lost {}, errors {})\n  {:<22} {:.0}/s\n  {:<22} p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}\n",
            "system / pattern", self.system, self.pattern,
            "agents", self.agents,
            "duration", self.duration_s, self.drain_s,
            "sent / received", self.messages_sent, self.messages, self.messages_lost, self.send_errors,
            "throughput", self.per_sec,
            "latency µs", l.p50, l.p99, l.p999, l.max,
        )
    }
}

/// The operations a peer offers the drivers; `to` indexes the agents.
pub(crate) trait Mesh: Clone + Send + Sync + 'static {
    /// Agents.
    fn len(&self) -> usize;
    /// One-way send; true when the system accepted it.
    fn send(&self, to: usize, body: Bytes) -> impl Future<Output = bool> + Send;
    /// Request and await the reply; `None` on error or timeout.
    fn request(
        &self,
        to: usize,
        body: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Option<Bytes>> + Send;
}

/// Counters and the latency histogram of one run.
pub(crate) struct Shared {
    delivered: AtomicU64,
    latency: Arc<Mutex<Histogram<u64>>>,
    epoch: Instant,
}

impl Shared {
    fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            delivered: AtomicU64::new(0),
            latency: Arc::new(Mutex::new(
                Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).context("histogram")?,
            )),
            epoch: Instant::now(),
        }))
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

    /// One message received.
    #[inline]
    pub(crate) fn got(&mut self, body: &[u8]) {
        self.count += 1;
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

/// Runs one peer workload to the end and reports it. Fails if a message was lost.
pub async fn run(spec: PeerSpec) -> Result<PeerReport> {
    if spec.agents < 2 {
        bail!("--agents must be at least 2");
    }
    if spec.payload < crate::load::payload::STAMP_LEN {
        bail!("payload must hold the latency stamp");
    }
    let shared = Shared::new()?;
    let (sent, drain) = match spec.system {
        System::Flume => flume_peer::run(&spec, &shared).await?,
        System::Tokio => tokio_peer::run(&spec, &shared).await?,
        System::Kameo => kameo_peer::run(&spec, &shared).await?,
        System::Ractor => ractor_peer::run(&spec, &shared).await?,
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
        agents: spec.agents,
        payload: spec.payload,
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
            "{}: {lost} messages lost (sent {}, received {received})",
            spec.system.as_str(),
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
    let tasks = match spec.pattern {
        PeerPattern::Direct => spec.senders.max(1),
        PeerPattern::Request => spec.requesters.max(1),
    };
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let mesh = mesh.clone();
        let shared = shared.clone();
        let pattern = spec.pattern;
        let payload = PayloadSpec::Fixed(spec.payload);
        handles.push(tokio::spawn(async move {
            let payloads = PayloadMaker::new(&payload, shared.epoch, t as u64 + 1);
            match pattern {
                PeerPattern::Direct => {
                    direct_task(mesh, payloads, t, tasks, t as u64 + 7, deadline).await
                }
                PeerPattern::Request => {
                    request_task(mesh, payloads, shared, t as u64 + 7, deadline).await
                }
            }
        }));
    }
    let mut sent = Sent::default();
    for h in handles {
        let (ok, errors) = h.await.context("a load task panicked")?;
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

/// Sends from this task's share of the agents to random peers.
async fn direct_task<M: Mesh>(
    mesh: M,
    mut payloads: PayloadMaker,
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
        if mesh.send(to, payloads.make(i % SAMPLE_EVERY == 0)).await {
            ok += 1;
        } else {
            errors += 1;
        }
        i += 1;
    }
    (ok, errors)
}

/// Request → reply round trips to random responders; every one is timed.
async fn request_task<M: Mesh>(
    mesh: M,
    mut payloads: PayloadMaker,
    shared: Arc<Shared>,
    seed: u64,
    deadline: Instant,
) -> (u64, u64) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut samples = Samples::new(shared.latency.clone());
    let n = mesh.len();
    let (mut i, mut ok, mut errors) = (0u64, 0u64, 0u64);
    while keep_going(i, deadline) {
        let to = rng.random_range(0..n);
        let t0 = Instant::now();
        match mesh
            .request(to, payloads.make(false), REQUEST_TIMEOUT)
            .await
        {
            Some(_) => {
                samples.record(t0.elapsed().as_micros() as u64);
                ok += 1;
            }
            None => errors += 1,
        }
        i += 1;
    }
    // A round trip counts as received when its reply arrived.
    shared.delivered.fetch_add(ok, Ordering::Relaxed);
    (ok, errors)
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
