//! `swarm-load --nats`: cross-hub traffic through a NATS server, against raw async-nats
//! publish→subscribe of single messages in the same run.
//!
//! Two hubs in this process, each with its own NATS connection (exactly what two hosts
//! would have): senders on hub A, receivers on hub B, 64-byte (or `--payload`) messages to
//! random receivers. The raw run publishes single messages of the same size from one
//! connection to a subscriber on another.

use super::payload::PayloadMaker;
use super::{LoadSpec, Tally};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarmbus::nats::NatsConfig;
use swarmbus::{AgentId, Hub};

/// Raw async-nats measured in the same run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NatsBaseline {
    /// Messages published.
    pub published: u64,
    /// Messages the subscriber received.
    pub received: u64,
    /// Published minus received: dropped silently by the client or server.
    pub lost: u64,
    /// Received per second, until the subscriber stopped receiving.
    pub msgs_per_sec: f64,
    /// swarmbus cross-hub msgs/s divided by raw msgs/s.
    pub ratio: f64,
    /// Frames hub A published (batching on the wire).
    pub swarmbus_frames: u64,
    /// Messages per frame.
    pub messages_per_frame: f64,
}

/// Runs raw NATS then swarmbus across two hubs; fills `report.nats`.
pub async fn run(spec: &LoadSpec, url: &str) -> Result<super::report::Report> {
    let size = match spec.payload {
        super::payload::PayloadSpec::Fixed(n) => n,
        super::payload::PayloadSpec::Mixed => bail!("--nats takes a fixed --payload size"),
    };
    let raw = raw_nats(url, size, spec.duration).await?;
    let (mut report, frames) = cross_hub(spec, url).await?;
    let per_frame = if frames == 0 {
        0.0
    } else {
        report.messages_delivered as f64 / frames as f64
    };
    report.nats = Some(NatsBaseline {
        ratio: report.msgs_per_sec / raw.msgs_per_sec.max(1e-9),
        swarmbus_frames: frames,
        messages_per_frame: per_frame,
        ..raw
    });
    Ok(report)
}

async fn raw_nats(url: &str, size: usize, duration: Duration) -> Result<NatsBaseline> {
    let publisher = async_nats::connect(url)
        .await
        .context("connecting to NATS")?;
    let subscriber = async_nats::ConnectOptions::new()
        .subscription_capacity(262_144)
        .connect(url)
        .await
        .context("connecting to NATS")?;
    let subject = format!("swarmload.raw.{}", uuid_suffix());
    let mut sub = subscriber.subscribe(subject.clone()).await?;
    subscriber.flush().await?;
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(last_seen::Last::default());
    let counter = {
        let received = received.clone();
        let last = last.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                std::hint::black_box(m);
                received.fetch_add(1, Ordering::Relaxed);
                last.touch();
            }
        })
    };
    let body = Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    let deadline = start + duration;
    let mut published = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            publisher.publish(subject.clone(), body.clone()).await?;
        }
        published += 64;
    }
    publisher.flush().await?;
    // Wait until nothing new arrives for 200 ms (or everything did), at most 10 s.
    let wait_until = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < published
        && last.idle_for() < Duration::from_millis(200)
        && Instant::now() < wait_until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = received.load(Ordering::Relaxed);
    let busy = last.at().unwrap_or_else(Instant::now).duration_since(start);
    counter.abort();
    Ok(NatsBaseline {
        published,
        received: got,
        lost: published.saturating_sub(got),
        msgs_per_sec: got as f64 / busy.as_secs_f64().max(1e-9),
        ..NatsBaseline::default()
    })
}

