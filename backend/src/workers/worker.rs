//! The worker threads, the controller thread, and the state they share.

use super::config::WorkerConfig;
use super::controller::{decide, ControllerState, Decision, Observation, ResizeReason};
use super::panics::Containment;
use super::queue::{Entry, Lanes};
use super::sampler::{LoadSample, LoadSampler};
use super::stats::{ByPriority, LoadPoint, ResizeCounts, WorkerStats};
use crate::metrics::histogram::{self, Histogram, LocalHistogram};
use crate::{Error, Priority, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What [`WorkerPool::shutdown`](super::WorkerPool::shutdown) saw. A clean shutdown is `waited` with nothing stuck or
/// cancelled ([`is_clean`](Self::is_clean)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct WorkerShutdown {
    /// `false` when called from a unit on a pool thread: it only signalled, since waiting
    /// for its own thread would deadlock.
    pub waited: bool,
    /// Pool threads still running when [`WorkerConfig::shutdown_timeout`](super::WorkerConfig::shutdown_timeout) ran out (each
    /// one busy in a unit); they are left running, detached. 0 in a clean shutdown.
    pub stuck_threads: usize,
    /// Queued units dropped unrun when the bound ran out; their submitters got
    /// [`Error::ShuttingDown`]. 0 in a clean shutdown.
    pub cancelled_units: usize,
}

impl WorkerShutdown {
    /// Waited, and every thread exited in time with every queued unit run.
    pub fn is_clean(&self) -> bool {
        self.waited && self.stuck_threads == 0 && self.cancelled_units == 0
    }
}

