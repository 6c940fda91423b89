//! `swarm-load --pattern churn`: short-lived agents come and go while the long-lived swarm
//! does `direct` traffic.
//!
//! Each churn task registers short-lived agents at its share of `--churn-rate` (paced; a
//! debt older than [`MAX_DEBT`] is forgiven, so a slow hub shows as a lower achieved rate,
//! not as a burst). A long-lived agent sends each one message; the short-lived agent waits
//! for it (at most `--churn-timeout`) and is dropped. At most `--churn-in-flight` short-lived
//! agents exist at once. A short-lived agent that never got its message counts as `missed`.

use super::report::{ChurnCompare, ChurnReport, Latency, Report};
use super::LoadSpec;
use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use swarmbus::{Agent, AgentSender, Hub};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pacing debt older than this is dropped instead of caught up in one burst.
pub const MAX_DEBT: Duration = Duration::from_millis(100);

/// One short-lived agent in this many records its send-to-receipt latency.
const LATENCY_EVERY: u64 = 16;

/// Counters of the churn tasks and their short-lived agents.
#[derive(Debug, Default)]
pub(crate) struct ChurnTally {
    registered: AtomicU64,
    register_errors: AtomicU64,
    sent: AtomicU64,
    send_errors: AtomicU64,
    delivered: AtomicU64,
    missed: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// The churn side of one run: started next to the direct traffic, finished after shutdown.
pub(crate) struct Churn {
    tally: Arc<ChurnTally>,
    latency: Arc<Mutex<Histogram<u64>>>,
    slots: Arc<Semaphore>,
    in_flight_limit: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
    stopped: Option<Instant>,
    rate: u64,
    timeout: Duration,
}

impl Churn {
    /// Starts `spec.churn_tasks` tasks that churn until `running` is false or `deadline`.
    pub(crate) fn start(
        spec: &LoadSpec,
        hub: &Hub,
        senders: &[AgentSender],
        running: Arc<AtomicBool>,
        deadline: Instant,
    ) -> Result<Self> {
        let in_flight_limit = spec.churn_in_flight.max(1);
        let latency = Arc::new(Mutex::new(
            Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).context("histogram")?,
        ));
        let mut churn = Churn {
            tally: Arc::new(ChurnTally::default()),
            latency,
            slots: Arc::new(Semaphore::new(in_flight_limit)),
            in_flight_limit,
            tasks: Vec::new(),
            started: Instant::now(),
            stopped: None,
            rate: spec.churn_rate,
            timeout: spec.churn_timeout,
        };
        if spec.churn_rate == 0 || senders.is_empty() {
            return Ok(churn);
        }
        let tasks = spec.churn_tasks.max(1);
        let size = match spec.payload {
            super::payload::PayloadSpec::Fixed(n) => n,
            super::payload::PayloadSpec::Mixed => 64,
        };
        let payload = Bytes::from(vec![0x5a; size]);
        for t in 0..tasks {
            // Each task sends from its own share of the long-lived agents.
            let mut mine: Vec<AgentSender> =
                senders.iter().skip(t).step_by(tasks).cloned().collect();
            if mine.is_empty() {
                mine = senders.to_vec();
            }
            let job = ChurnJob {
                hub: hub.clone(),
                senders: mine,
                payload: payload.clone(),
                rate: spec.churn_rate as f64 / tasks as f64,
                running: running.clone(),
                deadline,
                tally: churn.tally.clone(),
                latency: churn.latency.clone(),
                slots: churn.slots.clone(),
                timeout: spec.churn_timeout,
            };
            churn.tasks.push(tokio::spawn(job.run()));
        }
        Ok(churn)
    }

    /// Waits for the churn tasks to stop registering (they stop at the deadline).
    pub(crate) async fn stop_registering(&mut self) -> Result<()> {
        for t in self.tasks.drain(..) {
            t.await.context("a churn task panicked")?;
        }
        self.stopped = Some(Instant::now());
        Ok(())
    }

