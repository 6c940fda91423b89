//! The hub: the shared core behind every handle, registration, metrics and shutdown.

use crate::agent::{Agent, AgentSender};
use crate::budget::MemoryBudget;
use crate::linger::{self, Schedule};
use crate::mailbox::Mailbox;
use crate::metrics::{DropReason, FlushReason, MailboxDepth, Metrics, MetricsSnapshot};
use crate::pool::Pools;
use crate::registry::{AgentSlot, Registry};
use crate::request::Requests;
use crate::workers::WorkerPool;
use crate::{Error, HubConfig, Priority, Result};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// State shared by the hub and every agent handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: HubConfig,
    pub(crate) metrics: Metrics,
    pub(crate) pools: Pools,
    pub(crate) registry: Registry,
    pub(crate) requests: Requests,
    /// Bytes queued in agents' mailboxes, against `max_queued_bytes`.
    pub(crate) budget: Arc<MemoryBudget>,
    pub(crate) linger: flume::Sender<Schedule>,
    pub(crate) closing: AtomicBool,
    pub(crate) workers: WorkerPool,
    /// The NATS bridge, once connected.
    pub(crate) remote: std::sync::OnceLock<Arc<crate::nats::Bridge>>,
    started: Instant,
    shutdown_report: Mutex<Option<ShutdownReport>>,
    /// Serializes `shutdown` calls: a second caller waits for the first one's report.
    shutdown_gate: tokio::sync::Mutex<()>,
    /// The HTTP server, when `metrics_addr` is set; taken by `shutdown`.
    http: Mutex<Option<crate::http::Server>>,
    /// The HTTP server's counters, kept past `shutdown` so the last snapshot still has them.
    http_counters: std::sync::OnceLock<Arc<crate::http::HttpCounters>>,
}

/// A running hub. Cheap to clone; every clone is the same hub.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use std::time::Duration;
/// use swarmbus::{Hub, HubConfig};
///
/// let hub = Hub::start(HubConfig::default())?;
/// let alice = hub.register("alice")?;
/// let mut bob = hub.register("bob")?;
/// let id = bob.id();
/// let responder = tokio::spawn(async move {
///     while let Some(env) = bob.recv().await {
///         if env.is_request() {
///             bob.reply(&env, "pong").await?;
///         }
///     }
///     Ok::<_, swarmbus::Error>(())
/// });
/// let reply = alice.request(id, "ping", Duration::from_secs(1)).await?;
/// assert_eq!(&*reply.payload().bytes()?, b"pong");
/// let report = hub.shutdown().await?;
/// assert_eq!(report.undelivered, 0);
/// responder.await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

/// What shutdown accounted for. In a clean run `undelivered == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Messages accepted by sends.
    pub sent: u64,
    /// Messages placed in a recipient's mailbox on this hub.
    pub delivered: u64,
    /// Messages for agents on other hubs, handed to the NATS client. Their delivery is
    /// counted by the receiving hub.
    pub forwarded: u64,
    /// Of `forwarded`, messages that no server round trip confirmed before shutdown (NATS
    /// was unreachable): they may or may not have arrived.
    pub unconfirmed: u64,
    /// Accepted messages that reached no mailbox and were not counted as dropped: a loss
    /// the runtime could not explain. Always 0 unless there is a bug.
    pub undelivered: u64,
    /// Messages dropped with a counted reason (overflow, recipient gone, orphaned reply).
    pub dropped: u64,
    /// Messages still in mailboxes, waiting for their agents to `recv` them.
    pub queued: u64,
    /// Batches flushed by the shutdown itself.
    pub flushed_at_shutdown: u64,
}

