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

/// `--durable`: raw JetStream and swarmbus at most once, measured in the same run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DurableBaseline {
    /// Raw async-nats JetStream: single messages published from one connection (acks
    /// awaited in bulk, at most 1,024 outstanding) to a durable pull consumer on another
    /// that acknowledges each.
    pub jetstream_published: u64,
    /// Messages the raw consumer received.
    pub jetstream_received: u64,
    /// Raw JetStream received per second.
    pub jetstream_msgs_per_sec: f64,
    /// swarmbus durable msgs/s divided by raw JetStream msgs/s.
    pub ratio_vs_jetstream: f64,
    /// swarmbus at most once (core NATS) across the same two hubs, msgs/s.
    pub at_most_once_msgs_per_sec: f64,
    /// swarmbus durable msgs/s divided by at-most-once msgs/s.
    pub ratio_vs_at_most_once: f64,
    /// The offered rate of the paced run: half the durable peak, msgs/s.
    pub half_peak_rate: u64,
    /// Delivered per second in the paced run.
    pub half_peak_msgs_per_sec: f64,
    /// End-to-end latency in the paced run, µs.
    pub half_peak_latency_us: super::report::Latency,
    /// Frames published by the sending hub in the peak run.
    pub frames: u64,
    /// Messages per frame in the peak run.
    pub messages_per_frame: f64,
    /// Frames the server confirmed as duplicates of a retried publish, in the peak run.
    pub publish_duplicates: u64,
    /// Messages the receiving hub dropped as already delivered, in the peak run.
    pub messages_deduplicated: u64,
}

/// How the two hubs deliver to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    AtMostOnce,
    Durable,
}

