//! Workers vs load on the real machine: a phase of sleeping (I/O-like) units, then a phase
//! of CPU-bound units, with the real `SysinfoSampler`. Prints one row per controller sample.
//!
//! `cargo run --release -p swarmbus --example worker_load`

use std::time::{Duration, Instant};
use swarmbus::workers::{WorkerConfig, WorkerPool};
use swarmbus::Priority;

fn spin_for(d: Duration) -> u64 {
    let until = Instant::now() + d;
    let mut x = 1u64;
    while Instant::now() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}

#[tokio::main]
async fn main() -> swarmbus::Result<()> {
    let mut config = WorkerConfig::default();
    config.history_len = 1000;
    let pool = WorkerPool::start(&config)?;
    let (min, max) = config.bounds();
    println!(
        "cpus {}, min_workers {min}, max_workers {max}, sample_interval {:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        config.sample_interval
    );

    // Phase 1 (I/O-bound): 1500 units that each sleep 20 ms; the CPU stays idle while
    // the queue builds, so the pool should grow towards max.
    let phase1 = Instant::now();
    let sleepers: Vec<_> = (0..1500)
        .map(|_| {
            pool.submit(Priority::Normal, || {
                std::thread::sleep(Duration::from_millis(20))
            })
        })
        .collect();
    for f in sleepers {
        f.await?;
    }
    let phase1_ms = phase1.elapsed().as_millis();

    // Phase 2 (CPU-bound): 600 units of 10 ms busy work; the CPU saturates, so the pool
    // should shrink back towards min.
    let phase2 = Instant::now();
    let burners: Vec<_> = (0..600)
        .map(|_| pool.submit(Priority::Normal, || spin_for(Duration::from_millis(10))))
        .collect();
    for f in burners {
        f.await?;
    }
    let phase2_ms = phase2.elapsed().as_millis();
    // Idle tail: a second with nothing queued.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stats = pool.stats();
    println!(
        "phase 1 (sleep 20 ms x 1500): {phase1_ms} ms; phase 2 (cpu 10 ms x 600): {phase2_ms} ms"
    );
    println!("| t (ms) | workers | busy | queued | system cpu | process cpu |");
    println!("|-------:|--------:|-----:|-------:|-----------:|------------:|");
    let mut last_workers = usize::MAX;
    for (i, p) in stats.history.iter().enumerate() {
        // Every 5th sample plus every change of size keeps the table short.
        if i % 5 == 0 || p.workers != last_workers {
            println!(
                "| {} | {} | {} | {} | {:.0} % | {:.0} % |",
                p.elapsed_ms,
                p.workers,
                p.busy,
                p.queued,
                p.cpu * 100.0,
                p.process_cpu * 100.0
            );
        }
        last_workers = p.workers;
    }
    println!(
        "resizes: {:?}; min_seen {}, max_seen {}",
        stats.resizes, stats.min_seen, stats.max_seen
    );
    pool.shutdown().await;
    Ok(())
}
