//! Worker pool vs `tokio::task::spawn_blocking` vs rayon, on tiny CPU units; then a
//! saturation run that prints Critical vs Low queue waits.
//!
//! `cargo bench -p swarmbus-benchmarks --bench workers -- --warm-up-time 1 --measurement-time 3`

use criterion::{BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarmbus::workers::{WorkerConfig, WorkerPool};
use swarmbus::Priority;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// A few hundred nanoseconds of dependent multiply-xor work.
fn work(seed: u64) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for i in 0..256u64 {
        h = (h ^ i).wrapping_mul(0x0100_0000_01b3);
    }
    black_box(h)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn single_submits(c: &mut Criterion, rt: &Runtime, pool: &WorkerPool) {
    let mut g = c.benchmark_group("single_await_each");
    g.throughput(Throughput::Elements(1));
    g.bench_function("spawn_blocking", |b| {
        b.to_async(rt)
            .iter(|| async { tokio::task::spawn_blocking(|| work(1)).await.unwrap() })
    });
    g.bench_function("worker_pool", |b| {
        b.to_async(rt)
            .iter(|| async { pool.submit(Priority::Normal, || work(1)).await.unwrap() })
    });
    g.bench_function("rayon_spawn_oneshot", |b| {
        b.to_async(rt).iter(|| async {
            let (tx, rx) = oneshot::channel();
            rayon::spawn(move || {
                let _ = tx.send(work(1));
            });
            rx.await.unwrap()
        })
    });
    g.finish();

    const N: u64 = 1000;
    let mut g = c.benchmark_group("single_1000_in_flight");
    g.throughput(Throughput::Elements(N));
    g.bench_function("worker_pool", |b| {
        b.to_async(rt).iter(|| async {
            let fs: Vec<_> = (0..N)
                .map(|i| pool.submit(Priority::Normal, move || work(i)))
                .collect();
            let mut acc = 0u64;
            for f in fs {
                acc ^= f.await.unwrap();
            }
            acc
        })
    });
    g.bench_function("spawn_blocking", |b| {
        b.to_async(rt).iter(|| async {
            let fs: Vec<_> = (0..N)
                .map(|i| tokio::task::spawn_blocking(move || work(i)))
                .collect();
            let mut acc = 0u64;
            for f in fs {
                acc ^= f.await.unwrap();
            }
            acc
        })
    });
    g.bench_function("rayon_spawn_oneshot", |b| {
        b.to_async(rt).iter(|| async {
            let fs: Vec<_> = (0..N)
                .map(|i| {
                    let (tx, rx) = oneshot::channel();
                    rayon::spawn(move || {
                        let _ = tx.send(work(i));
                    });
                    rx
                })
                .collect();
            let mut acc = 0u64;
            for f in fs {
                acc ^= f.await.unwrap();
            }
            acc
        })
    });
    g.finish();
}

fn batches(c: &mut Criterion, rt: &Runtime, pool: &WorkerPool) {
    const N: u64 = 10_000;
    let mut g = c.benchmark_group("batch_10000");
    g.throughput(Throughput::Elements(N));
    g.bench_with_input(BenchmarkId::new("worker_pool", N), &N, |b, &n| {
        b.to_async(rt).iter(|| async move {
            pool.submit_batch(Priority::Normal, (0..n).map(|i| move || work(i)))
                .await
                .unwrap()
        })
    });
    g.bench_with_input(BenchmarkId::new("rayon_par_iter", N), &N, |b, &n| {
        b.iter(|| (0..n).into_par_iter().map(work).collect::<Vec<u64>>())
    });
    g.finish();
}

/// Overloads the pool about 2x with ~40 µs units (90 % Low, 10 % Critical) for 1 s and
/// reports queue waits per priority from per-unit timestamps.
fn saturation_report(rt: &Runtime) {
    let pool = WorkerPool::start(&WorkerConfig::default()).expect("pool");
    let unit_work = |seed: u64| {
        let mut acc = seed;
        for i in 0..200 {
            acc ^= work(acc ^ i);
        }
        acc
    };
    let waits = rt.block_on(async {
        let mut handles = Vec::new();
        let start = Instant::now();
        let mut n = 0u64;
        // Offer ~2x what two CPUs can run, in bursts paced by the wall clock.
        while start.elapsed() < Duration::from_secs(1) {
            let due = start.elapsed().as_micros() as u64 / 10;
            while n < due {
                let priority = if n.is_multiple_of(10) {
                    Priority::Critical
                } else {
                    Priority::Low
                };
                let submitted = Instant::now();
                let f = pool.submit(priority, move || {
                    let waited = submitted.elapsed();
                    black_box(unit_work(n));
                    waited
                });
                handles.push((priority, f));
                n += 1;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let mut waits: Vec<(Priority, Duration)> = Vec::with_capacity(handles.len());
        for (p, f) in handles {
            waits.push((p, f.await.expect("unit")));
        }
        waits
    });
    let stats = pool.stats();
    let pct = |p: Priority, q: f64| {
        let mut v: Vec<Duration> = waits
            .iter()
            .filter(|(pp, _)| *pp == p)
            .map(|(_, w)| *w)
            .collect();
        v.sort();
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).copied().unwrap_or_default()
    };
    let crit_p99 = pct(Priority::Critical, 0.99);
    let low_p50 = pct(Priority::Low, 0.50);
    println!(
        "saturation: {} units ({} critical)",
        waits.len(),
        waits.len() / 10
    );
    println!(
        "saturation: critical wait p50 {:?} p99 {:?}; low wait p50 {:?} p99 {:?}",
        pct(Priority::Critical, 0.5),
        crit_p99,
        low_p50,
        pct(Priority::Low, 0.99)
    );
    println!(
        "saturation: target critical p99 < low p50: {}",
        if crit_p99 < low_p50 { "MET" } else { "MISSED" }
    );
    println!(
        "saturation: pool stats: workers {} (min_seen {}, max_seen {}), wait p99 (all) {:.6}s, starvation promotions {}, resizes {:?}",
        stats.workers,
        stats.min_seen,
        stats.max_seen,
        stats.wait_seconds.quantile(0.99),
        stats.starvation_promotions,
        stats.resizes
    );
    pool.shutdown_blocking();
}

fn main() {
    let rt = Arc::new(runtime());
    let pool = WorkerPool::start(&WorkerConfig::default()).expect("pool");
    rayon::ThreadPoolBuilder::new().build_global().ok();
    let mut c = Criterion::default().configure_from_args();
    single_submits(&mut c, &rt, &pool);
    batches(&mut c, &rt, &pool);
    let s = pool.stats();
    println!(
        "worker pool during criterion runs: workers {} (min_seen {}, max_seen {}), resizes {:?}",
        s.workers, s.min_seen, s.max_seen, s.resizes
    );
    pool.shutdown_blocking();
    saturation_report(&rt);
    c.final_summary();
}
