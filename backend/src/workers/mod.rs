//! The elastic worker pool: CPU-heavy work off the async runtime, on OS threads.
//!
//! Agents hand closures to [`WorkerPool::submit`] (one unit) or
//! [`WorkerPool::submit_batch`] (many small units, split into a few chunks so a batch
//! costs a handful of queue operations, not one per unit) and await the result.
//!
//! **Scheduling.** One FIFO lane per [`Priority`]; a free worker takes from the highest
//! non-empty lane (`Critical > High > Normal > Low`). Anti-starvation by aging: if the head
//! of a lower lane has waited at least [`WorkerConfig::starvation_bound`] (default 100 ms),
//! the oldest such head is served next instead, at most once per
//! [`WorkerConfig::promotion_interval`] dispatches (default 4). So `Low` keeps moving
//! under sustained `High` load (a Low head waits at most about the bound plus N
//! dispatches), while under overload, when every Low head is aged, higher lanes still get
//! N-1 of every N dispatches. Idle workers are woken for every queued entry, so no work waits while a
//! worker is idle; a worker that runs dry spins for [`WorkerConfig::idle_spin`] before it
//! parks, which makes back-to-back submits skip the thread wake-up.
//!
//! **Elastic size.** Between `min_workers` and `max_workers` threads (or a fixed count). A
//! controller samples the load every `sample_interval` through a [`LoadSampler`] (the real
//! one is [`SysinfoSampler`]) and applies its resize rule (one step of it: [`WorkerPool::step`]):
//!
//! | condition, for N consecutive samples and after the cool-down       | action |
//! |---------------------------------------------------------------------|--------|
//! | queued units > idle workers, CPU < `grow_below_cpu`, below max      | grow by `grow_step` |
//! | CPU ≥ `shrink_above_cpu`, above min                                 | shrink by `shrink_step` (saturated) |
//! | nothing queued, a worker idle, above min                            | shrink by `shrink_step` (idle) |
//!
//! A retiring worker finishes its current unit first and only retires when it next looks
//! for work, under the queue lock, so a shrink never loses or duplicates a unit.
//!
//! **Panics.** A unit that panics resolves to [`Error::TaskPanicked`] and the worker keeps
//! running, wherever the panic comes from: the closure body, the `Drop` of a value it
//! captured, the `Drop` of its result when nobody waits for it any more (or when its batch
//! failed), or the `Drop` of the panic payload (nested payload panics are caught up to 8
//! deep, then the payload is leaked). Those caught outside the body are counted in
//! [`WorkerStats::drop_panics`]. The one thing no library can catch is a `Drop` that
//! panics while the body is already unwinding: Rust aborts the process. The worker loop
//! itself runs under `catch_unwind` too; if it ever panics (a bug), the worker is counted
//! in [`WorkerStats::worker_deaths`] and a replacement is started.
//!
//! **Shutdown.** [`WorkerPool::shutdown`] lets the workers finish the queued units, but
//! waits at most [`WorkerConfig::shutdown_timeout`] (default 10 s). Then the units still
//! queued are cancelled (their submitters get [`Error::ShuttingDown`]), the threads still
//! busy are left running detached, and the returned [`WorkerShutdown`] reports both.
//!
//! ```
//! use swarmbus::workers::{WorkerConfig, WorkerPool};
//! use swarmbus::Priority;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> swarmbus::Result<()> {
//! let pool = WorkerPool::start(&WorkerConfig::fixed(2))?;
//! let sum = pool.submit(Priority::High, || (1..=100u64).sum::<u64>()).await?;
//! assert_eq!(sum, 5050);
//! let squares = pool.submit_batch(Priority::Normal, (0..10u64).map(|i| move || i * i)).await?;
//! assert_eq!(squares[9], 81);
//! pool.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod controller;
mod panics;
mod queue;
mod sampler;
mod stats;
mod worker;

pub use config::WorkerConfig;
pub use controller::{Decision, ResizeReason};
pub use sampler::{LoadSample, LoadSampler, SysinfoSampler};
pub use stats::{ByPriority, LoadPoint, ResizeCounts, WorkerStats};
pub use worker::WorkerShutdown;

use crate::{Error, Priority, Result};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use worker::{Finish, Shared, Task};

/// A handle to the worker pool; clones share the pool. Dropping the last handle stops the
/// pool after the queued units have run (without waiting); call
/// [`shutdown`](Self::shutdown) to wait.
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<Handle>,
}

