//! The worker threads, the controller thread, and the state they share.

use super::controller::{decide, ControllerState, Decision, Observation, ResizeReason};
use super::queue::{Entry, Lanes};
use super::stats::{ByPriority, LoadPoint, ResizeCounts, WorkerStats};
use super::{LoadSample, LoadSampler, WorkerConfig};
use crate::metrics::histogram::{self, Histogram, LocalHistogram};
use crate::{Error, Priority, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::watch;

/// What a queued entry runs: a unit or a chunk, which reports through the worker's counters.
pub(crate) type Task = Box<dyn FnOnce(&mut WorkerLocal) + Send>;

/// Local histograms are merged into the shared ones after this many units.
const MERGE_EVERY: u64 = 64;

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// True on a pool worker thread (joining the pool from there would deadlock).
pub(crate) fn on_worker_thread() -> bool {
    IS_WORKER.with(Cell::get)
}

/// State guarded by the queue lock: the lanes and the worker head-count.
struct State {
    lanes: Lanes<Task>,
    /// Worker threads alive (counted from before spawn until they exit).
    live: usize,
    /// Workers wanted; while `live > target` a worker that looks for work retires instead.
    target: usize,
    /// Workers parked on the condvar.
    parked: usize,
    /// Workers spinning before they park.
    spinning: usize,
    shutdown: bool,
    min_seen: usize,
    max_seen: usize,
}

/// Counters one worker owns; only that worker writes them, so the adds never contend.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    completed: [AtomicU64; 4],
    panicked: AtomicU64,
}

/// Counters of running workers, plus the totals of retired ones.
#[derive(Debug, Default)]
struct Registry {
    live: Vec<Arc<WorkerCounters>>,
    retired_completed: [u64; 4],
    retired_panicked: u64,
}

/// The controller's part: sampler, streaks, history.
struct Control {
    sampler: Box<dyn LoadSampler>,
    state: ControllerState,
    last: LoadSample,
    resizes: ResizeCounts,
    history: VecDeque<LoadPoint>,
}

/// Everything the pool's threads share.
pub(crate) struct Shared {
    config: WorkerConfig,
    state: Mutex<State>,
    work: Condvar,
    /// Mirror of the queued entry count, read by spinning workers without the lock.
    pending: AtomicUsize,
    stopping: AtomicBool,
    registry: Mutex<Registry>,
    wait_hist: Histogram,
    run_hist: Histogram,
    control: Mutex<Control>,
    started: Instant,
    /// Controller stop flag; the controller sleeps on `stop_cv` between samples.
    stop: Mutex<bool>,
    stop_cv: Condvar,
    /// Pool threads (workers and controller) still running.
    threads: watch::Sender<usize>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

/// A worker's private accumulators, handed to each task it runs.
#[derive(Debug)]
pub(crate) struct WorkerLocal {
    counters: Arc<WorkerCounters>,
    wait: LocalHistogram,
    run: LocalHistogram,
}

impl WorkerLocal {
    /// Records a finished unit or chunk; call it before sending the result, so stats read
    /// after the submit resolves already include it.
    pub(crate) fn finish(
        &mut self,
        priority: Priority,
        ok: usize,
        panicked: usize,
        start: Instant,
    ) {
        let n = ok + panicked;
        if n > 0 {
            let per_unit = start.elapsed().as_secs_f64() / n as f64;
            self.run.observe_n(per_unit, n as u64);
        }
        if ok > 0 {
            self.counters.completed[priority.index()].fetch_add(ok as u64, Relaxed);
        }
        if panicked > 0 {
            self.counters.panicked.fetch_add(panicked as u64, Relaxed);
        }
    }