/// Runs raw NATS then swarmbus across two hubs; fills `report.nats`. With `--durable`:
/// raw JetStream, swarmbus at most once, swarmbus durable at its peak and at half of it.
pub async fn run(spec: &LoadSpec, url: &str) -> Result<super::report::Report> {
    let size = match spec.payload {
        super::payload::PayloadSpec::Fixed(n) => n,
        super::payload::PayloadSpec::Mixed => bail!("--nats takes a fixed --payload size"),
    };
    if spec.durable {
        return run_durable(spec, url, size).await;
    }
    let raw = raw_nats(url, size, spec.duration).await?;
    let (mut report, wire) = cross_hub(spec, url, Delivery::AtMostOnce, spec.rate).await?;
    let frames = wire.frames;
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
    let baseline = quiet_count(
        &received,
        &last,
        published,
        start,
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .await;
    counter.abort();
    Ok(baseline)
}

/// What the sending and receiving hubs say of the wire after a cross-hub run.
#[derive(Debug, Default)]
struct Wire {
    frames: u64,
    publish_duplicates: u64,
    deduplicated: u64,
}

async fn run_durable(spec: &LoadSpec, url: &str, size: usize) -> Result<super::report::Report> {
    let raw = raw_jetstream(url, size, spec.duration).await?;
    let (at_most_once, _) = cross_hub(spec, url, Delivery::AtMostOnce, None).await?;
    let (mut report, wire) = cross_hub(spec, url, Delivery::Durable, None).await?;
    let frames = wire.frames;
    let half = ((report.msgs_per_sec * 0.5) as u64).max(1);
    let (paced, _) = cross_hub(spec, url, Delivery::Durable, Some(half)).await?;
    let per_frame = if frames == 0 {
        0.0
    } else {
        report.messages_delivered as f64 / frames as f64
    };
    report.durable = Some(DurableBaseline {
        jetstream_published: raw.published,
        jetstream_received: raw.received,
        jetstream_msgs_per_sec: raw.msgs_per_sec,
        ratio_vs_jetstream: report.msgs_per_sec / raw.msgs_per_sec.max(1e-9),
        at_most_once_msgs_per_sec: at_most_once.msgs_per_sec,
        ratio_vs_at_most_once: report.msgs_per_sec / at_most_once.msgs_per_sec.max(1e-9),
        half_peak_rate: half,
        half_peak_msgs_per_sec: paced.msgs_per_sec,
        half_peak_latency_us: paced.latency_us.clone(),
        frames,
        messages_per_frame: per_frame,
        publish_duplicates: wire.publish_duplicates,
        messages_deduplicated: wire.deduplicated,
    });
    // The paced run must keep the durable guarantee too: its losses and duplicates count.
    if paced.messages_lost > 0 || paced.messages_duplicated.unwrap_or(0) > 0 {
        eprintln!(
            "durable half-peak run: {} lost, {} duplicated",
            paced.messages_lost,
            paced.messages_duplicated.unwrap_or(0)
        );
    }
    report.messages_lost = report.messages_lost.max(paced.messages_lost);
    report.messages_duplicated = Some(
        report
            .messages_duplicated
            .unwrap_or(0)
            .max(paced.messages_duplicated.unwrap_or(0)),
    );
    Ok(report)
}

/// Raw JetStream: single publishes (acks awaited in bulk) into a file stream, read by a
/// durable pull consumer on another connection that acknowledges each message.
async fn raw_jetstream(url: &str, size: usize, duration: Duration) -> Result<NatsBaseline> {
    use async_nats::jetstream::{self, consumer, stream};
    let suffix = uuid_suffix();
    let subject = format!("swarmload.js.{suffix}");
    let publisher = jetstream::new(
        async_nats::connect(url)
            .await
            .context("connecting to NATS")?,
    );
    let reader = jetstream::new(
        async_nats::connect(url)
            .await
            .context("connecting to NATS")?,
    );
    let name = format!("SWARMLOAD_{suffix}");
    let stream = publisher
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .context("creating the raw JetStream stream (is JetStream enabled: nats-server -js?)")?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("reader".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    drop(reader);
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(last_seen::Last::default());
    let counter = {
        let received = received.clone();
        let last = last.clone();
        let mut messages = consumer.messages().await?;
        tokio::spawn(async move {
            while let Some(m) = messages.next().await {
                if let Ok(m) = m {
                    let _ = m.ack().await;
                    received.fetch_add(1, Ordering::Relaxed);
                    last.touch();
                }
            }
        })
    };
    let body = Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    let deadline = start + duration;
    let mut published = 0u64;
    let mut acks = std::collections::VecDeque::new();
    while Instant::now() < deadline {
        for _ in 0..64 {
            acks.push_back(publisher.publish(subject.clone(), body.clone()).await?);
            if acks.len() >= 1024 {
                if let Some(ack) = acks.pop_front() {
                    ack.await?;
                }
            }
        }
        published += 64;
    }
    for ack in acks {
        ack.await?;
    }
    let baseline = quiet_count(
        &received,
        &last,
        published,
        start,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await;
    counter.abort();
    let _ = publisher.delete_stream(&name).await;
    Ok(baseline)
}

/// What a raw baseline's receiver got: waits until it has all `published`, or nothing new
/// arrived for `quiet`, at most `limit`; the rate counts until the last message received.
async fn quiet_count(
    received: &AtomicU64,
    last: &last_seen::Last,
    published: u64,
    start: Instant,
    quiet: Duration,
    limit: Duration,
) -> NatsBaseline {
    let wait_until = Instant::now() + limit;
    while received.load(Ordering::Relaxed) < published
        && last.idle_for() < quiet
        && Instant::now() < wait_until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = received.load(Ordering::Relaxed);
    let busy = last.at().unwrap_or_else(Instant::now).duration_since(start);
    NatsBaseline {
        published,
        received: got,
        lost: published.saturating_sub(got),
        msgs_per_sec: got as f64 / busy.as_secs_f64().max(1e-9),
        ..NatsBaseline::default()
    }
}

async fn cross_hub(
    spec: &LoadSpec,
    url: &str,
    delivery: Delivery,
    rate: Option<u64>,
) -> Result<(super::report::Report, Wire)> {
    let swarm = format!("load{}", uuid_suffix());
    let hub_config = |node: &str| {
        let mut nats = NatsConfig::new(url, node);
        nats.swarm = swarm.clone();
        if delivery == Delivery::Durable {
            // `[nats.durable]` of `--config`, else the defaults.
            let tuned = spec.hub.nats.as_ref().and_then(|n| n.durable.clone());
            nats.durable = Some(tuned.unwrap_or_default());
        }
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
    let seen = Arc::new(super::Seen::default());
    for agent in receivers {
        rx_tasks.push(tokio::spawn(super::receive_loop(
            agent,
            tally.clone(),
            super::Samples::new(latency.clone()),
            epoch,
            Some(seen.clone()),
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
        // Paced: this task's share of `rate`, checked every 64 messages.
        let per_task = rate.map(|r| (r as f64 / spec.senders.max(1) as f64).max(1.0));
        tx_tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(t as u64);
            let mut i = 0u64;
            let mut ok = 0u64;
            while !i.is_multiple_of(64)
                || (running.load(Ordering::Relaxed) && Instant::now() < deadline)
            {
                if let Some(per_task) = per_task.filter(|_| i.is_multiple_of(64)) {
                    let due = start + Duration::from_secs_f64(i as f64 / per_task);
                    tokio::time::sleep_until(due.into()).await;
                }
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
    let a_stats = a.metrics();
    let b_nats = b.metrics().nats;
    let wire = Wire {
        frames: a_stats.nats.as_ref().map_or(0, |n| n.frames_sent),
        publish_duplicates: a_stats
            .nats
            .as_ref()
            .and_then(|n| n.durable.as_ref())
            .map_or(0, |d| d.publish_duplicates),
        deduplicated: b_nats
            .as_ref()
            .and_then(|n| n.durable.as_ref())
            .map_or(0, |d| d.messages_deduplicated),
    };
    a.shutdown().await?;
    b.shutdown().await?;
    for r in rx_tasks {
        r.await?;
    }
    if delivery == Delivery::Durable {
        remove_durable_streams(spec, url, &swarm).await;
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
        messages_duplicated: Some(seen.duplicated.load(Ordering::Relaxed)),
        redelivered: (delivery == Delivery::Durable)
            .then(|| seen.redelivered.load(Ordering::Relaxed)),
        rate: rate.unwrap_or(0),
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
    Ok((report, wire))
}

/// Deletes the streams a durable run of swarm `swarm` created (the server reserves each
/// stream's `max_bytes`, so runs that left theirs would soon find no room). A stream named
/// in `[nats.durable] stream` is the operator's and stays.
async fn remove_durable_streams(spec: &LoadSpec, url: &str, swarm: &str) {
    let named = spec
        .hub
        .nats
        .as_ref()
        .and_then(|n| n.durable.as_ref())
        .is_some_and(|d| d.stream.is_some());
    let Ok(client) = async_nats::connect(url).await else {
        eprintln!("could not connect to remove the durable run's streams");
        return;
    };
    let js = async_nats::jetstream::new(client);
    let mut names = vec![
        format!("SWARMBUS_{swarm}_DLQ"),
        format!("KV_SWARMBUS_{swarm}_DIR"),
    ];
    if !named {
        names.push(format!("SWARMBUS_{swarm}"));
    }
    for name in names {
        if let Err(e) = js.delete_stream(&name).await {
            eprintln!("could not delete stream {name}: {e}");
        }
    }
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
