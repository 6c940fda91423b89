#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use bytes::Bytes;
use std::time::Instant;
use swarmbus::{Hub, HubConfig};
fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..5 {
            let n = 2_000_000u64;
            let hub = Hub::start(HubConfig::default()).unwrap();
            let tx = hub.register("tx").unwrap();
            let mut rx = hub.register("rx").unwrap();
            let to = rx.id();
            let start = Instant::now();
            let recv = tokio::spawn(async move {
                let mut got = 0u64;
                while got < n {
                    if rx.recv().await.is_some() {
                        got += 1
                    } else {
                        break;
                    }
                }
                got
            });
            for _ in 0..n {
                tx.send(to, Bytes::copy_from_slice(&[7u8; 64]))
                    .await
                    .unwrap();
            }
            hub.flush();
            recv.await.unwrap();
            let e = start.elapsed();
            println!("{:.2} M/s", n as f64 / e.as_secs_f64() / 1e6);
            hub.shutdown().await.unwrap();
        }
    });
}