    fn flush(&mut self, shared: &Shared) {
        shared.wait_hist.merge(&mut self.wait);
        shared.run_hist.merge(&mut self.run);
    }
}

impl Shared {
    pub(crate) fn new(config: WorkerConfig, sampler: Box<dyn LoadSampler>) -> Self {
        Self {
            state: Mutex::new(State {
                lanes: Lanes::new(config.starvation_bound, config.promotion_interval),
                live: 0,
                target: 0,
                parked: 0,
                spinning: 0,
                shutdown: false,
                min_seen: usize::MAX,
                max_seen: 0,
            }),
            work: Condvar::new(),
            pending: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            registry: Mutex::new(Registry::default()),
            wait_hist: Histogram::new(histogram::SECONDS),
            run_hist: Histogram::new(histogram::SECONDS),
            control: Mutex::new(Control {
                sampler,
                state: ControllerState::default(),
                last: LoadSample::default(),
                resizes: ResizeCounts::default(),
                history: VecDeque::with_capacity(config.history_len),
            }),
            started: Instant::now(),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            threads: watch::Sender::new(0),
            handles: Mutex::new(Vec::new()),
            config,
        }
    }

    pub(crate) fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Workers the pool is sized for (used to pick batch chunk counts).
    pub(crate) fn target(&self) -> usize {
        self.state.lock().target
    }