async fn cross_hub(spec: &LoadSpec, url: &str) -> Result<(super::report::Report, u64)> {
    let swarm = format!("load{}", uuid_suffix());
    let hub_config = |node: &str| {
        let mut nats = NatsConfig::new(url, node);
        nats.swarm = swarm.clone();
        let mut c = spec.mode.config(spec.hub.clone());
        c.nats = Some(nats);
        c
    };
    let a = Hub::connect(hub_config("load-a")).await?;
    let b = Hub::connect(hub_config("load-b")).await?;
    let half = (spec.agents / 2).max(1);
    let senders: Vec<_> = (0..half)
        .map(|i| a.register(format!("s{i}")).map(|x| x.sender()))
        .collect::<Result<_, _>>()?;
    let receivers: Vec<_> = (0..half)
        .map(|i| b.register(format!("r{i}")))
        .collect::<Result<_, _>>()?;
    let ids: Arc<Vec<AgentId>> = Arc::new(receivers.iter().map(|r| r.id()).collect());
    let known = Instant::now() + Duration::from_secs(10);
    while !ids.iter().all(|id| a.knows(*id)) {
        if Instant::now() > known {
            bail!("hub A did not learn hub B's agents within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tally = Arc::new(Tally::default());
    let latency = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        120_000_000,
        3,
    )?));
    let epoch = Instant::now();
    let mut rx_tasks = Vec::new();
    for agent in receivers {
        rx_tasks.push(tokio::spawn(super::receive_loop(
            agent,
            tally.clone(),
            super::Samples::new(latency.clone()),
            epoch,
        )));
    }
    let running = Arc::new(AtomicBool::new(true));
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut tx_tasks = Vec::new();
    for t in 0..spec.senders.max(1) {
        let mine: Vec<_> = senders
            .iter()
            .skip(t)
            .step_by(spec.senders.max(1))
            .cloned()
            .collect();
        let ids = ids.clone();
        let tally = tally.clone();
        let running = running.clone();
        let mut payloads = PayloadMaker::new(&spec.payload, epoch, t as u64 + 1);
        tx_tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(t as u64);
            let mut i = 0u64;
            let mut ok = 0u64;
            while !i.is_multiple_of(64)
                || (running.load(Ordering::Relaxed) && Instant::now() < deadline)
            {
                let from = &mine[i as usize % mine.len().max(1)];
                let to = ids[rng.random_range(0..ids.len())];
                match from
                    .send(to, payloads.make(i.is_multiple_of(super::SAMPLE_EVERY)))
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(swarmbus::Error::ShuttingDown) => break,
                    Err(_) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
            tally.sent.fetch_add(ok, Ordering::Relaxed);
        }));
    }
    for t in tx_tasks {
        t.await?;
    }
    running.store(false, Ordering::Relaxed);
    let send_time = start.elapsed();
    a.flush();
    let sent = tally.sent.load(Ordering::Relaxed);
    let wait_until = Instant::now() + Duration::from_secs(30);
    // Arrived means in hub B's mailboxes; the receivers count exactly after shutdown.
    while b.metrics().messages_delivered < sent && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let busy = start.elapsed();
    let frames = a.metrics().nats.map_or(0, |n| n.frames_sent);
    let a_stats = a.metrics();
    a.shutdown().await?;
    b.shutdown().await?;
    for r in rx_tasks {
        r.await?;
    }
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let b_stats = b.metrics();
    let hist = latency
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?
        .clone();
    let dropped: u64 = a_stats.messages_dropped.values().sum::<u64>()
        + b_stats.messages_dropped.values().sum::<u64>();
    let mut report = super::report::Report {
        pattern: "direct".into(),
        mode: spec.mode.as_str().into(),
        agents: spec.agents,
        payload: spec.payload.to_string(),
        duration_s: send_time.as_secs_f64(),
        drain_s: (busy - send_time).as_secs_f64(),
        messages_sent: sent,
        messages_delivered: delivered,
        messages_lost: sent.saturating_sub(delivered),
        messages_dropped_counted: dropped,
        send_errors: tally.errors.load(Ordering::Relaxed),
        msgs_per_sec: delivered as f64 / busy.as_secs_f64().max(1e-9),
        mb_per_sec: tally.delivered_bytes.load(Ordering::Relaxed) as f64
            / busy.as_secs_f64().max(1e-9)
            / 1e6,
        latency_us: super::report::Latency {
            p50: hist.value_at_quantile(0.5) as f64,
            p99: hist.value_at_quantile(0.99) as f64,
            p999: hist.value_at_quantile(0.999) as f64,
            max: hist.max() as f64,
            samples: hist.len(),
        },
        machine: super::machine(),
        ..Default::default()
    };
    report.batches.count = a_stats.batches_flushed.values().sum();
    report.batches.mean_size = a_stats.batch_size.mean();
    if report.messages_lost > dropped {
        bail!(
            "{} messages lost across hubs without a counted reason (sent {sent}, delivered {delivered})",
            report.messages_lost - dropped
        );
    }
    Ok((report, frames))
}

fn uuid_suffix() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:x}")
}

/// When the raw subscriber last received, without a lock per message.
mod last_seen {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    #[derive(Debug)]
    pub struct Last {
        base: Instant,
        nanos: AtomicU64,
    }

    impl Default for Last {
        fn default() -> Self {
            Self {
                base: Instant::now(),
                nanos: AtomicU64::new(0),
            }
        }
    }

    impl Last {
        pub fn touch(&self) {
            self.nanos
                .store(self.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }

        pub fn at(&self) -> Option<Instant> {
            match self.nanos.load(Ordering::Relaxed) {
                0 => None,
                n => Some(self.base + Duration::from_nanos(n)),
            }
        }

        pub fn idle_for(&self) -> Duration {
            self.at().map_or(Duration::ZERO, |t| t.elapsed())
        }
    }
}
