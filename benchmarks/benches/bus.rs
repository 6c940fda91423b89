//! The hub against raw flume channels, in one run on the same machine.
//!
//! - `one_to_one`: one sender task, one receiver task, 64-byte messages. Peers: flume with
//!   one message per send, and flume with a `Vec` of 50 per send (what batching buys).
//! - `random_peers`: 1,000 agents, two sending tasks each driving 500 of them to random
//!   peers, one receiving task per 500 agents. Peer: one flume channel per agent.
//!
//! Every message is an owned 64-byte buffer on every side, so allocation costs the same.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use swarmbus::{Agent, AgentId, Hub, HubConfig};
use tokio::runtime::Runtime;

const MSG: [u8; 64] = [7u8; 64];
const N: u64 = 200_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn hub_one_to_one(rt: &Runtime, config: HubConfig, n: u64) -> Duration {
    rt.block_on(async move {
        let hub = Hub::start(config).expect("hub");
        let tx = hub.register("tx").expect("tx");
        let mut rx = hub.register("rx").expect("rx");
        let to = rx.id();
        let start = Instant::now();
        let recv = tokio::spawn(async move {
            let mut got = 0u64;
            while got < n {
                match rx.recv().await {
                    Some(env) => {
                        got += 1;
                        std::hint::black_box(env);
                    }
                    None => break,
                }
            }
            got
        });
        for _ in 0..n {
            tx.send(to, Bytes::copy_from_slice(&MSG))
                .await
                .expect("send");
        }
        hub.flush();
        let got = recv.await.expect("join");
        let elapsed = start.elapsed();
        assert_eq!(got, n);
        hub.shutdown().await.expect("shutdown");
        elapsed
    })
}

fn flume_one_to_one(rt: &Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let (tx, rx) = flume::unbounded::<Bytes>();
        let start = Instant::now();
        let recv = tokio::spawn(async move {
            let mut got = 0u64;
            while got < n {
                match rx.recv_async().await {
                    Ok(m) => {
                        got += 1;
                        std::hint::black_box(m);
                    }
                    Err(_) => break,
                }
            }
            got
        });
        for _ in 0..n {
            tx.send(Bytes::copy_from_slice(&MSG)).expect("send");
        }
        assert_eq!(recv.await.expect("join"), n);
        start.elapsed()
    })
}

fn flume_vec50_one_to_one(rt: &Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let (tx, rx) = flume::unbounded::<Vec<Bytes>>();
        let start = Instant::now();
        let recv = tokio::spawn(async move {
            let mut got = 0u64;
            while got < n {
                match rx.recv_async().await {
                    Ok(batch) => {
                        for m in batch {
                            got += 1;
                            std::hint::black_box(m);
                        }
                    }
                    Err(_) => break,
                }
            }
            got
        });
        let mut batch = Vec::with_capacity(50);
        for _ in 0..n {
            batch.push(Bytes::copy_from_slice(&MSG));
            if batch.len() == 50 {
                tx.send(std::mem::replace(&mut batch, Vec::with_capacity(50)))
                    .expect("send");
            }
        }
        if !batch.is_empty() {
            tx.send(batch).expect("send");
        }
        assert_eq!(recv.await.expect("join"), n);
        start.elapsed()
    })
}

const AGENTS: usize = 1_000;