    /// Queues entries (one lock for all of them) and wakes as many parked workers as needed.
    pub(crate) fn push(
        &self,
        entries: impl IntoIterator<Item = (Priority, usize, Task)>,
    ) -> Result<()> {
        let mut st = self.state.lock();
        if st.shutdown {
            return Err(Error::ShuttingDown);
        }
        let now = Instant::now();
        for (priority, units, item) in entries {
            st.lanes.push(Entry {
                priority,
                units,
                enqueued: now,
                item,
            });
        }
        let entries = st.lanes.entries();
        self.pending.store(entries, Relaxed);
        // Spinners will pick up that many entries themselves; wake parked workers for the rest.
        let wake = entries.saturating_sub(st.spinning).min(st.parked);
        drop(st);
        for _ in 0..wake {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Starts the initial workers and, unless manual, the controller thread.
    pub(crate) fn start(self: &Arc<Self>, manual: bool) -> Result<()> {
        let (min, _) = self.config.bounds();
        {
            let mut st = self.state.lock();
            st.target = min;
            st.live = min;
        }
        for _ in 0..min {
            if let Err(e) = self.spawn_worker() {
                self.begin_shutdown();
                return Err(e);
            }
        }
        if !manual {
            let shared = Arc::clone(self);
            self.threads.send_modify(|n| *n += 1);
            let spawned = std::thread::Builder::new()
                .name("swarmbus-workers-ctl".into())
                .spawn(move || {
                    shared.control_loop();
                    shared.threads.send_modify(|n| *n -= 1);
                });
            match spawned {
                Ok(h) => self.handles.lock().push(h),
                Err(e) => {
                    self.threads.send_modify(|n| *n -= 1);
                    self.begin_shutdown();
                    return Err(Error::Io(e));
                }
            }
        }
        let mut st = self.state.lock();
        st.min_seen = st.live;
        st.max_seen = st.live;
        Ok(())
    }

    /// Spawns one worker thread; the caller has already counted it in `live` and `target`.
    fn spawn_worker(self: &Arc<Self>) -> Result<()> {
        let counters = Arc::new(WorkerCounters::default());
        self.registry.lock().live.push(Arc::clone(&counters));
        let shared = Arc::clone(self);
        let mine = Arc::clone(&counters);
        self.threads.send_modify(|n| *n += 1);
        let spawned = std::thread::Builder::new()
            .name("swarmbus-worker".into())
            .spawn(move || shared.worker_main(mine));
        match spawned {
            Ok(h) => {
                let mut handles = self.handles.lock();
                handles.retain(|h| !h.is_finished());
                handles.push(h);
                Ok(())
            }
            Err(e) => {
                self.threads.send_modify(|n| *n -= 1);
                let mut st = self.state.lock();
                st.live -= 1;
                st.target -= 1;
                drop(st);
                self.registry
                    .lock()
                    .live
                    .retain(|c| !Arc::ptr_eq(c, &counters));
                Err(Error::Io(e))
            }
        }
    }

    fn worker_main(self: Arc<Self>, counters: Arc<WorkerCounters>) {
        IS_WORKER.with(|w| w.set(true));
        let mut local = WorkerLocal {
            counters,
            wait: self.wait_hist.local(),
            run: self.run_hist.local(),
        };
        while let Some(entry) = self.next_entry(&mut local) {
            let waited = entry.enqueued.elapsed().as_secs_f64();
            local.wait.observe_n(waited, entry.units as u64);
            (entry.item)(&mut local);
            if local.run.count() >= MERGE_EVERY {
                local.flush(&self);
            }
        }
        local.flush(&self);
        let mut reg = self.registry.lock();
        reg.live.retain(|c| !Arc::ptr_eq(c, &local.counters));
        for (total, c) in reg
            .retired_completed
            .iter_mut()
            .zip(&local.counters.completed)
        {
            *total += c.load(Relaxed);
        }
        reg.retired_panicked += local.counters.panicked.load(Relaxed);
        drop(reg);
        self.threads.send_modify(|n| *n -= 1);
    }

    /// The next entry to run, or `None` when this worker should exit (retire or shutdown).
    fn next_entry(&self, local: &mut WorkerLocal) -> Option<Entry<Task>> {
        let mut st = self.state.lock();
        let mut settled = false;
        loop {
            if st.live > st.target {
                st.live -= 1;
                st.min_seen = st.min_seen.min(st.live);
                if st.lanes.entries() > 0 {
                    // A push may have counted on this worker; hand its wake-up on.
                    self.work.notify_one();
                }
                return None;
            }
            if let Some(entry) = st.lanes.pop(Instant::now()) {
                self.pending.store(st.lanes.entries(), Relaxed);
                return Some(entry);
            }
            if st.shutdown {
                st.live -= 1;
                return None;
            }
            if !settled {
                // Out of work: publish stats, then (one worker at a time) spin briefly
                // so a submit arriving right away skips the futex wake-up.
                settled = true;
                let spin = st.spinning == 0 && !self.config.idle_spin.is_zero();
                if spin {
                    st.spinning += 1;
                }
                MutexGuard::unlocked(&mut st, || {
                    local.flush(self);
                    if spin {
                        self.spin();
                    }
                });
                if spin {
                    st.spinning -= 1;
                }
                continue;
            }
            st.parked += 1;
            self.work.wait(&mut st);
            st.parked -= 1;
        }
    }

    fn spin(&self) {
        let deadline = Instant::now() + self.config.idle_spin;
        loop {
            for _ in 0..16 {
                if self.pending.load(Relaxed) > 0 || self.stopping.load(Relaxed) {
                    return;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= deadline {
                return;
            }
            // Let a runnable thread on this core (often the submitter) go first.
            std::thread::yield_now();
        }
    }

    fn control_loop(self: &Arc<Self>) {
        let mut stop = self.stop.lock();
        loop {
            if *stop {
                return;
            }
            self.stop_cv
                .wait_for(&mut stop, self.config.sample_interval);
            if *stop {
                return;
            }
            MutexGuard::unlocked(&mut stop, || {
                self.step();
            });
        }
    }

    /// Samples the load once, decides, and applies the decision.
    pub(crate) fn step(self: &Arc<Self>) -> Decision {
        let mut ctl = self.control.lock();
        let sample = ctl.sampler.sample();
        let obs = {
            let st = self.state.lock();
            if st.shutdown {
                return Decision::Hold;
            }
            Observation {
                workers: st.target,
                idle: st.parked + st.spinning,
                queued: st.lanes.total_units(),
                sample,
                now: self.started.elapsed(),
            }
        };
        let decision = decide(&mut ctl.state, &obs, &self.config);
        let applied = match decision {
            Decision::Hold => Decision::Hold,
            Decision::Grow { by, reason } => self.grow(by, reason),
            Decision::Shrink { by, reason } => self.shrink(by, reason),
        };
        ctl.last = sample;
        match applied {
            Decision::Grow { reason, .. } | Decision::Shrink { reason, .. } => {
                let counter = match reason {
                    ResizeReason::GrowQueuedHeadroom => &mut ctl.resizes.grow_queued_headroom,
                    ResizeReason::ShrinkSaturated => &mut ctl.resizes.shrink_saturated,
                    ResizeReason::ShrinkIdle => &mut ctl.resizes.shrink_idle,
                };
                *counter += 1;
            }
            Decision::Hold => {}
        }
        let point = LoadPoint {
            elapsed_ms: obs.now.as_millis() as u64,
            workers: self.target(),
            busy: obs.workers.saturating_sub(obs.idle),
            queued: obs.queued,
            cpu: sample.system_cpu,
            process_cpu: sample.process_cpu,
        };
        if self.config.history_len > 0 {
            if ctl.history.len() == self.config.history_len {
                ctl.history.pop_front();
            }
            ctl.history.push_back(point);
        }
        applied
    }

    fn grow(self: &Arc<Self>, by: usize, reason: ResizeReason) -> Decision {
        let (_, max) = self.config.bounds();
        let (by, spawn) = {
            let mut st = self.state.lock();
            if st.shutdown {
                return Decision::Hold;
            }
            let by = by.min(max.saturating_sub(st.target));
            // Workers still due to retire are kept instead of spawning new ones.
            let reuse = by.min(st.live.saturating_sub(st.target));
            st.target += by;
            st.live += by - reuse;
            st.max_seen = st.max_seen.max(st.live);
            (by, by - reuse)
        };
        let failed = (0..spawn).filter(|_| self.spawn_worker().is_err()).count();
        let grown = by - failed;
        if grown == 0 {
            Decision::Hold
        } else {
            Decision::Grow { by: grown, reason }
        }
    }

    fn shrink(&self, by: usize, reason: ResizeReason) -> Decision {
        let (min, _) = self.config.bounds();
        let mut st = self.state.lock();
        let by = by.min(st.target.saturating_sub(min));
        st.target -= by;
        drop(st);
        if by == 0 {
            return Decision::Hold;
        }
        // Parked workers re-check the head-count and retire; busy ones retire after their unit.
        self.work.notify_all();
        Decision::Shrink { by, reason }
    }

    /// Stops accepting work; workers drain the queue and exit; the controller stops.
    pub(crate) fn begin_shutdown(&self) {
        {
            let mut st = self.state.lock();
            st.shutdown = true;
        }
        self.stopping.store(true, Relaxed);
        self.work.notify_all();
        *self.stop.lock() = true;
        self.stop_cv.notify_all();
    }

    /// Waits for every pool thread to exit (blocking).
    pub(crate) fn join_blocking(&self) {
        loop {
            let handles = std::mem::take(&mut *self.handles.lock());
            let none_left = handles.is_empty();
            for h in handles {
                // A worker never panics (units run under catch_unwind); nothing to report.
                let _ = h.join();
            }
            if none_left {
                if *self.threads.borrow() == 0 {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    /// Waits for every pool thread to exit without blocking the async runtime.
    pub(crate) async fn join_async(&self) {
        let mut rx = self.threads.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|n| *n == 0).await;
        for h in std::mem::take(&mut *self.handles.lock()) {
            let _ = h.join();
        }
    }

    pub(crate) fn stats(&self) -> WorkerStats {
        let mut stats = {
            let st = self.state.lock();
            WorkerStats {
                workers: st.live,
                target_workers: st.target,
                busy_workers: st.live.saturating_sub(st.parked + st.spinning),
                min_seen: st.min_seen.min(st.live),
                max_seen: st.max_seen,
                tasks_submitted: ByPriority::from_array(st.lanes.submitted()),
                task_queue_depth: st.lanes.total_units(),
                task_queue_depth_by_priority: ByPriority::from_array(st.lanes.depth()),
                task_queue_entries: st.lanes.entries(),
                starvation_promotions: st.lanes.promoted(),
                ..WorkerStats::default()
            }
        };
        {
            let reg = self.registry.lock();
            let mut completed = reg.retired_completed;
            let mut panicked = reg.retired_panicked;
            for c in &reg.live {
                for (total, n) in completed.iter_mut().zip(&c.completed) {
                    *total += n.load(Relaxed);
                }
                panicked += c.panicked.load(Relaxed);
            }
            stats.tasks_completed = ByPriority::from_array(completed);
            stats.tasks_panicked = panicked;
        }
        stats.wait_seconds = self.wait_hist.snapshot();
        stats.run_seconds = self.run_hist.snapshot();
        let ctl = self.control.lock();
        stats.cpu_load_ratio = ctl.last.system_cpu;
        stats.process_cpu_ratio = ctl.last.process_cpu;
        stats.resizes = ctl.resizes;
        stats.history = ctl.history.iter().copied().collect();
        stats
    }
}