impl Hub {
    /// Starts a hub on the current tokio runtime.
    pub fn start(config: HubConfig) -> Result<Hub> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (tx, rx) = flume::unbounded();
        let workers = WorkerPool::start(&config.workers)?;
        let shared = Arc::new(Shared {
            pools: Pools::new(&config.pools),
            metrics: Metrics::default(),
            registry: Registry::default(),
            requests: Requests::default(),
            budget: Arc::new(MemoryBudget::new(config.max_queued_bytes)),
            linger: tx,
            closing: AtomicBool::new(false),
            workers,
            remote: std::sync::OnceLock::new(),
            started: Instant::now(),
            shutdown_report: Mutex::new(None),
            shutdown_gate: tokio::sync::Mutex::new(()),
            http: Mutex::new(None),
            http_counters: std::sync::OnceLock::new(),
            config,
        });
        runtime.spawn(linger::run(Arc::downgrade(&shared), rx));
        if let Some(addr) = shared.config.metrics_addr {
            let token = shared.config.auth_token.clone();
            let server = crate::http::Server::start_with(
                addr,
                Arc::downgrade(&shared),
                token,
                shared.config.http,
                &runtime,
            )?;
            let _ = shared.http_counters.set(server.counters());
            *shared.http.lock() = Some(server);
        }
        if let Some(nats) = shared.config.nats.clone() {
            // `start` is synchronous: join the swarm in the background. `Hub::connect`
            // waits for it instead.
            let weak = Arc::downgrade(&shared);
            runtime.spawn(async move {
                let Some(shared) = weak.upgrade() else { return };
                match crate::nats::start(&shared, nats).await {
                    Ok(bridge) => {
                        let _ = shared.remote.set(bridge);
                    }
                    Err(e) => tracing::error!("joining the swarm over NATS failed: {e}"),
                }
            });
        }
        Ok(Hub { shared })
    }

    /// Starts a hub and, when `config.nats` is set, waits until it has joined the swarm
    /// (connected, subscribed, announced). Connection errors surface here.
    pub async fn connect(mut config: HubConfig) -> Result<Hub> {
        let nats = config.nats.take();
        let hub = Hub::start(config)?;
        if let Some(nats) = nats {
            let bridge = crate::nats::start(&hub.shared, nats).await?;
            let _ = hub.shared.remote.set(bridge);
        }
        Ok(hub)
    }

    /// Whether `id` can be reached now: a local agent, or one the directory knows on
    /// another hub.
    pub fn knows(&self, id: crate::AgentId) -> bool {
        self.shared.route(id, |_| ()).is_some()
    }

    /// Registers an agent under `name` (names need not be unique; ids are).
    pub fn register(&self, name: impl Into<String>) -> Result<Agent> {
        let shared = &self.shared;
        if shared.closing.load(Ordering::Acquire) {
            return shared.metrics.fail(Error::ShuttingDown);
        }
        let id = crate::AgentId::new_v4();
        let slot = Arc::new(AgentSlot {
            id,
            name: Arc::from(name.into()),
            mailbox: Arc::new(
                Mailbox::new(shared.config.mailbox_capacity, shared.config.overflow)
                    .with_budget(shared.budget.clone()),
            ),
            topics: Mutex::new(Vec::new()),
        });
        shared.registry.insert(slot.clone());
        if let Some(bridge) = shared.remote.get() {
            bridge.local_change(crate::nats::LocalChange::Joined(id));
        }
        Ok(Agent::new(AgentSender::new(shared.clone(), slot)))
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    /// The address the HTTP server is bound to (the real port when `metrics_addr` asked for
    /// port 0); `None` without a server or after `shutdown`.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.http.lock().as_ref().map(|s| s.local_addr())
    }

    /// Number of registered agents.
    pub fn agent_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// Flushes every open batch now.
    pub fn flush(&self) {
        let shared = &self.shared;
        if let Some(bridge) = shared.remote.get() {
            bridge.flush_links(shared, FlushReason::Explicit);
        }
        shared.registry.for_each(|slot| {
            let mut batch = slot.mailbox.batch.lock();
            slot.mailbox
                .flush(&mut batch, FlushReason::Explicit, &shared.metrics);
        });
    }

    /// Runs `work` on the elastic worker pool and returns its result.
    pub async fn submit<F, T>(&self, priority: Priority, work: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.workers.submit(priority, work).await
    }

    /// Runs every unit on the worker pool in parallel; results come back in input order.
    pub async fn submit_batch<I, F, T>(&self, priority: Priority, units: I) -> Result<Vec<T>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.workers.submit_batch(priority, units).await
    }

    /// Every figure of the hub now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.snapshot()
    }

    /// Whether `shutdown` has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// Stops accepting, flushes every batch, hands every accepted message to its mailbox,
    /// stops the worker pool after its queued units, and reports. Agents can still `recv`
    /// what is queued; then `recv` returns `None`. Calling it again returns the same report.
    pub async fn shutdown(&self) -> Result<ShutdownReport> {
        let shared = &self.shared;
        // Refuse new work at once, even while an earlier call still holds the gate.
        shared.closing.store(true, Ordering::Release);
        let _gate = shared.shutdown_gate.lock().await;
        if let Some(report) = *shared.shutdown_report.lock() {
            return Ok(report);
        }
        let before = shared.metrics.flushes.get(FlushReason::Shutdown as usize);
        let slots = shared.registry.slots();
        for slot in &slots {
            slot.mailbox.wake_senders();
        }
        for slot in &slots {
            let mut batch = slot.mailbox.batch.lock();
            slot.mailbox
                .flush(&mut batch, FlushReason::Shutdown, &shared.metrics);
        }
        let leftovers = match shared.remote.get() {
            Some(bridge) => bridge.shutdown(shared).await,
            None => Default::default(),
        };
        shared.workers.shutdown().await;
        shared.requests.clear();
        for slot in &slots {
            slot.mailbox.seal();
        }
        let m = &shared.metrics;
        let sent = m.sent.load(Ordering::Relaxed);
        let delivered = m.delivered.load(Ordering::Relaxed);
        let forwarded = m.forwarded.load(Ordering::Relaxed);
        let gone_before_mailbox = m.lost_before_mailbox.load(Ordering::Relaxed);
        let report = ShutdownReport {
            sent,
            delivered,
            forwarded,
            unconfirmed: leftovers.unconfirmed,
            undelivered: sent.saturating_sub(delivered + forwarded + gone_before_mailbox),
            dropped: m.dropped.total(),
            queued: slots.iter().map(|s| s.mailbox.depth() as u64).sum(),
            flushed_at_shutdown: m.flushes.get(FlushReason::Shutdown as usize) - before,
        };
        *shared.shutdown_report.lock() = Some(report);
        let http = shared.http.lock().take();
        if let Some(server) = http {
            server.stop().await;
        }
        Ok(report)
    }
}