fn hub_random_peers(rt: &Runtime, config: HubConfig, n: u64) -> Duration {
    rt.block_on(async move {
        let hub = Hub::start(config).expect("hub");
        let agents: Vec<Agent> = (0..AGENTS)
            .map(|i| hub.register(format!("a{i}")).expect("register"))
            .collect();
        let ids: Vec<AgentId> = agents.iter().map(|a| a.id()).collect();
        let senders: Vec<_> = agents.iter().map(|a| a.sender()).collect();
        let start = Instant::now();
        // Receivers: two tasks, each polling 500 mailboxes.
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut halves: Vec<Vec<Agent>> = vec![Vec::new(), Vec::new()];
        for (i, a) in agents.into_iter().enumerate() {
            halves[i % 2].push(a);
        }
        let mut receivers = Vec::new();
        for mut half in halves {
            let total = total.clone();
            receivers.push(tokio::spawn(async move {
                loop {
                    let mut got = 0;
                    for a in half.iter_mut() {
                        while let Some(env) = a.try_recv() {
                            std::hint::black_box(env);
                            got += 1;
                        }
                    }
                    let sum = total.fetch_add(got, std::sync::atomic::Ordering::Relaxed) + got;
                    if sum >= n {
                        return half;
                    }
                    if got == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        let mut tasks = Vec::new();
        for (t, chunk) in senders.chunks(AGENTS / 2).enumerate() {
            let chunk = chunk.to_vec();
            let ids = ids.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(t as u64);
                for i in 0..n / 2 {
                    let from = &chunk[i as usize % chunk.len()];
                    let to = ids[rng.random_range(0..ids.len())];
                    from.send(to, Bytes::copy_from_slice(&MSG))
                        .await
                        .expect("send");
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
        hub.flush();
        for r in receivers {
            drop(r.await.expect("join"));
        }
        let elapsed = start.elapsed();
        hub.shutdown().await.expect("shutdown");
        elapsed
    })
}

fn flume_random_peers(rt: &Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..AGENTS).map(|_| flume::unbounded::<Bytes>()).unzip();
        let start = Instant::now();
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut halves: Vec<Vec<flume::Receiver<Bytes>>> = vec![Vec::new(), Vec::new()];
        for (i, r) in rxs.into_iter().enumerate() {
            halves[i % 2].push(r);
        }
        let mut receivers = Vec::new();
        for half in halves {
            let total = total.clone();
            receivers.push(tokio::spawn(async move {
                loop {
                    let mut got = 0;
                    for r in half.iter() {
                        while let Ok(m) = r.try_recv() {
                            std::hint::black_box(m);
                            got += 1;
                        }
                    }
                    let sum = total.fetch_add(got, std::sync::atomic::Ordering::Relaxed) + got;
                    if sum >= n {
                        return;
                    }
                    if got == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        let mut tasks = Vec::new();
        for t in 0..2u64 {
            let txs = txs.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(t);
                for _ in 0..n / 2 {
                    let to = rng.random_range(0..txs.len());
                    txs[to].send(Bytes::copy_from_slice(&MSG)).expect("send");
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
        for r in receivers {
            r.await.expect("join");
        }
        start.elapsed()
    })
}

fn baseline() -> HubConfig {
    HubConfig::default()
        .without_batching()
        .without_compression()
        .without_pools()
}

fn one_to_one(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("one_to_one_64B");
    g.throughput(Throughput::Elements(N));
    g.bench_function("swarmbus", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| hub_one_to_one(&rt, HubConfig::default(), N))
                .sum()
        })
    });
    // The pools alone: the same hub with every buffer freshly allocated.
    g.bench_function("swarmbus_without_pools", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| hub_one_to_one(&rt, HubConfig::default().without_pools(), N))
                .sum()
        })
    });
    g.bench_function("swarmbus_baseline", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| hub_one_to_one(&rt, baseline(), N)).sum())
    });
    g.bench_function("flume_single", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| flume_one_to_one(&rt, N)).sum())
    });
    g.bench_function("flume_vec50", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| flume_vec50_one_to_one(&rt, N)).sum())
    });
    g.finish();
}

fn random_peers(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("random_peers_1000_agents_64B");
    g.throughput(Throughput::Elements(N));
    g.bench_function("swarmbus", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| hub_random_peers(&rt, HubConfig::default(), N))
                .sum()
        })
    });
    g.bench_function("swarmbus_without_pools", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| hub_random_peers(&rt, HubConfig::default().without_pools(), N))
                .sum()
        })
    });
    g.bench_function("flume_per_agent", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| flume_random_peers(&rt, N)).sum())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = one_to_one, random_peers
}
criterion_main!(benches);
