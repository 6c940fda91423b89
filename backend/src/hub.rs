//! The hub: the handle an embedder holds. It owns the bus (`bus/`), and the parts above it:
//! the worker pool (started on first use), the NATS bridge, the HTTP server, the metrics
//! snapshot and shutdown.

use crate::agent::{Agent, AgentSender};
use crate::bus::Bus;
#[cfg(feature = "nats")]
use crate::bus::Inbound;
use crate::dead_letter::{DeadLetter, Replayed};
use crate::metrics::{DropReason, FlushReason, MailboxDepth, MetricsSnapshot, SendError};
#[cfg(feature = "nats")]
use crate::nats::Bridge;
use crate::workers::{WorkerPool, WorkerStats};
use crate::{AgentId, Error, HubConfig, Priority, Result};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Everything a hub owns; `Hub` handles share it.
#[derive(Debug)]
struct HubState {
    bus: Arc<Bus>,
    /// Started by the first `submit` (or with the hub, per `workers.start_with_hub`).
    workers: OnceLock<WorkerPool>,
    workers_starting: Mutex<()>,
    /// The NATS bridge, once connected.
    #[cfg(feature = "nats")]
    bridge: OnceLock<Arc<Bridge>>,
    started: Instant,
    /// Agents started by `spawn`.
    supervisors: Arc<crate::supervisor::Supervisors>,
    shutdown_report: Mutex<Option<ShutdownReport>>,
    /// Serializes `shutdown` calls: a second caller waits for the first one's report.
    shutdown_gate: tokio::sync::Mutex<()>,
    /// The HTTP server, when `metrics_addr` is set; taken by `shutdown`.
    #[cfg(feature = "http")]
    http: Mutex<Option<crate::http::Server>>,
    /// The HTTP server's counters, kept past `shutdown` so the last snapshot still has them.
    #[cfg(feature = "http")]
    http_counters: OnceLock<Arc<crate::http::HttpCounters>>,
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
    state: Arc<HubState>,
}

/// What shutdown accounted for. In a clean run `undelivered == 0`.
///
/// Every accepted message ends up `delivered` (in a mailbox here), `forwarded` (to another
/// hub), or `dropped` with a reason; `undelivered` is what fits none of them.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use std::time::Duration;
/// use swarmbus::{Hub, HubConfig, OverflowPolicy};
///
/// let mut config = HubConfig::default();
/// config.mailbox_capacity = 2;
/// config.overflow = OverflowPolicy::DropOldest;
/// config.linger = Duration::from_secs(60); // no batch leaves on its own here
/// let hub = Hub::start(config)?;
/// let alice = hub.register("alice")?;
/// let mut bob = hub.register("bob")?;
/// for text in ["a", "b", "c"] {
///     alice.send(bob.id(), text).await?; // bob is busy: "a" is evicted to make room for "c"
/// }
///
/// let report = hub.shutdown().await?;
/// assert_eq!(report.sent, 3); // accepted by `send`
/// assert_eq!(report.dropped, 1); // "a", counted as `drop_oldest`
/// assert_eq!(report.delivered, 2); // "b" and "c" reached bob's mailbox...
/// assert_eq!(report.queued, 2); // ...where they still wait
/// assert_eq!(report.flushed_at_shutdown, 1); // their batch left when shutdown flushed it
/// assert_eq!((report.forwarded, report.unconfirmed), (0, 0)); // no other hubs
/// assert_eq!(report.undelivered, 0); // nothing lost without a reason
///
/// // Bob still receives what was queued, then `None`.
/// assert_eq!(&*bob.recv().await.unwrap().payload().bytes()?, b"b");
/// assert_eq!(&*bob.recv().await.unwrap().payload().bytes()?, b"c");
/// assert!(bob.recv().await.is_none());
/// # Ok(()) }
/// ```
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
    /// Spawned agents still busy when `agent_shutdown_timeout` ran out (aborted).
    pub agents_aborted: u64,
    /// Messages those agents were in the middle of handling (lost with the abort; what
    /// was queued behind them is in `dropped`, reason `recipient_gone`).
    pub unhandled: u64,
}

/// The HTTP server's view of the hub: weak, so a server never keeps its hub alive.
#[cfg(feature = "http")]
struct StatsOf(std::sync::Weak<HubState>);