/// Owns the user side of the pool; its drop tells the threads to wind down.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
    }
}

impl WorkerPool {
    /// Starts a pool that samples the real machine load ([`SysinfoSampler`]).
    /// Works inside or outside a tokio runtime: workers and controller are OS threads.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `config` is out of range ([`WorkerConfig::validate`]);
    /// [`Error::CpuSampler`] if the CPU times cannot be read; [`Error::Io`] if a thread
    /// cannot be started.
    pub fn start(config: &WorkerConfig) -> Result<WorkerPool> {
        Self::with_sampler(config, Box::new(SysinfoSampler::new()?))
    }

    /// Starts a pool whose controller thread reads load from `sampler`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `config` is out of range; [`Error::Io`] if a thread cannot be
    /// started.
    pub fn with_sampler(
        config: &WorkerConfig,
        sampler: Box<dyn LoadSampler>,
    ) -> Result<WorkerPool> {
        Self::launch(config, sampler, false)
    }

    /// Starts a pool without a controller thread: it only resizes when [`step`](Self::step)
    /// is called (deterministic tests, or an embedding that drives its own clock).
    ///
    /// # Errors
    ///
    /// As [`with_sampler`](Self::with_sampler): [`Error::Config`] if `config` is out of
    /// range; [`Error::Io`] if a thread cannot be started.
    pub fn manual(config: &WorkerConfig, sampler: Box<dyn LoadSampler>) -> Result<WorkerPool> {
        Self::launch(config, sampler, true)
    }

    fn launch(
        config: &WorkerConfig,
        sampler: Box<dyn LoadSampler>,
        manual: bool,
    ) -> Result<WorkerPool> {
        config.validate()?;
        let shared = Arc::new(Shared::new(config.clone(), sampler));
        shared.start(manual)?;
        Ok(WorkerPool {
            inner: Arc::new(Handle { shared }),
        })
    }

