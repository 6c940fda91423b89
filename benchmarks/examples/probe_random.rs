#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use swarmbus::{Agent, AgentId, Hub, HubConfig};
fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n: u64 = 2_000_000;
    rt.block_on(async move {
        for _ in 0..3 {
            let hub = Hub::start(HubConfig::default()).unwrap();
            let agents: Vec<Agent> = (0..1000).map(|i| hub.register(format!("a{i}")).unwrap()).collect();
            let ids: Vec<AgentId> = agents.iter().map(|a| a.id()).collect();
            let senders: Vec<_> = agents.iter().map(|a| a.sender()).collect();
            let total = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let done = Arc::new(tokio::sync::Notify::new());
            let mut receivers = Vec::new();
            for mut a in agents {
                let total = total.clone();
                let done = done.clone();
                receivers.push(tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            e = a.recv() => { std::hint::black_box(e); }
                            _ = done.notified() => return a,
                        }
                        let mut got = 1;
                        while let Some(e) = a.try_recv() { std::hint::black_box(e); got += 1; }
                        if total.fetch_add(got, Ordering::Relaxed) + got >= n { done.notify_waiters(); return a; }
                    }
                }));
            }
            let mut tasks = Vec::new();
            for (t, chunk) in senders.chunks(500).enumerate() {
                let chunk = chunk.to_vec(); let ids = ids.clone();
                tasks.push(tokio::spawn(async move {
                    let mut rng = rand::rngs::SmallRng::seed_from_u64(t as u64);
                    for i in 0..n / 2 {
                        let from = &chunk[i as usize % chunk.len()];
                        let to = ids[rng.random_range(0..ids.len())];
                        from.send(to, Bytes::copy_from_slice(&[7u8; 64])).await.unwrap();
                    }
                }));
            }
            for t in tasks { t.await.unwrap(); }
            let sent_done = start.elapsed();
            hub.flush();
            for r in receivers { drop(r.await.unwrap()); }
            let e = start.elapsed();
            let m = hub.metrics();
            println!("{:.2} M/s (senders done at {:.0} ms, total {:.0} ms) mean batch {:.1} flushes {:?}", n as f64 / e.as_secs_f64() / 1e6, sent_done.as_secs_f64()*1e3, e.as_secs_f64()*1e3, m.batch_size.mean(), m.batches_flushed);
            hub.shutdown().await.unwrap();
        }
    });
}
