//! Conversation figures for docs/conversations.md, each against a reference in the same run:
//!
//! - `stream`: streamed chunks 1 → 1 (64 B) ÷ one-way `send` 1 → 1 (64 B), interleaved reps;
//! - `cancel URL`: cancellation latency across two hubs on one nats-server while the
//!   callee's mailbox holds 10,000 queued messages (p50, p99, max).
//!
//! ```text
//! cargo run --release -p swarmbus-benchmarks --example conversations -- stream
//! nats-server -a 127.0.0.1 -p 4333 &   # then:
//! cargo run --release -p swarmbus-benchmarks --example conversations -- cancel nats://127.0.0.1:4333
//! ```

use futures_util::StreamExt;
use std::time::{Duration, Instant};
use swarmbus::nats::NatsConfig;
use swarmbus::{Hub, HubConfig};

const CHUNKS: u64 = 300_000;
const REPS: usize = 5;
const CANCELS: usize = 200;
const QUEUED: u32 = 10_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("stream") => rt.block_on(stream_vs_send()),
        Some("cancel") => {
            let url = args
                .get(1)
                .cloned()
                .unwrap_or("nats://127.0.0.1:4222".into());
            rt.block_on(cancel_latency(&url))
        }
        _ => anyhow::bail!("usage: conversations stream | cancel NATS_URL"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One-way sends, 1 → 1, 64 B: messages per second.
async fn sends(n: u64) -> anyhow::Result<f64> {
    let hub = Hub::start(HubConfig::default())?;
    let tx = hub.register("tx")?;
    let mut rx = hub.register("rx")?;
    let to = rx.id();
    let start = Instant::now();
    let recv = tokio::spawn(async move {
        let mut got = 0u64;
        while got < n && rx.recv().await.is_some() {
            got += 1;
        }
        got
    });
    for _ in 0..n {
        tx.send(to, vec![7u8; 64]).await?;
    }
    hub.flush();
    anyhow::ensure!(recv.await? == n, "sends lost");
    let rate = n as f64 / start.elapsed().as_secs_f64();
    hub.shutdown().await?;
    Ok(rate)
}

/// Streamed chunks, 1 → 1, 64 B: chunks per second.
async fn chunks(n: u64) -> anyhow::Result<f64> {
    let hub = Hub::start(HubConfig::default())?;
    let caller = hub.register("caller")?;
    let mut callee = hub.register("callee")?;
    let to = callee.id();
    let respond = tokio::spawn(async move {
        let req = callee.recv().await.expect("a request");
        let mut out = callee.respond(&req)?;
        for _ in 1..n {
            out.send(vec![7u8; 64]).await?;
        }
        out.finish(vec![7u8; 64]).await
    });
    let start = Instant::now();
    let mut stream = caller
        .request_stream(to, "go", Duration::from_secs(600))
        .await?;
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        chunk?;
        got += 1;
    }
    let rate = got as f64 / start.elapsed().as_secs_f64();
    respond.await??;
    anyhow::ensure!(got == n, "chunks lost: {got} of {n}");
    hub.shutdown().await?;
    Ok(rate)
}

async fn stream_vs_send() -> anyhow::Result<()> {
    let (mut s, mut c) = (Vec::new(), Vec::new());
    for rep in 0..REPS {
        let send = sends(CHUNKS).await?;
        let chunk = chunks(CHUNKS).await?;
        println!(
            "rep {rep}: send {send:.0}/s, chunks {chunk:.0}/s, ratio {:.2}",
            chunk / send
        );
        s.push(send);
        c.push(chunk);
    }
    let (s, c) = (median(s), median(c));
    println!(
        "median: send {s:.0}/s, chunks {c:.0}/s, chunks ÷ send {:.2}",
        c / s
    );
    Ok(())
}

fn nats_config(url: &str, node: &str) -> HubConfig {
    let mut nats = NatsConfig::new(url, node);
    nats.swarm = "bench-cancel".into();
    let mut c = HubConfig::default();
    c.nats = Some(nats);
    c
}

async fn cancel_latency(url: &str) -> anyhow::Result<()> {
    let a = Hub::connect(nats_config(url, "cancel-a")).await?;
    let b = Hub::connect(nats_config(url, "cancel-b")).await?;
    let caller = a.register("caller")?;
    let flooder = a.register("flooder")?;
    let mut callee = b.register("callee")?;
    let callee_id = callee.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.knows(callee_id) {
        anyhow::ensure!(Instant::now() < deadline, "hub a never learned the callee");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The callee takes the request (High, ahead of its backlog), works until cancelled
    // while QUEUED messages wait in its mailbox, reports when the cancel reached it (one
    // process: one clock), then drains its mailbox for the next round.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let callee_task = tokio::spawn(async move {
        let mut drained = 0u64;
        while let Some(env) = callee.recv().await {
            if env.is_request() {
                env.cancelled().await;
                let _ = seen_tx.send(Instant::now());
            } else {
                drained += 1;
                if drained.is_multiple_of(u64::from(QUEUED)) {
                    let _ = ready_tx.send(());
                }
            }
        }
        drained
    });
    let mut latencies = Vec::with_capacity(CANCELS);
    for round in 0..CANCELS {
        let mut stream = caller
            .request_stream(callee_id, "work", Duration::from_secs(30))
            .await?;
        for i in 0..QUEUED {
            flooder.send(callee_id, i.to_le_bytes().to_vec()).await?;
        }
        a.flush();
        // Wait until the backlog is in the callee's mailbox, ahead of the cancel.
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.metrics().mailbox_depth_total < u64::from(QUEUED) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "round {round}: backlog never arrived"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let at = Instant::now();
        stream.cancel();
        let seen = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("callee gone"))?;
        latencies.push(seen.saturating_duration_since(at).as_secs_f64() * 1e3);
        // The callee drains before the next round.
        tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("callee gone"))?;
    }
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "cancel latency across two hubs, callee's mailbox holding {QUEUED} messages, \
         {CANCELS} cancels: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        q(0.5),
        q(0.99),
        latencies[latencies.len() - 1]
    );
    a.shutdown().await?;
    b.shutdown().await?;
    let drained = callee_task.await?;
    println!("queued messages drained by the callee: {drained}");
    Ok(())
}