#[cfg(feature = "http")]
impl crate::http::StatsSource for StatsOf {
    fn snapshot(&self) -> Option<MetricsSnapshot> {
        self.0.upgrade().map(|state| state.snapshot())
    }

    fn is_running(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|state| !state.bus.is_closing())
    }

    fn dead_letters(&self) -> Option<Vec<DeadLetter>> {
        self.0.upgrade().map(|state| state.bus.dead.list())
    }

    fn replay_dead_letters(&self, reason: Option<&str>, to: Option<AgentId>) -> Option<Replayed> {
        self.0
            .upgrade()
            .map(|state| state.bus.replay_dead_letters(reason, to))
    }
}

impl Hub {
    /// Starts a hub on the current tokio runtime.
    ///
    /// With `config.nats` set (feature `nats`), the hub joins the swarm in the background:
    /// a failure to connect is logged, not returned. `Hub::connect` waits for it and
    /// returns it.
    ///
    /// # Errors
    ///
    /// - [`Error::Config`]: a value is out of range ([`HubConfig::validate`]), checked
    ///   first.
    /// - [`Error::NoRuntime`]: called outside a tokio runtime.
    /// - [`Error::CpuSampler`], [`Error::Io`]: with `workers.start_with_hub` set, the
    ///   worker pool could not start (the CPU times cannot be read, a thread cannot be
    ///   spawned).
    /// - [`Error::Io`]: the HTTP server's address (`metrics_addr`, feature `http`) cannot
    ///   be bound.
    pub fn start(config: HubConfig) -> Result<Hub> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        #[cfg(feature = "nats")]
        let nats = config.nats.clone();
        let bus = Bus::start(config, &runtime);
        let state = Arc::new(HubState {
            bus,
            workers: OnceLock::new(),
            workers_starting: Mutex::new(()),
            #[cfg(feature = "nats")]
            bridge: OnceLock::new(),
            started: Instant::now(),
            supervisors: Arc::default(),
            shutdown_report: Mutex::new(None),
            shutdown_gate: tokio::sync::Mutex::new(()),
            #[cfg(feature = "http")]
            http: Mutex::new(None),
            #[cfg(feature = "http")]
            http_counters: OnceLock::new(),
        });
        let hub = Hub { state };
        let config = &hub.state.bus.config;
        if config.workers.start_with_hub {
            hub.state.workers()?;
        }
        #[cfg(feature = "http")]
        if let Some(addr) = config.metrics_addr {
            let source = Arc::new(StatsOf(Arc::downgrade(&hub.state)));
            let server = crate::http::Server::start_with(
                addr,
                source,
                config.auth_token.clone(),
                config.http,
                &runtime,
            )?;
            let _ = hub.state.http_counters.set(server.counters());
            *hub.state.http.lock() = Some(server);
        }
        #[cfg(feature = "nats")]
        if let Some(nats) = nats {
            // `start` is synchronous: join the swarm in the background. `Hub::connect`
            // waits for it instead.
            let weak = Arc::downgrade(&hub.state);
            runtime.spawn(async move {
                let Some(state) = weak.upgrade() else { return };
                if let Err(e) = state.join_swarm(nats).await {
                    tracing::error!("joining the swarm over NATS failed: {e}");
                }
            });
        }
        Ok(hub)
    }

    /// Starts a hub and, when `config.nats` is set, waits until it has joined the swarm
    /// (connected, subscribed, announced).
    ///
    /// # Errors
    ///
    /// - [`Error::Config`], [`Error::NoRuntime`], [`Error::CpuSampler`], [`Error::Io`]: as
    ///   for [`start`](Self::start); [`Error::Config`] also for invalid NATS settings
    ///   ([`NatsConfig::validate`](crate::nats::NatsConfig::validate)), and when another
    ///   hub of the swarm already runs under this node name.
    /// - [`Error::Nats`]: connecting to the server, reading the credentials file, or
    ///   subscribing failed.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    pub async fn connect(mut config: HubConfig) -> Result<Hub> {
        let nats = config.nats.take();
        let hub = Hub::start(config)?;
        if let Some(nats) = nats {
            hub.state.join_swarm(nats).await?;
        }
        Ok(hub)
    }

    /// Whether `id` can be reached now: a local agent, or one the directory knows on
    /// another hub.
    pub fn knows(&self, id: crate::AgentId) -> bool {
        self.state.bus.route(id, |_| ()).is_some()
    }

    /// Registers an agent under `name` (names need not be unique; ids are).
    ///
    /// # Errors
    ///
    /// [`Error::ShuttingDown`] once [`shutdown`](Self::shutdown) has begun.
    pub fn register(&self, name: impl Into<String>) -> Result<Agent> {
        let bus = &self.state.bus;
        let slot = bus.register(name.into())?;
        Ok(Agent::new(AgentSender::new(bus.clone(), slot)))
    }

    /// Registers an agent under an id it had before, so that what was sent to it while it
    /// was away reaches it: after a restart of a durable hub (`NatsConfig::durable`), the
    /// messages the stream kept for the id are delivered to the agent registered under it.
    /// Keep the id where the agent keeps its state (`AgentId` is `Display` and `FromStr`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> swarmbus::Result<()> {
    /// use swarmbus::{AgentId, Hub, HubConfig};
    /// let hub = Hub::start(HubConfig::default())?;
    /// let id: AgentId = "6f1c7a52-3f0e-4c1e-9a43-2b8f0b1d2e77".parse().unwrap();
    /// let agent = hub.register_with_id("planner", id)?;
    /// assert_eq!(agent.id(), id);
    /// assert!(hub.register_with_id("twin", id).is_err());
    /// # hub.shutdown().await?; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::AgentExists`] when `id` is registered on this hub; [`Error::ShuttingDown`]
    /// once [`shutdown`](Self::shutdown) has begun. (An id another hub of the swarm holds
    /// is refused by the other hubs' directories, and counted there as a claim conflict.)
    pub fn register_with_id(&self, name: impl Into<String>, id: crate::AgentId) -> Result<Agent> {
        let bus = &self.state.bus;
        let slot = bus.register_as(name.into(), Some(id))?;
        Ok(Agent::new(AgentSender::new(bus.clone(), slot)))
    }

    /// Registers an agent with capabilities: [`find`](Self::find) lists it under each, and
    /// [`AgentSender::request_capability`](crate::AgentSender::request_capability) may pick
    /// it.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> swarmbus::Result<()> {
    /// use swarmbus::{Hub, HubConfig};
    /// let hub = Hub::start(HubConfig::default())?;
    /// let fr = hub.register_with("translator", ["translate", "fr"])?;
    /// assert_eq!(hub.find("translate"), vec![fr.id()]);
    /// assert!(hub.find("summarize").is_empty());
    /// drop(fr);
    /// assert!(hub.find("translate").is_empty());
    /// # hub.shutdown().await?; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a capability that breaks the rules of topic names
    /// (checked before the agent registers); [`Error::ShuttingDown`] once
    /// [`shutdown`](Self::shutdown) has begun.
    pub fn register_with(
        &self,
        name: impl Into<String>,
        capabilities: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Agent> {
        let bus = &self.state.bus;
        let capabilities: Vec<String> = capabilities.into_iter().map(Into::into).collect();
        for c in &capabilities {
            bus.capabilities
                .validate(c)
                .or_else(|e| bus.metrics.fail(e))?;
        }
        let slot = bus.register(name.into())?;
        for c in &capabilities {
            bus.join_role(crate::bus::GroupKind::Capability, &slot, c)?;
        }
        Ok(Agent::new(AgentSender::new(bus.clone(), slot)))
    }

    /// The agents with `capability`: this hub's, in the order they registered, then those
    /// other hubs of the swarm announced (their hubs announce a change at once and every
    /// member again with each heartbeat; a hub that leaves takes its agents with it).
    pub fn find(&self, capability: &str) -> Vec<crate::AgentId> {
        self.state
            .bus
            .members(crate::bus::GroupKind::Capability, capability)
    }

    /// [`spawn`](Self::spawn) with capabilities, as [`register_with`](Self::register_with).
    ///
    /// # Errors
    ///
    /// As [`register_with`](Self::register_with).
    pub fn spawn_with<H, Fut, E>(
        &self,
        name: impl Into<String>,
        capabilities: impl IntoIterator<Item = impl Into<String>>,
        handler: H,
        restart: crate::Restart,
    ) -> Result<crate::AgentHandle>
    where
        H: FnMut(crate::Context, crate::Envelope) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        let agent = self.register_with(name, capabilities)?;
        Ok(self.state.supervisors.spawn(agent, handler, restart))
    }

    /// Spawns an agent that runs itself: `handler` is called for each message, one at a
    /// time, in mailbox order, with a [`Context`](crate::Context) to send and reply. When it
    /// returns an error or panics, the message becomes a dead letter (`handler_failed`)
    /// and the agent restarts per `restart` (its id, mailbox and subscriptions kept, so
    /// what was queued behind the message is handled next); past the limit it stops.
    ///
    /// The handler is `FnMut`: what it owns is the agent's state, changed without a lock,
    /// as it is never called twice at once. That state survives a restart (the handler is
    /// called again, not rebuilt), so one that can fail halfway through an update should
    /// leave it consistent. Its futures are `'static`: what they need of the state, they
    /// take (a clone, a count) when the handler is called.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> swarmbus::Result<()> {
    /// use swarmbus::{Context, Envelope, Hub, HubConfig, Restart};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let hub = Hub::start(HubConfig::default())?;
    /// let handled = Arc::new(AtomicU32::new(0));
    /// let seen = handled.clone();
    /// let worker = hub.spawn(
    ///     "worker",
    ///     move |_ctx: Context, env: Envelope| {
    ///         let seen = seen.clone();
    ///         async move {
    ///             if env.payload().to_text()? == "boom" {
    ///                 panic!("cannot handle this one");
    ///             }
    ///             seen.fetch_add(1, Ordering::Relaxed);
    ///             Ok::<(), swarmbus::Error>(())
    ///         }
    ///     },
    ///     Restart::default(),
    /// )?;
    /// let boss = hub.register("boss")?;
    /// for text in ["one", "boom", "two"] {
    ///     boss.send(worker.id(), text).await?;
    /// }
    /// hub.flush();
    /// while handled.load(Ordering::Relaxed) < 2 {
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert_eq!(worker.restarts(), 1);
    /// assert_eq!(hub.dead_letters()[0].reason(), "handler_failed");
    /// hub.shutdown().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ShuttingDown`] once [`shutdown`](Self::shutdown) has begun.
    pub fn spawn<H, Fut, E>(
        &self,
        name: impl Into<String>,
        handler: H,
        restart: crate::Restart,
    ) -> Result<crate::AgentHandle>
    where
        H: FnMut(crate::Context, crate::Envelope) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        let agent = self.register(name)?;
        Ok(self.state.supervisors.spawn(agent, handler, restart))
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &HubConfig {
        &self.state.bus.config
    }

    /// The address the HTTP server is bound to (the real port when `metrics_addr` asked for
    /// port 0); `None` without a server or after `shutdown`.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.state.http.lock().as_ref().map(|s| s.local_addr())
    }

    /// Number of registered agents.
    pub fn agent_count(&self) -> usize {
        self.state.bus.registry.len()
    }

    /// The messages that reached no agent, newest first: at most
    /// [`dead_letters`](HubConfig::dead_letters) of them, each with the reason it was
    /// dropped (the words of `messages_dropped_total{reason}`), when, and the envelope.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state.bus.dead.list()
    }

    /// Sends the dead letters again: those dropped for `reason` (all when `None`), to their
    /// recipient or to `to`. Only one-way messages with their payload are replayed (a
    /// request's requester, a reply's, stopped waiting long ago); each keeps its id, sender,
    /// priority and headers. A replayed letter leaves the store; one refused again (its
    /// recipient still unknown, its mailbox full) stays, counted `failed`. Never waits.
    pub fn replay_dead_letters(&self, reason: Option<&str>, to: Option<AgentId>) -> Replayed {
        self.state.bus.replay_dead_letters(reason, to)
    }

    /// Flushes every open batch now.
    pub fn flush(&self) {
        self.state.bus.flush_all(FlushReason::Explicit);
    }

    /// Runs `work` on the elastic worker pool and returns its result. The pool starts on
    /// the first call.
    ///
    /// # Errors
    ///
    /// - [`Error::TaskPanicked`]: `work` panicked (in its body, or while dropping what it
    ///   captured or returned).
    /// - [`Error::ShuttingDown`]: the hub is shutting down: the pool never started, or its
    ///   own shutdown (a step of [`shutdown`](Self::shutdown)) has begun, or it ran out of
    ///   `workers.shutdown_timeout` and cancelled the unit before it ran.
    /// - [`Error::CpuSampler`], [`Error::Io`]: on the call that starts the pool, the CPU
    ///   times cannot be read or a worker thread cannot be spawned.
    pub async fn submit<F, T>(&self, priority: Priority, work: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.state.workers()?.submit(priority, work).await
    }

    /// Runs every unit on the worker pool in parallel; results come back in input order.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit): [`Error::TaskPanicked`] (the first panic; the other
    /// units still run), [`Error::ShuttingDown`], [`Error::CpuSampler`], [`Error::Io`].
    pub async fn submit_batch<I, F, T>(&self, priority: Priority, units: I) -> Result<Vec<T>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.state.workers()?.submit_batch(priority, units).await
    }

    /// Whether the worker pool has started (on the first `submit`, or with the hub).
    pub fn workers_started(&self) -> bool {
        self.state.workers.get().is_some()
    }

    /// Every figure of the hub now. Its cost does not grow with the number of agents.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.state.snapshot()
    }

    /// Whether `shutdown` has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.state.bus.is_closing()
    }

    /// Stops accepting, flushes every batch, hands every accepted message to its mailbox,
    /// stops the worker pool after its queued units, and reports. Agents can still `recv`
    /// what is queued; then `recv` returns `None`. Calling it again returns the same report.
    ///
    /// From the start of the call, sends and registrations fail with
    /// [`Error::ShuttingDown`] (submits too, once the worker pool's own shutdown begins), and
    /// requests still waiting for a reply end with it.
    ///
    /// # Errors
    ///
    /// None: it returns `Ok` today, with no [`Error`] variant in any case. The `Result`
    /// leaves room for transports that can fail to close.
    pub async fn shutdown(&self) -> Result<ShutdownReport> {
        let state = &self.state;
        let bus = &state.bus;
        // Refuse new work at once, even while an earlier call still holds the gate.
        bus.close();
        let _gate = state.shutdown_gate.lock().await;
        if let Some(report) = *state.shutdown_report.lock() {
            return Ok(report);
        }
        let m = &bus.metrics;
        let before = m.flushes.get(FlushReason::Shutdown as usize);
        let slots = bus.registry.slots();
        for slot in &slots {
            slot.mailbox.wake_senders();
        }
        for slot in &slots {
            slot.mailbox.flush(FlushReason::Shutdown);
        }
        #[cfg(feature = "nats")]
        let unconfirmed = match state.bridge.get() {
            Some(bridge) => bridge.shutdown().await.unconfirmed,
            None => 0,
        };
        #[cfg(not(feature = "nats"))]
        let unconfirmed = 0;
        if let Some(workers) = state.workers.get() {
            workers.shutdown().await;
        }
        bus.requests.clear();
        for slot in &slots {
            slot.mailbox.seal();
        }
        // Spawned agents handle what is queued for them; the sealed mailboxes end their loops.
        let (agents_aborted, unhandled) = state
            .supervisors
            .shutdown(bus.config.agent_shutdown_timeout)
            .await;
        let sent = m.sent.get();
        let delivered = m.delivered.get();
        let forwarded = m.forwarded.get();
        let gone_before_mailbox = m.lost_before_mailbox.get();
        let report = ShutdownReport {
            sent,
            delivered,
            forwarded,
            unconfirmed,
            undelivered: sent.saturating_sub(delivered + forwarded + gone_before_mailbox),
            dropped: m.dropped.total(),
            queued: slots.iter().map(|s| s.mailbox.depth() as u64).sum(),
            flushed_at_shutdown: m.flushes.get(FlushReason::Shutdown as usize) - before,
            agents_aborted,
            unhandled,
        };
        *state.shutdown_report.lock() = Some(report);
        #[cfg(feature = "http")]
        let http = state.http.lock().take();
        #[cfg(feature = "http")]
        if let Some(server) = http {
            server.stop().await;
        }
        Ok(report)
    }
}