#[cfg(test)]
impl Hub {
    /// The core, for the crate's unit tests.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Shared {
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let m = &self.metrics;
        let labeled = |names: &[&'static str], get: &dyn Fn(usize) -> u64| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, get(i)))
                .collect::<BTreeMap<_, _>>()
        };
        let drop_names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        let err_names: Vec<_> = crate::metrics::SendError::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        let flush_names: Vec<_> = FlushReason::ALL.iter().map(|r| r.as_str()).collect();
        let latency = m.latency.snapshot();
        let raw = m.bytes_raw.load(Ordering::Relaxed);
        let wire = m.bytes_wire.load(Ordering::Relaxed);
        let slots = self.registry.slots();
        let mut depths: Vec<MailboxDepth> = slots
            .iter()
            .map(|s| MailboxDepth {
                agent: s.id,
                name: s.name.to_string(),
                depth: s.mailbox.depth() as u64,
            })
            .collect();
        let total: u64 = depths.iter().map(|d| d.depth).sum();
        depths.sort_unstable_by_key(|d| std::cmp::Reverse(d.depth));
        depths.truncate(10);
        MetricsSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            agents: slots.len() as u64,
            topics: self.registry.topic_count() as u64,
            messages_sent: m.sent.load(Ordering::Relaxed),
            messages_delivered: m.delivered.load(Ordering::Relaxed),
            messages_received: m.received.load(Ordering::Relaxed),
            messages_dropped: labeled(&drop_names, &|i| m.dropped.get(i)),
            send_errors: labeled(&err_names, &|i| m.errors.get(i)),
            batches_flushed: labeled(&flush_names, &|i| m.flushes.get(i)),
            batch_size: m.batch_size.snapshot(),
            latency_p50_seconds: latency.quantile(0.5),
            latency_p99_seconds: latency.quantile(0.99),
            delivery_latency_seconds: latency,
            payload_bytes_raw: raw,
            payload_bytes_wire: wire,
            compressed_messages: m.compressed.load(Ordering::Relaxed),
            incompressible_messages: m.incompressible.load(Ordering::Relaxed),
            compression_ratio: if wire == 0 {
                1.0
            } else {
                raw as f64 / wire as f64
            },
            pools: self.pools.stats(),
            queued_bytes: self.budget.used(),
            queued_bytes_budget: self.budget.limit(),
            mailbox_depth_total: total,
            mailbox_depth_max: depths.first().map_or(0, |d| d.depth),
            deepest_mailboxes: depths,
            requests: m.requests.load(Ordering::Relaxed),
            replies: m.replies.load(Ordering::Relaxed),
            pending_requests: self.requests.len() as u64,
            workers: self.workers.stats(),
            nats: self.remote.get().map(|b| b.stats()),
            http: self.http_counters.get().map(|c| c.snapshot()),
        }
    }
}
