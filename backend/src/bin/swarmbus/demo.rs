//! The demo swarm behind `swarmbus hub --demo`: agents that really talk, so every chart of
//! the dashboard and every metric has live data.
//!
//! Each agent has a receiver (answers requests, decodes payloads) and a driver that sends at
//! a rate following a sine wave: direct messages, topic publishes (some over 1 KiB of
//! compressible JSON, a few incompressible), requests, critical alerts and the odd
//! broadcast. A firehose agent bursts into a sink so batches fill to `max_messages`; every
//! eighth agent pauses now and then so its mailbox backs up; two drivers push CPU work
//! through [`Hub::submit`] and [`Hub::submit_batch`] at the same varying rate. A pool of
//! three spawned, supervised summarizers (group `summarizers`, capability `summarize`, one
//! of them slower, each failing now and then and restarted) takes requests by group and
//! by capability.

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use swarmbus::{AgentId, AgentSender, Context, Envelope, Error, Hub, Priority, Restart, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

const TOPICS: [&str; 4] = ["telemetry", "alerts", "market", "ops"];

/// Settings of the demo swarm.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Agents in the swarm (at least 4).
    pub agents: usize,
    /// Mean messages per second each agent's driver starts.
    pub rate_per_agent: f64,
    /// Period of the sine wave the load follows.
    pub period: Duration,
    /// Mean CPU tasks per second submitted to the worker pool.
    pub tasks_per_second: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            agents: 50,
            rate_per_agent: 8.0,
            period: Duration::from_secs(60),
            tasks_per_second: 40.0,
        }
    }
}

/// A running demo swarm.
#[derive(Debug)]
pub struct Demo {
    stop: watch::Sender<bool>,
    drivers: Vec<JoinHandle<()>>,
    receivers: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Registers the agents and starts their tasks on the current runtime.
    pub fn start(hub: &Hub, options: DemoOptions) -> Result<Demo> {
        let n = options.agents.max(4);
        let (stop, stopped) = watch::channel(false);
        let started = Instant::now();
        let load = Load {
            started,
            period: options.period.as_secs_f64().max(1.0),
        };
        let mut agents = Vec::with_capacity(n);
        for i in 0..n {
            let name = match i {
                0 => "sink".to_string(),
                1 => "firehose".to_string(),
                i if i % 8 == 7 => format!("slow-{i}"),
                i => format!("agent-{i}"),
            };
            let agent = hub.register(name)?;
            agent.subscribe(TOPICS[i % TOPICS.len()])?;
            if i % 3 == 0 {
                agent.subscribe("telemetry")?;
            }
            agents.push(agent);
        }
        spawn_summarizers(hub)?;
        let peers: Arc<Vec<AgentId>> = Arc::new(agents.iter().map(|a| a.id()).collect());
        let mut drivers = Vec::new();
        let mut receivers = Vec::new();
        for (i, agent) in agents.into_iter().enumerate() {
            let sender = agent.sender();
            let slow = i % 8 == 7;
            receivers.push(tokio::spawn(receive(agent, slow, started)));
            let ctx = Driver {
                me: i,
                sender,
                peers: peers.clone(),
                rng: Rng::seeded(i as u64),
                load,
                rate: options.rate_per_agent,
                stopped: stopped.clone(),
            };
            drivers.push(if i == 1 {
                tokio::spawn(ctx.firehose(peers[0]))
            } else {
                tokio::spawn(ctx.chatter())
            });
        }
        for k in 0..2u64 {
            drivers.push(tokio::spawn(cpu_driver(
                hub.clone(),
                load,
                options.tasks_per_second / 2.0,
                Rng::seeded(1_000 + k),
                stopped.clone(),
            )));
        }
        tracing::info!(agents = n, "demo swarm started");
        Ok(Demo {
            stop,
            drivers,
            receivers,
        })
    }

    /// Stops the drivers and waits (bounded) for them; receivers go on until the hub shuts
    /// down and their mailboxes are drained.
    pub async fn stop_drivers(&mut self) {
        let _ = self.stop.send(true);
        join_bounded(std::mem::take(&mut self.drivers), Duration::from_secs(5)).await;
    }

    /// Waits (bounded) for the receivers to drain after `Hub::shutdown`.
    pub async fn join(mut self) {
        self.stop_drivers().await;
        join_bounded(std::mem::take(&mut self.receivers), Duration::from_secs(5)).await;
    }
}

