//! Integration tests of the elastic worker pool, through its public API.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use swarmbus::workers::{Decision, LoadSample, LoadSampler, WorkerConfig, WorkerPool, WorkerStats};
use swarmbus::{Error, Priority};

/// A sampler whose CPU reading the test sets.
#[derive(Clone, Default)]
struct Scripted(Arc<AtomicU64>);

impl Scripted {
    fn set(&self, cpu: f64) {
        self.0.store(cpu.to_bits(), Ordering::Relaxed);
    }
}

impl LoadSampler for Scripted {
    fn sample(&mut self) -> LoadSample {
        let cpu = f64::from_bits(self.0.load(Ordering::Relaxed));
        LoadSample {
            system_cpu: cpu,
            process_cpu: cpu,
        }
    }
}

/// Occupies the pool's only worker until the returned sender is dropped or sent to.
async fn block_worker(pool: &WorkerPool) -> (mpsc::Sender<()>, impl std::future::Future) {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let blocker = pool.submit(Priority::Critical, move || {
        let _ = started_tx.send(());
        let _ = release_rx.recv();
    });
    started_rx.await.unwrap();
    (release_tx, blocker)
}

fn one_worker(starvation_bound: Duration) -> WorkerPool {
    let mut config = WorkerConfig::fixed(1);
    config.starvation_bound = starvation_bound;
    WorkerPool::manual(&config, Box::new(Scripted::default())).unwrap()
}

fn elastic(min: usize, max: usize) -> WorkerConfig {
    let mut c = WorkerConfig::default();
    c.min_workers = min;
    c.max_workers = max;
    c.grow_step = 2;
    c.shrink_step = 1;
    c.grow_after = 2;
    c.shrink_after = 2;
    c.idle_after = 2;
    c.cooldown = Duration::ZERO;
    c
}