#[cfg(test)]
impl Hub {
    /// The bus, for the crate's unit tests.
    pub(crate) fn bus(&self) -> &Arc<Bus> {
        &self.state.bus
    }
}

impl HubState {
    /// The worker pool, started now if it was not.
    fn workers(&self) -> Result<&WorkerPool> {
        if let Some(pool) = self.workers.get() {
            return Ok(pool);
        }
        if self.bus.is_closing() {
            return Err(Error::ShuttingDown);
        }
        let _starting = self.workers_starting.lock();
        if let Some(pool) = self.workers.get() {
            return Ok(pool);
        }
        let pool = WorkerPool::start(&self.bus.config.workers)?;
        Ok(self.workers.get_or_init(|| pool))
    }

    /// Connects to NATS and plugs the bridge in as the bus's transport.
    #[cfg(feature = "nats")]
    async fn join_swarm(&self, nats: crate::nats::NatsConfig) -> Result<()> {
        let bridge = crate::nats::start(Inbound::new(&self.bus), nats).await?;
        self.bus.set_transport(bridge.clone());
        let _ = self.bridge.set(bridge);
        Ok(())
    }

    fn snapshot(&self) -> MetricsSnapshot {
        let bus = &self.bus;
        let m = &bus.metrics;
        let labeled = |names: &[&'static str], get: &dyn Fn(usize) -> u64| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, get(i)))
                .collect::<BTreeMap<_, _>>()
        };
        let drop_names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        let err_names: Vec<_> = SendError::ALL.iter().map(|r| r.as_str()).collect();
        let flush_names: Vec<_> = FlushReason::ALL.iter().map(|r| r.as_str()).collect();
        let latency = m.latency.snapshot();
        let raw = m.bytes_raw.get();
        let wire = m.bytes_wire.get();
        let depths: Vec<MailboxDepth> = bus
            .deepest
            .top(10)
            .into_iter()
            .map(|(agent, depth)| MailboxDepth {
                agent,
                name: bus
                    .registry
                    .name_of(agent)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                depth: depth as u64,
            })
            .collect();
        MetricsSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            agents: bus.registry.len() as u64,
            topics: bus.registry.topic_count() as u64,
            messages_sent: m.sent.get(),
            messages_delivered: m.delivered.get(),
            messages_received: m.received.get(),
            messages_dropped: labeled(&drop_names, &|i| m.dropped.get(i)),
            send_errors: labeled(&err_names, &|i| m.errors.get(i)),
            batches_flushed: labeled(&flush_names, &|i| m.flushes.get(i)),
            batch_size: m.batch_size.snapshot(),
            latency_p50_seconds: latency.quantile(0.5),
            latency_p99_seconds: latency.quantile(0.99),
            delivery_latency_seconds: latency,
            payload_bytes_raw: raw,
            payload_bytes_wire: wire,
            compressed_messages: m.compressed.get(),
            incompressible_messages: m.incompressible.get(),
            compression_ratio: if wire == 0 {
                1.0
            } else {
                raw as f64 / wire as f64
            },
            pools: bus.pools.stats(),
            queued_bytes: bus.budget.used(),
            queued_bytes_budget: bus.budget.limit(),
            mailbox_depth_total: bus.queued_total(),
            mailbox_depth_max: depths.first().map_or(0, |d| d.depth),
            deepest_mailboxes: depths,
            requests: m.requests.get(),
            replies: m.replies.get(),
            pending_requests: bus.requests.len() as u64,
            open_streams: bus.requests.streams() as u64,
            chunks: m.chunks.get(),
            cancellations: crate::call::CancelBy::ALL
                .iter()
                .zip(bus.requests.cancels())
                .map(|(by, n)| (by.as_str(), n))
                .collect(),
            dead_letters: bus.dead.len() as u64,
            dead_letters_recorded: DropReason::ALL
                .iter()
                .map(|&r| (r.as_str(), bus.dead.recorded.get(r as usize)))
                .collect(),
            dead_letters_evicted: bus.dead.evicted.get(),
            dead_letter_payloads_dropped: bus.dead.payloads_dropped.get(),
            dead_letters_replayed: [
                ("sent", bus.dead.replayed.get()),
                ("failed", bus.dead.replay_failed.get()),
            ]
            .into_iter()
            .collect(),
            workers: self
                .workers
                .get()
                .map_or_else(WorkerStats::default, WorkerPool::stats),
            supervision: self.supervisors.stats(),
            groups: bus.group_stats(50),
            #[cfg(feature = "nats")]
            nats: self.bridge.get().map(|b| b.stats()),
            #[cfg(feature = "http")]
            http: self.http_counters.get().map(|c| c.snapshot()),
        }
    }
}