async fn join_bounded(tasks: Vec<JoinHandle<()>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// The group of spawned summarizers.
const SUMMARIZERS: &str = "summarizers";

/// Three supervised summarizers in one group: "work" takes 2 ms (6 ms for the third), and
/// one call in 50 fails like a model call that timed out, so the agent restarts.
fn spawn_summarizers(hub: &Hub) -> Result<()> {
    let patient = Restart {
        max_restarts: 1_000,
        within: Duration::from_secs(60),
        backoff: Duration::from_millis(10),
    };
    for k in 0..3u64 {
        let work = Duration::from_millis(if k == 2 { 6 } else { 2 });
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handle = hub.spawn_with(
            format!("summarizer-{k}"),
            ["summarize"],
            move |ctx: Context, env: Envelope| {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    sleep(work).await;
                    if n % 50 == 49 {
                        return Err("the model call timed out".to_string());
                    }
                    if env.is_request() {
                        ctx.reply(&env, r#"{"summary":"all nominal"}"#)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            },
            patient,
        )?;
        handle.join_group(SUMMARIZERS)?;
    }
    Ok(())
}

/// The sine wave all drivers follow: 0.2x to 1.8x of the mean rate.
#[derive(Debug, Clone, Copy)]
struct Load {
    started: Instant,
    period: f64,
}

impl Load {
    fn factor(&self) -> f64 {
        let t = self.started.elapsed().as_secs_f64();
        1.0 + 0.8 * (TAU * t / self.period).sin()
    }

    /// Time to the next event of a Poisson-ish process at `rate` per second, scaled by load.
    fn gap(&self, rate: f64, rng: &mut Rng) -> Duration {
        let rate = (rate * self.factor()).max(0.05);
        let jitter = 0.5 + rng.unit();
        Duration::from_secs_f64((jitter / rate).min(20.0))
    }
}

/// xorshift64*: cheap varied choices for the demo traffic.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn seeded(k: u64) -> Rng {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((now ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Driver {
    me: usize,
    sender: AgentSender,
    peers: Arc<Vec<AgentId>>,
    rng: Rng,
    load: Load,
    rate: f64,
    stopped: watch::Receiver<bool>,
}

impl Driver {
    fn peer(&mut self) -> AgentId {
        let mut i = self.rng.below(self.peers.len());
        if i == self.me {
            i = (i + 1) % self.peers.len();
        }
        self.peers[i]
    }

    /// Sleeps `gap`; false when the demo is stopping.
    async fn pause(&mut self, gap: Duration) -> bool {
        tokio::select! {
            _ = sleep(gap) => !*self.stopped.borrow(),
            _ = self.stopped.changed() => false,
        }
    }

    async fn chatter(mut self) {
        let mut seq = 0u64;
        loop {
            let gap = self.load.gap(self.rate, &mut self.rng);
            if !self.pause(gap).await {
                return;
            }
            seq += 1;
            if let Err(e) = self.act(seq).await {
                if matches!(e, Error::ShuttingDown) {
                    return;
                }
                tracing::debug!(agent = self.me, error = %e, "demo send failed");
            }
        }
    }

    async fn act(&mut self, seq: u64) -> Result<()> {
        let roll = self.rng.below(100);
        let to = self.peer();
        match roll {
            0..=49 => {
                let msg = format!(r#"{{"from":{},"seq":{seq},"kind":"hello"}}"#, self.me);
                self.sender.send(to, msg).await?;
            }
            50..=69 => {
                let topic = TOPICS[self.rng.below(TOPICS.len())];
                let body = if self.rng.below(2) == 0 {
                    report(self.me, seq, &mut self.rng)
                } else {
                    format!(r#"{{"from":{},"seq":{seq},"topic":"{topic}"}}"#, self.me)
                };
                self.sender.publish(topic, body).await?;
            }
            70..=75 => {
                let question = format!(r#"{{"from":{},"seq":{seq},"ask":"status"}}"#, self.me);
                self.sender
                    .request(to, question, Duration::from_millis(750))
                    .await?;
            }
            76..=78 => {
                let text = format!(
                    r#"{{"from":{},"seq":{seq},"summarize":"the log"}}"#,
                    self.me
                );
                self.sender
                    .request_group(SUMMARIZERS, text, Duration::from_millis(750))
                    .await?;
            }
            79..=81 => {
                let text = format!(
                    r#"{{"from":{},"seq":{seq},"summarize":"a report"}}"#,
                    self.me
                );
                self.sender
                    .request_capability("summarize", text, Duration::from_millis(750))
                    .await?;
            }
            82..=85 => {
                let alert = format!(r#"{{"from":{},"seq":{seq},"alert":"threshold"}}"#, self.me);
                self.sender.send_with(to, alert, Priority::Critical).await?;
            }
            86 => {
                let note = format!(r#"{{"from":{},"seq":{seq},"kind":"roll-call"}}"#, self.me);
                self.sender.broadcast(note).await?;
            }
            87..=88 => {
                // Random bytes: gzip cannot shrink them, so they count as incompressible.
                let noise: Vec<u8> = (0..256)
                    .flat_map(|_| self.rng.next().to_le_bytes())
                    .collect();
                self.sender.send_with(to, noise, Priority::Low).await?;
            }
            _ => {
                let body = report(self.me, seq, &mut self.rng);
                self.sender.send_with(to, body, Priority::High).await?;
            }
        }
        Ok(())
    }

    /// Bursts into the sink so batches reach `max_messages` and flush by size.
    async fn firehose(mut self, sink: AgentId) {
        let mut seq = 0u64;
        loop {
            let gap = self.load.gap(2.0, &mut self.rng);
            if !self.pause(gap).await {
                return;
            }
            let burst = 60 + self.rng.below(120);
            for _ in 0..burst {
                seq += 1;
                let msg = format!(r#"{{"from":"firehose","seq":{seq}}}"#);
                match self.sender.send(sink, msg).await {
                    Ok(_) => {}
                    Err(Error::ShuttingDown) => return,
                    Err(e) => tracing::debug!(error = %e, "firehose send failed"),
                }
            }
        }
    }
}

/// A telemetry report of about 2-3 KiB of repetitive JSON: compresses well.
fn report(me: usize, seq: u64, rng: &mut Rng) -> String {
    let mut out = format!(r#"{{"sensor":"agent-{me}","seq":{seq},"unit":"celsius","readings":["#);
    for k in 0..48 {
        if k > 0 {
            out.push(',');
        }
        let value = 20.0 + rng.unit() * 5.0;
        out.push_str(&format!(
            r#"{{"index":{k},"value":{value:.1},"status":"nominal","calibrated":true}}"#
        ));
    }
    out.push_str("]}");
    out
}

async fn receive(mut agent: swarmbus::Agent, slow: bool, started: Instant) {
    while let Some(env) = agent.recv().await {
        if slow {
            // A slow consumer stalls for 0.8 s of every 4 s, so its mailbox backs up.
            let phase = started.elapsed().as_millis() % 4_000;
            if phase < 800 {
                sleep(Duration::from_millis((800 - phase) as u64)).await;
            }
        }
        let len = env.payload().bytes().map(|b| b.len()).unwrap_or(0);
        if env.is_request() {
            let answer = format!(r#"{{"status":"ok","bytes":{len}}}"#);
            if let Err(e) = agent.reply(&env, answer).await {
                if matches!(e, Error::ShuttingDown) {
                    continue;
                }
                tracing::debug!(error = %e, "demo reply failed");
            }
        }
    }
}

/// CPU work at the same varying rate: single units and, now and then, a batch.
async fn cpu_driver(
    hub: Hub,
    load: Load,
    rate: f64,
    mut rng: Rng,
    mut stopped: watch::Receiver<bool>,
) {
    let priorities = [
        Priority::Low,
        Priority::Normal,
        Priority::Normal,
        Priority::High,
    ];
    let mut n = 0u64;
    loop {
        let gap = load.gap(rate, &mut rng);
        tokio::select! {
            _ = sleep(gap) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        n += 1;
        let priority = priorities[rng.below(priorities.len())];
        let seed = rng.next();
        let result = if n.is_multiple_of(25) {
            let units = (0..8u64).map(|k| move || crunch(seed ^ k, 50_000));
            hub.submit_batch(priority, units)
                .await
                .map(|v| v.len() as u64)
        } else {
            hub.submit(priority, move || crunch(seed, 200_000)).await
        };
        match result {
            Ok(_) => {}
            Err(Error::ShuttingDown) => return,
            Err(e) => tracing::debug!(error = %e, "demo task failed"),
        }
    }
}

/// A deterministic CPU burn whose result is used, so it is not optimised away.
fn crunch(seed: u64, rounds: u32) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut acc = 0u64;
    for _ in 0..rounds {
        acc = acc.wrapping_add(rng.next() >> 7);
    }
    acc
}