    /// Runs `f` on a worker at `priority`. The unit is queued at once; the future resolves
    /// to its result.
    ///
    /// # Errors
    ///
    /// [`Error::TaskPanicked`] if the unit panicked (in its body or while dropping what it
    /// captured); [`Error::ShuttingDown`] if the pool no longer accepts work, or shut down
    /// and cancelled the unit before it ran (see [`WorkerConfig::shutdown_timeout`]).
    pub fn submit<F, T>(
        &self,
        priority: Priority,
        f: F,
    ) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task: Task = Box::new(move |finish: Finish<'_>| match finish {
            Finish::Run(local) => {
                let start = Instant::now();
                // Captured values drop at the end of the call, inside the catch.
                let out =
                    catch_unwind(AssertUnwindSafe(f)).map_err(|p| local.contain().panic_error(p));
                local.finish(
                    priority,
                    usize::from(out.is_ok()),
                    usize::from(out.is_err()),
                    start,
                );
                // If the submitter dropped its future, the result drops here, contained.
                local.contain().send(tx, out);
            }
            Finish::Cancel(contain) => {
                contain.drop_value(f);
                contain.send(tx, Err(Error::ShuttingDown));
            }
        });
        let queued = self.inner.shared.push([(priority, 1, task)]);
        async move {
            queued?;
            rx.await.unwrap_or_else(|_| Err(worker_died()))
        }
    }

    /// Runs every unit at `priority`, in parallel across workers, and resolves to the
    /// results in input order. The units are split into about `chunks_per_worker` chunks
    /// per worker and queued with one lock, so a batch of thousands of tiny units costs a
    /// few queue operations.
    ///
    /// # Errors
    ///
    /// If units panic, the other units still run and the batch resolves to the first
    /// panic's [`Error::TaskPanicked`] (the other results are dropped, contained);
    /// [`Error::ShuttingDown`] as for [`submit`](Self::submit).
    pub fn submit_batch<I, F, T>(
        &self,
        priority: Priority,
        units: I,
    ) -> impl Future<Output = Result<Vec<T>>> + Send + 'static
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut units: Vec<F> = units.into_iter().collect();
        let n = units.len();
        let shared = &self.inner.shared;
        let chunks = if n == 0 {
            0
        } else {
            (shared
                .target()
                .saturating_mul(shared.config().chunks_per_worker))
            .clamp(1, n)
        };
        let (base, extra) = (n / chunks.max(1), n % chunks.max(1));
        let mut receivers = Vec::with_capacity(chunks);
        let mut tasks = Vec::with_capacity(chunks);
        // Split from the back so each split is O(chunk); the first `extra` chunks get one more.
        for c in (0..chunks).rev() {
            let len = base + usize::from(c < extra);
            let chunk = units.split_off(units.len() - len);
            let (tx, rx) = oneshot::channel();
            receivers.push(rx);
            tasks.push((priority, len, chunk_task(priority, chunk, tx)));
        }
        receivers.reverse();
        tasks.reverse();
        let queued = if n == 0 { Ok(()) } else { shared.push(tasks) };
        let contain = Arc::clone(shared.containment());
        async move {
            queued?;
            let mut out = Vec::with_capacity(n);
            let mut first_error = None;
            for rx in receivers {
                match rx.await.unwrap_or_else(|_| Err(worker_died())) {
                    Ok(values) if first_error.is_none() => out.extend(values),
                    Ok(values) => contain.drop_value(values),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match first_error {
                None => Ok(out),
                Some(e) => {
                    // The results of the other chunks are not handed out; drop them here
                    // without letting a panicking Drop escape into the caller.
                    contain.drop_value(out);
                    Err(e)
                }
            }
        }
    }

    /// Samples the load once and applies the resize rule now; returns what was done.
    /// The controller thread calls this every `sample_interval`; a [`manual`](Self::manual)
    /// pool only resizes through it.
    pub fn step(&self) -> Decision {
        self.inner.shared.step()
    }

    /// A snapshot of counters, queue depths, histograms and recent load samples.
    pub fn stats(&self) -> WorkerStats {
        self.inner.shared.stats()
    }

    /// The settings the pool runs with.
    pub fn config(&self) -> &WorkerConfig {
        self.inner.shared.config()
    }

    /// Stops accepting work (later submits fail with [`Error::ShuttingDown`]), lets the
    /// workers finish every queued unit, and waits for all pool threads to exit, at most
    /// [`WorkerConfig::shutdown_timeout`]: if that runs out, the units still queued are
    /// cancelled and the busy threads left running, and the report says how many.
    /// The wait runs on tokio's blocking pool, so it never blocks the async threads.
    /// Idempotent; from inside a unit it only signals (waiting would deadlock).
    pub async fn shutdown(&self) -> WorkerShutdown {
        self.inner.shared.begin_shutdown();
        if worker::on_worker_thread() {
            return WorkerShutdown::default();
        }
        self.inner.shared.join_async().await
    }

    /// [`shutdown`](Self::shutdown) for synchronous code: blocks until the threads exit or
    /// the bound runs out.
    pub fn shutdown_blocking(&self) -> WorkerShutdown {
        self.inner.shared.begin_shutdown();
        if worker::on_worker_thread() {
            return WorkerShutdown::default();
        }
        self.inner.shared.join_blocking()
    }
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stats();
        f.debug_struct("WorkerPool")
            .field("workers", &s.workers)
            .field("target_workers", &s.target_workers)
            .field("queued", &s.task_queue_depth)
            .finish_non_exhaustive()
    }
}

/// One batch chunk: runs its units in order, each under `catch_unwind`, and sends the
/// results (or the first panic) back. Everything it leaves behind drops contained.
fn chunk_task<F, T>(priority: Priority, chunk: Vec<F>, tx: oneshot::Sender<Result<Vec<T>>>) -> Task
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Box::new(move |finish: Finish<'_>| match finish {
        Finish::Run(local) => {
            let start = Instant::now();
            let mut values = Vec::with_capacity(chunk.len());
            let mut panic = None;
            let mut panicked = 0;
            for f in chunk {
                match catch_unwind(AssertUnwindSafe(f)) {
                    Ok(v) => values.push(v),
                    Err(payload) => {
                        panicked += 1;
                        let e = local.contain().panic_error(payload);
                        panic.get_or_insert(e);
                    }
                }
            }
            local.finish(priority, values.len(), panicked, start);
            let out = match panic {
                None => Ok(values),
                Some(e) => {
                    local.contain().drop_value(values);
                    Err(e)
                }
            };
            local.contain().send(tx, out);
        }
        Finish::Cancel(contain) => {
            contain.drop_value(chunk);
            contain.send(tx, Err(Error::ShuttingDown));
        }
    })
}

/// What a submitter gets if its unit's sender vanished unsent: only a worker whose own
/// loop panicked mid-unit (a bug) drops a unit that way.
fn worker_died() -> Error {
    Error::TaskPanicked("the worker running this unit died".to_string())
}