/// What a queued entry runs: a unit or a chunk, which reports through the worker's counters.
/// It never panics out (see `panics.rs`); if it does, that is a bug and the worker is
/// treated as dead and replaced.
pub(crate) type Task = Box<dyn FnOnce(Finish<'_>) + Send>;

/// How a queued entry ends.
pub(crate) enum Finish<'a> {
    /// Run it on this worker.
    Run(&'a mut WorkerLocal),
    /// Drop it unrun (shutdown bound ran out, or the pool no longer accepts work): the
    /// entry sends `Error::ShuttingDown` to its submitter and drops its closures contained.
    Cancel(&'a Containment),
}

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
    /// Worker threads whose loop panicked (a bug, never a unit); each was replaced.
    deaths: u64,
    /// Panics of the load sampler caught on the controller thread.
    controller_panics: u64,
    /// Units dropped unrun because the shutdown bound ran out.
    cancelled: u64,
    /// Shutdowns whose bound ran out with pool threads still running.
    shutdown_timeouts: u64,
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
    /// Pool threads (workers and controller) still running; `exited` is notified each time
    /// one exits.
    threads: Mutex<usize>,
    exited: Condvar,
    handles: Mutex<Vec<JoinHandle<()>>>,
    contain: Arc<Containment>,
}

/// A worker's private accumulators, handed to each task it runs.
#[derive(Debug)]
pub(crate) struct WorkerLocal {
    counters: Arc<WorkerCounters>,
    wait: LocalHistogram,
    run: LocalHistogram,
    contain: Arc<Containment>,
}

impl WorkerLocal {
    /// Where the unit drops what it leaves behind (results, payloads), contained.
    pub(crate) fn contain(&self) -> &Containment {
        &self.contain
    }

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
                deaths: 0,
                controller_panics: 0,
                cancelled: 0,
                shutdown_timeouts: 0,
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
            threads: Mutex::new(0),
            exited: Condvar::new(),
            handles: Mutex::new(Vec::new()),
            contain: Arc::default(),
            config,
        }
    }

    /// Drops values contained; shared with the submit futures.
    pub(crate) fn containment(&self) -> &Arc<Containment> {
        &self.contain
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
            drop(st);
            // Dropped here, in the submitter's thread: contained like on a worker.
            for (_, _, item) in entries {
                item(Finish::Cancel(&self.contain));
            }
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
            *self.threads.lock() += 1;
            let spawned = std::thread::Builder::new()
                .name("swarmbus-workers-ctl".into())
                .spawn(move || {
                    shared.control_loop();
                    shared.thread_exited();
                });
            match spawned {
                Ok(h) => self.handles.lock().push(h),
                Err(e) => {
                    self.thread_exited();
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
        *self.threads.lock() += 1;
        let spawned = std::thread::Builder::new()
            .name("swarmbus-worker".into())
            .spawn(move || shared.worker_main(mine));
        match spawned {
            Ok(h) => {
                let mut handles = self.handles.lock();
                // Pool threads never unwind out (their result is `()`), so dropping a
                // finished handle cannot run a panicking payload's Drop.
                handles.retain(|h| !h.is_finished());
                handles.push(h);
                Ok(())
            }
            Err(e) => {
                self.thread_exited();
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

    /// A worker thread: runs entries until told to retire or stop. Its loop runs under
    /// `catch_unwind`, so the thread itself never unwinds: if the loop panics (a bug; units
    /// cannot make it), the worker is counted dead and replaced, and the pool's head-count
    /// stays right.
    fn worker_main(self: Arc<Self>, counters: Arc<WorkerCounters>) {
        IS_WORKER.with(|w| w.set(true));
        let mut local = WorkerLocal {
            counters,
            wait: self.wait_hist.local(),
            run: self.run_hist.local(),
            contain: Arc::clone(&self.contain),
        };
        let died = match catch_unwind(AssertUnwindSafe(|| self.work_loop(&mut local))) {
            Ok(()) => false,
            Err(payload) => {
                self.contain.drop_value(payload);
                true
            }
        };
        self.retire_counters(&local.counters);
        if died {
            self.replace_dead_worker();
        }
        self.thread_exited();
    }

    fn work_loop(&self, local: &mut WorkerLocal) {
        while let Some(entry) = self.next_entry(local) {
            let waited = entry.enqueued.elapsed().as_secs_f64();
            local.wait.observe_n(waited, entry.units as u64);
            (entry.item)(Finish::Run(local));
            if local.run.count() >= MERGE_EVERY {
                local.flush(self);
            }
        }
        local.flush(self);
    }

    /// Moves a finished worker's counters into the retired totals.
    fn retire_counters(&self, counters: &Arc<WorkerCounters>) {
        let mut reg = self.registry.lock();
        reg.live.retain(|c| !Arc::ptr_eq(c, counters));
        for (total, c) in reg.retired_completed.iter_mut().zip(&counters.completed) {
            *total += c.load(Relaxed);
        }
        reg.retired_panicked += counters.panicked.load(Relaxed);
    }

    /// A worker's loop panicked: it is still counted in `live`. Start a replacement if the
    /// pool still wants this worker (not retiring, and not shutting down with nothing left
    /// to run); otherwise count it gone.
    fn replace_dead_worker(self: &Arc<Self>) {
        let respawn = {
            let mut st = self.state.lock();
            st.deaths += 1;
            let wanted = st.live <= st.target && (!st.shutdown || st.lanes.entries() > 0);
            if !wanted {
                st.live -= 1;
                st.min_seen = st.min_seen.min(st.live);
            }
            wanted
        };
        tracing::error!(
            target: "swarmbus::workers",
            respawn,
            "a worker thread's loop panicked; the worker was counted dead"
        );
        // On failure `spawn_worker` takes the worker out of `live` and `target` itself.
        if respawn && self.spawn_worker().is_err() {
            tracing::error!(target: "swarmbus::workers", "starting a replacement worker failed");
        }
    }

    /// Counts one pool thread out and wakes a waiting shutdown.
    fn thread_exited(&self) {
        let mut n = self.threads.lock();
        *n = n.saturating_sub(1);
        drop(n);
        self.exited.notify_all();
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
        let deadline = deadline_after(Instant::now(), self.config.idle_spin);
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
                // The sampler is the embedder's code: a panic in it must not end the
                // controller (a dead controller would never resize again).
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.step())) {
                    self.contain.drop_value(payload);
                    self.state.lock().controller_panics += 1;
                    tracing::error!(target: "swarmbus::workers", "the load sampler panicked");
                }
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
            elapsed_ms: u64::try_from(obs.now.as_millis()).unwrap_or(u64::MAX),
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

    /// Waits, at most `shutdown_timeout`, for every pool thread to exit (blocking). If the
    /// bound runs out, cancels the units still queued and leaves the busy threads running,
    /// detached; the returned report says so.
    pub(crate) fn join_blocking(&self) -> WorkerShutdown {
        let deadline = deadline_after(Instant::now(), self.config.shutdown_timeout);
        let mut n = self.threads.lock();
        // Bounded by the deadline: each wait ends at an exit or at the deadline.
        while *n > 0 && !self.exited.wait_until(&mut n, deadline).timed_out() {}
        let stuck = *n;
        drop(n);
        let handles = std::mem::take(&mut *self.handles.lock());
        let (done, running): (Vec<_>, Vec<_>) = handles
            .into_iter()
            .partition(|h| stuck == 0 || h.is_finished());
        for h in done {
            // Pool threads never unwind out (see `worker_main`): nothing to report.
            let _ = h.join();
        }
        self.handles.lock().extend(running);
        if stuck == 0 {
            return WorkerShutdown {
                waited: true,
                ..WorkerShutdown::default()
            };
        }
        let cancelled = self.cancel_queued();
        self.state.lock().shutdown_timeouts += 1;
        tracing::warn!(
            target: "swarmbus::workers",
            stuck_threads = stuck,
            cancelled_units = cancelled,
            timeout = ?self.config.shutdown_timeout,
            "worker pool shutdown timed out; busy threads left running"
        );
        WorkerShutdown {
            waited: true,
            stuck_threads: stuck,
            cancelled_units: cancelled,
        }
    }

    /// [`join_blocking`](Self::join_blocking) from async code: on tokio's blocking pool
    /// when there is a runtime, so the async threads keep running.
    pub(crate) async fn join_async(self: &Arc<Self>) -> WorkerShutdown {
        if tokio::runtime::Handle::try_current().is_ok() {
            let shared = Arc::clone(self);
            if let Ok(report) = tokio::task::spawn_blocking(move || shared.join_blocking()).await {
                return report;
            }
        }
        // No runtime, or it is shutting down and refused the task: wait here (bounded).
        self.join_blocking()
    }

    /// Drops every queued entry unrun; returns the units they held.
    fn cancel_queued(&self) -> usize {
        let (entries, units) = {
            let mut st = self.state.lock();
            let entries = st.lanes.drain();
            self.pending.store(0, Relaxed);
            let units: usize = entries.iter().map(|e| e.units).sum();
            st.cancelled = st.cancelled.saturating_add(units as u64);
            (entries, units)
        };
        // Outside the lock: cancelling drops the embedder's closures.
        for entry in entries {
            (entry.item)(Finish::Cancel(&self.contain));
        }
        units
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
                worker_deaths: st.deaths,
                controller_panics: st.controller_panics,
                tasks_cancelled: st.cancelled,
                shutdown_timeouts: st.shutdown_timeouts,
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
        stats.drop_panics = self.contain.caught();
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

impl Drop for Shared {
    /// Entries still queued when the last thread and handle are gone (only if every worker
    /// is gone): cancelled, so their submitters hear `Error::ShuttingDown` and their
    /// closures drop contained.
    fn drop(&mut self) {
        for entry in self.state.get_mut().lanes.drain() {
            (entry.item)(Finish::Cancel(&self.contain));
        }
    }
}

/// `now + d`, or a far-future instant if that overflows (never a panic).
fn deadline_after(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::WorkerPool;
    use std::time::Duration;

    struct Idle;

    impl LoadSampler for Idle {
        fn sample(&mut self) -> LoadSample {
            LoadSample::default()
        }
    }

    #[test]
    fn spin_with_a_huge_idle_spin_does_not_overflow() {
        // Unvalidated on purpose: `Instant + Duration::MAX` used to panic the worker.
        let mut config = WorkerConfig::fixed(1);
        config.idle_spin = Duration::MAX;
        let shared = Shared::new(config, Box::new(Idle));
        shared.stopping.store(true, Relaxed);
        shared.spin();
    }

    /// A panic payload whose `Drop` panics again (std aborts if a thread ends with one).
    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                std::panic::panic_any(Bomb);
            }
        }
    }

    #[tokio::test]
    async fn a_dead_worker_is_noticed_and_replaced() {
        let run = async {
            let pool = WorkerPool::manual(&WorkerConfig::fixed(1), Box::new(Idle)).unwrap();
            let shared = &pool.inner.shared;
            // Tasks are built inside the crate; one that panics itself stands for a bug in
            // the worker loop, which no unit can reach.
            let die: Task = Box::new(|_| panic!("worker bug"));
            let bomb: Task = Box::new(|_| std::panic::panic_any(Bomb));
            shared.push([(Priority::Normal, 1, die)]).unwrap();
            assert_eq!(pool.submit(Priority::Normal, || 1).await.unwrap(), 1);
            shared.push([(Priority::Normal, 1, bomb)]).unwrap();
            assert_eq!(pool.submit(Priority::Normal, || 2).await.unwrap(), 2);
            let s = pool.stats();
            assert_eq!((s.workers, s.target_workers), (1, 1), "{s:?}");
            assert_eq!(s.worker_deaths, 2, "{s:?}");
            assert!(
                s.drop_panics >= 1,
                "the bomb payload was dropped contained: {s:?}"
            );
            assert!(pool.shutdown().await.is_clean());
            assert_eq!(pool.stats().workers, 0);
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the pool hung after its worker died");
    }
}