    /// Waits until every short-lived agent got its message or gave up, then reports.
    pub(crate) async fn finish(self) -> Result<ChurnReport> {
        let limit = u32::try_from(self.in_flight_limit).unwrap_or(u32::MAX);
        // Every short-lived agent holds a slot until it is dropped; its wait is bounded by
        // the churn timeout, so this is too.
        let _all = tokio::time::timeout(
            self.timeout + Duration::from_secs(5),
            self.slots.acquire_many(limit),
        )
        .await
        .context("short-lived agents did not finish within their timeout")?
        .context("churn slots closed")?;
        let t = &self.tally;
        let registered = t.registered.load(Ordering::Relaxed);
        let churn_secs = self
            .stopped
            .unwrap_or_else(Instant::now)
            .duration_since(self.started)
            .as_secs_f64()
            .max(1e-9);
        let hist = self
            .latency
            .lock()
            .map_err(|_| anyhow::anyhow!("churn latency histogram poisoned"))?
            .clone();
        Ok(ChurnReport {
            rate_target: self.rate,
            registered,
            registered_per_sec: registered as f64 / churn_secs,
            register_errors: t.register_errors.load(Ordering::Relaxed),
            messages_sent: t.sent.load(Ordering::Relaxed),
            send_errors: t.send_errors.load(Ordering::Relaxed),
            messages_delivered: t.delivered.load(Ordering::Relaxed),
            messages_missed: t.missed.load(Ordering::Relaxed),
            max_in_flight: t.max_in_flight.load(Ordering::Relaxed),
            in_flight_limit: self.in_flight_limit as u64,
            latency_us: Latency {
                p50: hist.value_at_quantile(0.5) as f64,
                p99: hist.value_at_quantile(0.99) as f64,
                p999: hist.value_at_quantile(0.999) as f64,
                max: hist.max() as f64,
                samples: hist.len(),
            },
            compare: None,
        })
    }
}

/// One churn task.
struct ChurnJob {
    hub: Hub,
    senders: Vec<AgentSender>,
    payload: Bytes,
    /// Short-lived agents per second for this task.
    rate: f64,
    running: Arc<AtomicBool>,
    deadline: Instant,
    tally: Arc<ChurnTally>,
    latency: Arc<Mutex<Histogram<u64>>>,
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl ChurnJob {
    async fn run(self) {
        let mut origin = Instant::now();
        let mut due_count = 0u64;
        let mut i = 0u64;
        loop {
            if i.is_multiple_of(64)
                && (!self.running.load(Ordering::Relaxed) || Instant::now() >= self.deadline)
            {
                break;
            }
            // Pace: operation `due_count` is due at origin + due_count / rate.
            let due = origin + Duration::from_secs_f64(due_count as f64 / self.rate);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            } else if now - due > MAX_DEBT {
                (origin, due_count) = (now, 0);
            }
            due_count += 1;
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                break;
            };
            i += 1;
            let agent = match self.hub.register("churn") {
                Ok(a) => a,
                Err(swarmbus::Error::ShuttingDown) => break,
                Err(_) => {
                    self.tally.register_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            self.tally.registered.fetch_add(1, Ordering::Relaxed);
            let from = &self.senders[i as usize % self.senders.len()];
            let sent_at = Instant::now();
            match from.send(agent.id(), self.payload.clone()).await {
                Ok(_) => {
                    let n = self.tally.sent.fetch_add(1, Ordering::Relaxed);
                    let flying = self.tally.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                    self.tally
                        .max_in_flight
                        .fetch_max(flying, Ordering::Relaxed);
                    let sample = n
                        .is_multiple_of(LATENCY_EVERY)
                        .then(|| self.latency.clone());
                    tokio::spawn(await_one(
                        agent,
                        slot,
                        sent_at,
                        self.timeout,
                        self.tally.clone(),
                        sample,
                    ));
                }
                Err(swarmbus::Error::ShuttingDown) => break,
                Err(_) => {
                    self.tally.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A short-lived agent: waits for its one message, then is dropped.
async fn await_one(
    mut agent: Agent,
    slot: OwnedSemaphorePermit,
    sent_at: Instant,
    timeout: Duration,
    tally: Arc<ChurnTally>,
    sample: Option<Arc<Mutex<Histogram<u64>>>>,
) {
    match tokio::time::timeout(timeout, agent.recv()).await {
        Ok(Some(_)) => {
            if let Some(Ok(mut h)) = sample.as_ref().map(|h| h.lock()) {
                h.saturating_record((sent_at.elapsed().as_micros() as u64).max(1));
            }
            tally.delivered.fetch_add(1, Ordering::Relaxed);
        }
        // Timed out, or the hub shut down without it: counted, never hidden.
        _ => {
            tally.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(agent);
    tally.in_flight.fetch_sub(1, Ordering::Relaxed);
    drop(slot);
}

/// `--churn-compare`: the same spec without churn, then with it, in this process; the
/// report is the run with churn, its `churn.compare` holds the run without and the ratio.
pub async fn compare(spec: LoadSpec) -> Result<Report> {
    let mut quiet = spec.clone();
    quiet.churn_rate = 0;
    let without = super::run(quiet).await.context("the run without churn")?;
    let mut with = super::run(spec).await.context("the run with churn")?;
    if let Some(c) = with.churn.as_mut() {
        c.compare = Some(ChurnCompare {
            without_msgs_per_sec: without.msgs_per_sec,
            without_messages_delivered: without.messages_delivered,
            without_duration_s: without.duration_s,
            with_msgs_per_sec: with.msgs_per_sec,
            ratio: with.msgs_per_sec / without.msgs_per_sec.max(1e-9),
        });
    }
    Ok(with)
}