async fn wait_until(pool: &WorkerPool, what: &str, f: impl Fn(&WorkerStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.stats();
        if f(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn strict_priority_order_under_saturation() {
    let pool = one_worker(Duration::from_secs(60));
    let (release, blocker) = block_worker(&pool).await;
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut futures = Vec::new();
    for i in 0..40usize {
        let p = Priority::ALL[(i * 7) % 4];
        let done = Arc::clone(&done);
        futures.push(pool.submit(p, move || done.lock().unwrap().push((p, i))));
    }
    let s = pool.stats();
    assert_eq!(s.task_queue_depth, 40);
    assert_eq!(s.task_queue_depth_by_priority.get(Priority::Low), 10);
    release.send(()).unwrap();
    blocker.await;
    for f in futures {
        f.await.unwrap();
    }
    let order = done.lock().unwrap().clone();
    let mut expected = order.clone();
    // Higher priority first, then submission order.
    expected.sort_by_key(|&(p, i)| (std::cmp::Reverse(p), i));
    assert_eq!(order, expected);
    assert_eq!(order[0].0, Priority::Critical);
    assert_eq!(order[39].0, Priority::Low);
    pool.shutdown().await;
}

#[tokio::test]
async fn fifo_within_a_priority() {
    let pool = one_worker(Duration::from_secs(60));
    let (release, blocker) = block_worker(&pool).await;
    let done = Arc::new(Mutex::new(Vec::new()));
    let futures: Vec<_> = (0..200)
        .map(|i| {
            let done = Arc::clone(&done);
            pool.submit(Priority::Normal, move || done.lock().unwrap().push(i))
        })
        .collect();
    drop(release);
    blocker.await;
    for f in futures {
        f.await.unwrap();
    }
    assert_eq!(*done.lock().unwrap(), (0..200).collect::<Vec<_>>());
}

/// Where one `Low` unit finishes among 300 `High` units that were queued right after it.
async fn low_position_under_high_load(starvation_bound: Duration) -> (usize, WorkerStats) {
    let pool = one_worker(starvation_bound);
    let (release, blocker) = block_worker(&pool).await;
    let done = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&done);
    let low = pool.submit(Priority::Low, move || d.lock().unwrap().push(Priority::Low));
    let highs: Vec<_> = (0..300)
        .map(|_| {
            let d = Arc::clone(&done);
            pool.submit(Priority::High, move || {
                std::thread::sleep(Duration::from_millis(1));
                d.lock().unwrap().push(Priority::High);
            })
        })
        .collect();
    drop(release);
    blocker.await;
    low.await.unwrap();
    for h in highs {
        h.await.unwrap();
    }
    let order = done.lock().unwrap().clone();
    let position = order.iter().position(|&p| p == Priority::Low).unwrap();
    let stats = pool.stats();
    pool.shutdown().await;
    (position, stats)
}

#[tokio::test]
async fn low_progresses_under_sustained_high_load() {
    // Without aging, Low runs last.
    let (position, stats) = low_position_under_high_load(Duration::from_secs(60)).await;
    assert_eq!(position, 300);
    assert_eq!(stats.starvation_promotions, 0);
    // With a 20 ms bound it jumps the High lane after about 20 units of 1 ms.
    let (position, stats) = low_position_under_high_load(Duration::from_millis(20)).await;
    assert!(position < 150, "Low ran at position {position}");
    assert_eq!(stats.starvation_promotions, 1);
}

#[tokio::test]
async fn grows_under_io_bound_load_up_to_max() {
    let script = Scripted::default();
    script.set(0.1);
    let pool = WorkerPool::manual(&elastic(2, 6), Box::new(script.clone())).unwrap();
    assert_eq!(pool.stats().workers, 2);
    let units: Vec<_> = (0..300)
        .map(|i| {
            pool.submit(Priority::Normal, move || {
                std::thread::sleep(Duration::from_millis(5));
                i
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for _ in 0..10 {
        decisions.push(pool.step());
        let s = pool.stats();
        assert!(s.workers <= 6 && s.target_workers <= 6, "{s:?}");
    }
    let grows = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Grow { .. }))
        .count();
    assert_eq!(grows, 2, "{decisions:?}");
    let s = pool.stats();
    assert_eq!((s.workers, s.target_workers, s.max_seen), (6, 6, 6));
    assert_eq!(s.resizes.grow_queued_headroom, 2);
    assert_eq!(s.history.len(), 10);
    assert_eq!(s.history[9].workers, 6);
    assert!((s.cpu_load_ratio - 0.1).abs() < 1e-9);
    for (i, u) in units.into_iter().enumerate() {
        assert_eq!(u.await.unwrap(), i);
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn no_growth_when_cpu_has_no_headroom() {
    let script = Scripted::default();
    script.set(0.9);
    let pool = WorkerPool::manual(&elastic(2, 6), Box::new(script)).unwrap();
    let units: Vec<_> = (0..100)
        .map(|_| {
            pool.submit(Priority::Normal, || {
                std::thread::sleep(Duration::from_millis(2))
            })
        })
        .collect();
    for _ in 0..10 {
        assert_eq!(pool.step(), Decision::Hold);
    }
    assert_eq!(pool.stats().workers, 2);
    for u in units {
        u.await.unwrap();
    }
}

#[tokio::test]
async fn shrinks_under_saturated_load_down_to_min_then_idle_shrink_holds_min() {
    let script = Scripted::default();
    script.set(0.1);
    let pool = WorkerPool::manual(&elastic(2, 6), Box::new(script.clone())).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let units: Vec<_> = (0..400)
        .map(|_| {
            let ran = Arc::clone(&ran);
            pool.submit(Priority::Normal, move || {
                std::thread::sleep(Duration::from_millis(3));
                ran.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    for _ in 0..6 {
        pool.step();
    }
    assert_eq!(pool.stats().target_workers, 6);
    script.set(1.0);
    for _ in 0..20 {
        pool.step();
        let s = pool.stats();
        assert!(s.target_workers >= 2 && s.workers <= 6, "{s:?}");
    }
    let s = pool.stats();
    assert_eq!(s.target_workers, 2);
    assert_eq!(s.resizes.shrink_saturated, 4);
    // Retiring workers finish their unit first, then leave.
    wait_until(&pool, "workers to retire", |s| s.workers == 2).await;
    for u in units {
        u.await.unwrap();
    }
    assert_eq!(ran.load(Ordering::Relaxed), 400);
    // Idle and empty, but already at min: no further shrink.
    script.set(0.0);
    for _ in 0..10 {
        assert_eq!(pool.step(), Decision::Hold);
    }
    let s = pool.stats();
    assert_eq!((s.workers, s.min_seen, s.max_seen), (2, 2, 6));
    assert_eq!(s.tasks_completed.normal, 400);
}

#[tokio::test]
async fn idle_workers_shrink_to_min() {
    let script = Scripted::default();
    script.set(0.1);
    let pool = WorkerPool::manual(&elastic(1, 5), Box::new(script)).unwrap();
    let units: Vec<_> = (0..100)
        .map(|_| {
            pool.submit(Priority::Low, || {
                std::thread::sleep(Duration::from_millis(2))
            })
        })
        .collect();
    for _ in 0..6 {
        pool.step();
    }
    assert_eq!(pool.stats().target_workers, 5);
    for u in units {
        u.await.unwrap();
    }
    wait_until(&pool, "all idle", |s| s.busy_workers == 0).await;
    for _ in 0..20 {
        pool.step();
    }
    wait_until(&pool, "idle shrink", |s| s.workers == 1).await;
    assert_eq!(pool.stats().resizes.shrink_idle, 4);
    // The one remaining worker still serves.
    assert_eq!(pool.submit(Priority::Low, || 7).await.unwrap(), 7);
}

#[tokio::test]
async fn noisy_load_signal_does_not_flap() {
    let script = Scripted::default();
    let mut config = elastic(2, 8);
    config.grow_after = 2;
    config.shrink_after = 3;
    let pool = WorkerPool::manual(&config, Box::new(script.clone())).unwrap();
    let units: Vec<_> = (0..200)
        .map(|_| {
            pool.submit(Priority::Normal, || {
                std::thread::sleep(Duration::from_millis(5))
            })
        })
        .collect();
    for i in 0..100 {
        script.set(if i % 2 == 0 { 0.1 } else { 0.99 });
        pool.step();
    }
    let s = pool.stats();
    assert_eq!(s.resizes.total(), 0, "{:?}", s.resizes);
    assert_eq!(s.workers, 2);
    assert_eq!(s.history.len(), 100);
    drop(units);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_unit_lost_or_run_twice_while_resizing() {
    // Phases of 4 "idle CPU" samples then 4 "saturated" samples, every 2 ms.
    #[derive(Default)]
    struct Cycling(u64);
    impl LoadSampler for Cycling {
        fn sample(&mut self) -> LoadSample {
            self.0 += 1;
            let cpu = if (self.0 / 4).is_multiple_of(2) {
                0.05
            } else {
                1.0
            };
            LoadSample {
                system_cpu: cpu,
                process_cpu: cpu,
            }
        }
    }
    let mut config = elastic(1, 8);
    config.sample_interval = Duration::from_millis(2);
    config.grow_after = 1;
    config.shrink_after = 1;
    config.idle_after = 1;
    config.grow_step = 3;
    config.shrink_step = 2;
    let pool = WorkerPool::with_sampler(&config, Box::new(Cycling::default())).unwrap();

    const N: usize = 12_000;
    let runs: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
    let unit = |i: usize| {
        let runs = Arc::clone(&runs);
        move || {
            if i.is_multiple_of(16) {
                std::thread::sleep(Duration::from_micros(200));
            }
            runs[i].fetch_add(1, Ordering::Relaxed);
            i
        }
    };
    let mut singles = Vec::new();
    let mut batches = Vec::new();
    let mut i = 0;
    while i < N {
        if i % 3000 < 1500 {
            singles.push(pool.submit(Priority::ALL[i % 4], unit(i)));
            i += 1;
        } else {
            let end = (i + 500).min(N);
            batches.push((
                i,
                pool.submit_batch(Priority::ALL[i % 4], (i..end).map(unit)),
            ));
            i = end;
        }
    }
    for (n, f) in singles.into_iter().enumerate() {
        f.await.unwrap();
        let _ = n;
    }
    for (start, b) in batches {
        let out = b.await.unwrap();
        assert_eq!(out, (start..start + out.len()).collect::<Vec<_>>());
    }
    let twice: Vec<_> = (0..N)
        .filter(|&i| runs[i].load(Ordering::Relaxed) != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "units not run exactly once: {:?}",
        &twice[..twice.len().min(10)]
    );
    let s = pool.stats();
    assert_eq!(s.tasks_completed.total(), N as u64);
    assert_eq!(s.tasks_submitted.total(), N as u64);
    assert!(s.resizes.grow_queued_headroom >= 2, "{:?}", s.resizes);
    assert!(
        s.resizes.shrink_saturated + s.resizes.shrink_idle >= 2,
        "{:?}",
        s.resizes
    );
    assert!(s.max_seen <= 8 && s.min_seen >= 1, "{s:?}");
    pool.shutdown().await;
    assert_eq!(pool.stats().workers, 0);
}

#[tokio::test]
async fn panic_is_isolated() {
    let pool = WorkerPool::manual(&WorkerConfig::fixed(2), Box::new(Scripted::default())).unwrap();
    let err = pool
        .submit(Priority::High, || -> u32 { panic!("boom {}", 42) })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::TaskPanicked(m) if m == "boom 42"),
        "{err:?}"
    );
    let s = pool.stats();
    assert_eq!((s.tasks_panicked, s.workers), (1, 2));
    let results: Vec<_> = (0..20)
        .map(|i| pool.submit(Priority::Normal, move || i))
        .collect();
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), i);
    }
    // A panicking unit in a batch fails the batch; the other units still run.
    let ran = Arc::new(AtomicUsize::new(0));
    let units = (0..100).map(|i| {
        let ran = Arc::clone(&ran);
        move || {
            if i == 37 {
                panic!("unit 37");
            }
            ran.fetch_add(1, Ordering::Relaxed);
        }
    });
    let err = pool.submit_batch(Priority::Low, units).await.unwrap_err();
    assert!(
        matches!(&err, Error::TaskPanicked(m) if m == "unit 37"),
        "{err:?}"
    );
    assert_eq!(ran.load(Ordering::Relaxed), 99);
    let s = pool.stats();
    assert_eq!((s.tasks_panicked, s.workers), (2, 2));
    assert_eq!(s.tasks_completed.low, 99);
    assert_eq!(s.tasks_completed.normal, 20);
}

#[tokio::test]
async fn submit_batch_keeps_input_order_in_few_queue_entries() {
    let mut config = WorkerConfig::fixed(1);
    config.chunks_per_worker = 4;
    let pool = WorkerPool::manual(&config, Box::new(Scripted::default())).unwrap();
    let (release, blocker) = block_worker(&pool).await;
    let batch = pool.submit_batch(
        Priority::Normal,
        (0..10_000u64).map(|i| {
            move || {
                if i % 1000 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
                i * 3
            }
        }),
    );
    let s = pool.stats();
    assert_eq!(s.task_queue_depth, 10_000);
    assert_eq!(
        s.task_queue_entries, 4,
        "one queue entry per chunk, not per unit"
    );
    drop(release);
    blocker.await;
    let out = batch.await.unwrap();
    assert_eq!(out, (0..10_000u64).map(|i| i * 3).collect::<Vec<_>>());
    let empty: Vec<fn() -> u8> = Vec::new();
    assert!(pool
        .submit_batch(Priority::High, empty)
        .await
        .unwrap()
        .is_empty());
    // Across several workers the order still holds.
    let pool = WorkerPool::manual(&WorkerConfig::fixed(3), Box::new(Scripted::default())).unwrap();
    let out = pool
        .submit_batch(Priority::Normal, (0..5_001u32).map(|i| move || i))
        .await
        .unwrap();
    assert_eq!(out, (0..5_001).collect::<Vec<_>>());
}

#[tokio::test]
async fn idle_workers_all_take_work() {
    // Four units that each wait until all four run at once: only possible if every idle
    // worker picked one up.
    let pool = WorkerPool::manual(&WorkerConfig::fixed(4), Box::new(Scripted::default())).unwrap();
    for _round in 0..20 {
        let running = Arc::new(AtomicUsize::new(0));
        let units: Vec<_> = (0..4)
            .map(|_| {
                let running = Arc::clone(&running);
                pool.submit(Priority::Normal, move || {
                    running.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while running.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                    running.load(Ordering::SeqCst) >= 4
                })
            })
            .collect();
        for u in units {
            assert!(u.await.unwrap(), "a unit waited while a worker idled");
        }
    }
}

#[tokio::test]
async fn shutdown_finishes_queued_units_then_rejects() {
    let pool = one_worker(Duration::from_secs(1));
    let units: Vec<_> = (0..30)
        .map(|i| {
            pool.submit(Priority::Low, move || {
                std::thread::sleep(Duration::from_millis(1));
                i
            })
        })
        .collect();
    let other = pool.clone();
    pool.shutdown().await;
    for (i, u) in units.into_iter().enumerate() {
        assert_eq!(u.await.unwrap(), i);
    }
    assert!(matches!(
        other.submit(Priority::Critical, || 1).await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(
        other.submit_batch(Priority::Low, [|| 1]).await,
        Err(Error::ShuttingDown)
    ));
    let s = other.stats();
    assert_eq!((s.workers, s.tasks_completed.low), (0, 30));
    other.shutdown().await; // idempotent
}

#[test]
fn works_outside_a_runtime_with_the_real_sampler() {
    let mut config = WorkerConfig::default();
    config.sample_interval = Duration::from_millis(10);
    let pool = WorkerPool::start(&config).unwrap();
    let f = pool.submit(Priority::Normal, || 2 + 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(f).unwrap(), 4);
    std::thread::sleep(Duration::from_millis(300));
    let s = pool.stats();
    assert!(!s.history.is_empty());
    assert!((0.0..=1.0).contains(&s.cpu_load_ratio));
    let (min, max) = config.bounds();
    assert!(s.workers >= min && s.workers <= max);
    pool.shutdown_blocking();
    assert_eq!(pool.stats().workers, 0);
    assert!(format!("{pool:?}").contains("WorkerPool"));
    fn serializable<T: serde::Serialize + Clone + std::fmt::Debug>(_: &T) {}
    serializable(&s);
}

#[tokio::test]
async fn wait_and_run_histograms_are_recorded() {
    let pool = one_worker(Duration::from_secs(1));
    for _ in 0..10 {
        pool.submit(Priority::Normal, || {
            std::thread::sleep(Duration::from_millis(2))
        })
        .await
        .unwrap();
    }
    pool.shutdown().await;
    let s = pool.stats();
    assert_eq!(s.run_seconds.count, 10);
    assert_eq!(s.wait_seconds.count, 10);
    assert!(s.run_seconds.quantile(0.5) >= 0.001, "{:?}", s.run_seconds);
}

// ===== panics a unit can cause outside its closure body =====

/// Panics when dropped while armed (never during an unwind, which would abort the test).
struct PanicOnDrop(bool);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if self.0 && !std::thread::panicking() {
            panic!("drop bomb");
        }
    }
}

/// A panic payload whose own `Drop` panics again with a payload one shorter, `n` times.
struct PayloadBomb(u32);

impl Drop for PayloadBomb {
    fn drop(&mut self) {
        if self.0 > 0 && !std::thread::panicking() {
            std::panic::panic_any(PayloadBomb(self.0 - 1));
        }
    }
}

/// Hang guard: an old-code hang becomes a test failure, not a stuck suite.
const HANG: Duration = Duration::from_secs(20);

fn fixed_manual(workers: usize) -> WorkerPool {
    WorkerPool::manual(&WorkerConfig::fixed(workers), Box::new(Scripted::default())).unwrap()
}

/// The pool still runs work on its only worker and shuts down.
async fn still_serves(pool: &WorkerPool) {
    for i in 0..5u32 {
        assert_eq!(pool.submit(Priority::Normal, move || i).await.unwrap(), i);
    }
    let s = pool.stats();
    assert_eq!((s.workers, s.target_workers), (1, 1), "{s:?}");
}

#[tokio::test]
async fn captured_value_panicking_in_drop_keeps_the_worker() {
    tokio::time::timeout(HANG, async {
        let pool = fixed_manual(1);
        // The closure owns the bomb; it is dropped when the closure body ends.
        let bomb = PanicOnDrop(true);
        let err = pool
            .submit(Priority::Normal, move || {
                let _keep = &bomb;
                1u32
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::TaskPanicked(m) if m == "drop bomb"),
            "{err:?}"
        );
        still_serves(&pool).await;
        // A captured value whose Drop panics with a payload that panics again when dropped.
        let bomb = PayloadBomb(1_000);
        let err = pool
            .submit(Priority::Normal, move || {
                let _keep = &bomb;
                2u32
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TaskPanicked(_)), "{err:?}");
        still_serves(&pool).await;
        // The closure itself panicking with such a payload.
        let err = pool
            .submit(Priority::Normal, || -> u32 {
                std::panic::panic_any(PayloadBomb(3))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TaskPanicked(_)), "{err:?}");
        still_serves(&pool).await;
        assert_eq!(pool.stats().tasks_panicked, 3);
        pool.shutdown().await;
        assert_eq!(pool.stats().workers, 0);
    })
    .await
    .expect("the pool hung after a unit panicked outside its body");
}

#[tokio::test]
async fn result_panicking_in_drop_keeps_the_worker() {
    tokio::time::timeout(HANG, async {
        let pool = fixed_manual(1);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let abandoned = pool.submit(Priority::Normal, move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            PanicOnDrop(true)
        });
        started_rx.await.unwrap();
        // The submitter gives up: the result is dropped on the worker, and its Drop panics.
        drop(abandoned);
        release_tx.send(()).unwrap();
        still_serves(&pool).await;
        pool.shutdown().await;
        assert_eq!(pool.stats().workers, 0);
    })
    .await
    .expect("the pool hung after a result panicked in Drop");
}

#[tokio::test]
async fn batch_with_a_result_panicking_in_drop_keeps_the_worker() {
    tokio::time::timeout(HANG, async {
        let pool = fixed_manual(1);
        // Unit 7 panics, so the batch fails and the other results are dropped, unit 3's
        // Drop panicking.
        let units = (0..10).map(|i| {
            move || {
                if i == 7 {
                    panic!("unit 7");
                }
                PanicOnDrop(i == 3)
            }
        });
        let err = pool
            .submit_batch(Priority::Low, units)
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, Error::TaskPanicked(m) if m == "unit 7"),
            "{err:?}"
        );
        still_serves(&pool).await;
        // A batch whose submitter gave up: every result is dropped on the worker.
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let mut gate = Some((started_tx, release_rx));
        let units: Vec<_> = (0..4)
            .map(|i| {
                let gate = gate.take();
                move || {
                    if let Some((started, release)) = gate {
                        let _ = started.send(());
                        let _ = release.recv();
                    }
                    PanicOnDrop(i == 2)
                }
            })
            .collect();
        let abandoned = pool.submit_batch(Priority::Low, units);
        started_rx.await.unwrap();
        drop(abandoned);
        release_tx.send(()).unwrap();
        still_serves(&pool).await;
        pool.shutdown().await;
        assert_eq!(pool.stats().workers, 0);
    })
    .await
    .expect("the pool hung after a batch result panicked in Drop");
}

#[tokio::test]
async fn shutdown_is_bounded_when_a_unit_is_stuck() {
    tokio::time::timeout(HANG, async {
        let mut config = WorkerConfig::fixed(1);
        config.shutdown_timeout = Duration::from_millis(200);
        let pool = WorkerPool::manual(&config, Box::new(Scripted::default())).unwrap();
        let (release, blocker) = block_worker(&pool).await;
        let queued: Vec<_> = (0..3)
            .map(|i| pool.submit(Priority::Low, move || i))
            .collect();
        let batch = pool.submit_batch(Priority::Low, (0..5).map(|i| move || i));
        // The blocker does not finish while shutdown waits; shutdown must still return.
        let report = tokio::time::timeout(Duration::from_secs(5), pool.shutdown())
            .await
            .expect("shutdown hung on a stuck worker");
        assert!(!report.is_clean());
        assert_eq!((report.stuck_threads, report.cancelled_units), (1, 8));
        for q in queued {
            assert!(matches!(q.await, Err(Error::ShuttingDown)));
        }
        assert!(matches!(batch.await, Err(Error::ShuttingDown)));
        let s = pool.stats();
        assert_eq!((s.tasks_cancelled, s.shutdown_timeouts), (8, 1), "{s:?}");
        // The stuck unit still completes for its submitter, and then its thread exits.
        drop(release);
        blocker.await;
        assert!(pool.shutdown().await.is_clean());
        assert_eq!(pool.stats().workers, 0);
    })
    .await
    .expect("hung");
}

#[tokio::test]
async fn clean_shutdown_reports_clean_and_cancels_nothing() {
    let pool = fixed_manual(2);
    let units: Vec<_> = (0..50)
        .map(|i| pool.submit(Priority::Normal, move || i))
        .collect();
    let report = pool.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    for (i, u) in units.into_iter().enumerate() {
        assert_eq!(u.await.unwrap(), i);
    }
    let s = pool.stats();
    assert_eq!(
        (s.tasks_cancelled, s.shutdown_timeouts, s.workers),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn hub_shutdown_completes_after_units_panic_outside_their_body() {
    tokio::time::timeout(HANG, async {
        let mut config = swarmbus::HubConfig::default();
        config.workers = WorkerConfig::fixed(1);
        let hub = swarmbus::Hub::start(config).unwrap();
        let bomb = PayloadBomb(10);
        let err = hub
            .submit(Priority::Normal, move || {
                let _keep = &bomb;
                1u32
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TaskPanicked(_)), "{err:?}");
        // A caller that gives up while its unit runs: the result drops on the worker.
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let h = hub.clone();
        let caller = tokio::spawn(async move {
            h.submit(Priority::Normal, move || {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                PanicOnDrop(true)
            })
            .await
            .map(std::mem::forget)
        });
        started_rx.await.unwrap();
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        release_tx.send(()).unwrap();
        assert_eq!(hub.submit(Priority::High, || 3).await.unwrap(), 3);
        let m = hub.metrics();
        assert_eq!(m.workers.workers, 1, "{:?}", m.workers);
        assert!(m.workers.drop_panics >= 1, "{:?}", m.workers);
        hub.shutdown().await.unwrap();
    })
    .await
    .expect("hub.shutdown() hung after a unit panicked outside its body");
}

#[tokio::test]
async fn a_panicking_sampler_does_not_stop_the_controller_or_hang_shutdown() {
    struct Flaky(u32);
    impl LoadSampler for Flaky {
        fn sample(&mut self) -> LoadSample {
            self.0 += 1;
            if self.0 % 2 == 1 {
                panic!("sampler broke");
            }
            LoadSample::default()
        }
    }
    tokio::time::timeout(HANG, async {
        let mut config = WorkerConfig::fixed(1);
        config.sample_interval = Duration::from_millis(1);
        let pool = WorkerPool::with_sampler(&config, Box::new(Flaky(0))).unwrap();
        // Samples keep coming after the first panic: the controller is still alive.
        wait_until(&pool, "samples after a sampler panic", |s| {
            s.history.len() >= 3
        })
        .await;
        assert!(pool.stats().controller_panics >= 3);
        assert_eq!(pool.submit(Priority::Normal, || 5).await.unwrap(), 5);
        assert!(pool.shutdown().await.is_clean());
    })
    .await
    .expect("the pool hung after its sampler panicked");
}

// ===== config ranges =====

/// Just over the one-hour bound on durations.
const OVER_HOUR: Duration = Duration::from_millis(3_600_001);

#[test]
fn validate_refuses_every_out_of_range_value_naming_the_field() {
    type Set = fn(&mut WorkerConfig);
    let cases: &[(&str, Set)] = &[
        ("min_workers", |c| c.min_workers = 0),
        ("min_workers", |c| {
            c.min_workers = 5_000;
            c.max_workers = 5_000;
        }),
        ("max_workers", |c| c.max_workers = 4_097),
        ("max_workers", |c| c.max_workers = c.min_workers - 1),
        ("fixed_workers", |c| c.fixed_workers = Some(0)),
        ("fixed_workers", |c| c.fixed_workers = Some(4_097)),
        ("sample_interval", |c| c.sample_interval = Duration::ZERO),
        ("sample_interval", |c| c.sample_interval = OVER_HOUR),
        ("sample_interval", |c| c.sample_interval = Duration::MAX),
        ("grow_below_cpu", |c| c.grow_below_cpu = f64::NAN),
        ("grow_below_cpu", |c| c.grow_below_cpu = 0.99),
        ("shrink_above_cpu", |c| c.shrink_above_cpu = 1.5),
        ("grow_after", |c| c.grow_after = 0),
        ("grow_after", |c| c.grow_after = u32::MAX),
        ("shrink_after", |c| c.shrink_after = 0),
        ("shrink_after", |c| c.shrink_after = u32::MAX),
        ("idle_after", |c| c.idle_after = 0),
        ("idle_after", |c| c.idle_after = u32::MAX),
        ("grow_step", |c| c.grow_step = 0),
        ("grow_step", |c| c.grow_step = usize::MAX),
        ("shrink_step", |c| c.shrink_step = 0),
        ("shrink_step", |c| c.shrink_step = usize::MAX),
        ("cooldown", |c| c.cooldown = OVER_HOUR),
        ("cooldown", |c| c.cooldown = Duration::MAX),
        ("starvation_bound", |c| c.starvation_bound = OVER_HOUR),
        ("starvation_bound", |c| c.starvation_bound = Duration::MAX),
        ("promotion_interval", |c| c.promotion_interval = 0),
        ("promotion_interval", |c| c.promotion_interval = u32::MAX),
        ("idle_spin", |c| c.idle_spin = Duration::from_secs(1)),
        ("idle_spin", |c| c.idle_spin = Duration::MAX),
        ("chunks_per_worker", |c| c.chunks_per_worker = 0),
        ("chunks_per_worker", |c| c.chunks_per_worker = usize::MAX),
        ("history_len", |c| c.history_len = usize::MAX),
        ("shutdown_timeout", |c| c.shutdown_timeout = Duration::ZERO),
        ("shutdown_timeout", |c| c.shutdown_timeout = OVER_HOUR),
        ("shutdown_timeout", |c| c.shutdown_timeout = Duration::MAX),
    ];
    let mut accepted = Vec::new();
    for (field, set) in cases {
        let mut c = WorkerConfig::default();
        // Elastic bounds that are valid on any machine, so each case breaks one value.
        c.min_workers = 2;
        c.max_workers = 8;
        set(&mut c);
        match c.validate() {
            Err(Error::Config(m)) if m.contains(field) => {}
            other => accepted.push(format!("{field}: {other:?} for {c:?}")),
        }
    }
    assert!(accepted.is_empty(), "{}", accepted.join("\n"));
    // The documented upper bounds themselves are accepted.
    let mut c = WorkerConfig::default();
    c.min_workers = 1;
    c.max_workers = 4_096;
    c.sample_interval = Duration::from_secs(3600);
    c.cooldown = Duration::from_secs(3600);
    c.starvation_bound = Duration::from_secs(3600);
    c.idle_spin = Duration::from_millis(10);
    c.grow_after = 100_000;
    c.promotion_interval = 1_024;
    c.chunks_per_worker = 1_024;
    c.history_len = 10_000;
    c.shutdown_timeout = Duration::from_secs(3600);
    c.validate().unwrap();
    // A huge idle_spin used to reach `Instant + Duration` in a worker and panic it.
    let mut c = WorkerConfig::fixed(1);
    c.idle_spin = Duration::MAX;
    assert!(matches!(WorkerPool::start(&c), Err(Error::Config(m)) if m.contains("idle_spin")));
}
