//! Scale-out: hubs on several hosts form one swarm through a NATS server.
//!
//! We do not run a cluster protocol of our own. Each hub:
//! - announces its agents on `swarmbus.<swarm>.dir` (hello, join, leave, heartbeat, bye)
//!   and learns everyone else's into a [`directory`]; a hub silent for `node_timeout` is
//!   dropped, and sends to its agents then fail with `UnknownAgent`;
//! - sends to a remote agent through a link per remote hub: a mailbox like any other, whose
//!   batches a publisher task turns into one [`frame`] per batch on
//!   `swarmbus.<swarm>.node.<hub>` (batching pays on the wire too; payloads travel
//!   compressed);
//! - publishes broadcasts on `swarmbus.<swarm>.all` and topics on
//!   `swarmbus.<swarm>.topic.<topic>`, one frame each, delivered by every hub to its own
//!   agents.
//!
//! While NATS is unreachable, messages for remote hubs wait in their link (at most
//! `outage_buffer` each; beyond it, sends fail with `MailboxFull`), and are published after
//! the client reconnects. NATS core is at-most-once: frames in flight when a connection
//! breaks can be lost; per-link sequence numbers make such gaps visible
//! (`frames_lost`).

pub mod config;
mod directory;
pub(crate) mod frame;
pub(crate) mod signing;
mod subjects;

pub use config::NatsConfig;

use crate::hub::Shared;
use crate::mailbox::Mailbox;
use crate::metrics::{DropReason, FlushReason};
use crate::{AgentId, Envelope, Error, OverflowPolicy, Result};
use bytes::Bytes;
use directory::{Directory, RemoteNode};
use frame::{FrameError, Limits};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use subjects::Subjects;
use tokio::task::JoinHandle;

/// Directory control messages (JSON; small and rare next to data frames).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Control {
    /// A hub's full agent list; `reply` asks every other hub to answer with theirs.
    Hello {
        node: String,
        epoch: u64,
        agents: Vec<AgentId>,
        reply: bool,
    },
    Join {
        node: String,
        epoch: u64,
        agents: Vec<AgentId>,
    },
    Leave {
        node: String,
        epoch: u64,
        agents: Vec<AgentId>,
    },
    Beat {
        node: String,
        epoch: u64,
        agents: usize,
    },
    /// Asks `node` to send its hello again (a count did not match).
    Sync {
        node: String,
    },
    Bye {
        node: String,
        epoch: u64,
    },
}

/// A change of this hub's agents, for the directory task to announce.
#[derive(Debug)]
pub(crate) enum LocalChange {
    Joined(AgentId),
    Left(AgentId),
}

/// Counters of the bridge.
#[derive(Debug, Default)]
pub(crate) struct BridgeStats {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    frames_rejected: [AtomicU64; 5],
    frames_lost: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    messages_out: AtomicU64,
    messages_in: AtomicU64,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    slow_consumer_events: AtomicU64,
    connected: std::sync::atomic::AtomicBool,
    /// Bumped on every (re)connection.
    generation: AtomicU64,
}

/// The bridge's figures, in `MetricsSnapshot::nats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[non_exhaustive]
pub struct NatsStats {
    /// This hub's node name.
    pub node: String,
    /// Connected to the server now.
    pub connected: bool,
    /// Frames published.
    pub frames_sent: u64,
    /// Frames received and decoded.
    pub frames_received: u64,
    /// Frames refused, by reason (`truncated`, `bad_magic`, `unknown_version`, `too_large`,
    /// `bad_field`).
    pub frames_rejected: std::collections::BTreeMap<&'static str, u64>,
    /// Frames missing from a remote hub's sequence (lost in transit).
    pub frames_lost: u64,
    /// Bytes published.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Messages sent to remote hubs.
    pub messages_out: u64,
    /// Messages received from remote hubs.
    pub messages_in: u64,
    /// Reconnections after a lost connection.
    pub reconnects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Times the NATS client reported a subscription overflowing (it drops messages then).
    pub slow_consumer_events: u64,
    /// Messages waiting for remote hubs (the outage buffer in use).
    pub buffered: u64,
    /// Remote hubs known.
    pub directory_nodes: u64,
    /// Remote agents known.
    pub directory_agents: u64,
}

/// A hub's connection to the swarm.
#[derive(Debug)]
pub(crate) struct Bridge {
    client: async_nats::Client,
    config: NatsConfig,
    /// This instance: a restarted hub with the same name has a new epoch.
    epoch: u64,
    subjects: Subjects,
    pub(crate) directory: Directory,
    stats: Arc<BridgeStats>,
    changes: flume::Sender<LocalChange>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    links: Mutex<Vec<JoinHandle<()>>>,
    limits: Limits,
}

/// Connects, subscribes, announces this hub, and starts the bridge's tasks.
pub(crate) async fn start(shared: &Arc<Shared>, config: NatsConfig) -> Result<Arc<Bridge>> {
    config.validate()?;
    let stats = Arc::new(BridgeStats::default());
    let (events_tx, events_rx) = flume::unbounded::<async_nats::Event>();
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("swarmbus-{}", config.node))
        .subscription_capacity(config.subscription_capacity)
        .client_capacity(config.client_capacity)
        .max_reconnects(None::<usize>)
        .event_callback(move |event| {
            let tx = events_tx.clone();
            async move {
                let _ = tx.send(event);
            }
        });
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(path) = &config.creds_file {
        options = options.credentials_file(path).await?;
    }
    if config.tls_required {
        options = options.require_tls(true);
    }
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_client_cert, &config.tls_client_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let client = options.connect(config.url.as_str()).await.map_err(|e| {
        Error::Io(std::io::Error::other(format!(
            "NATS connect to {}: {e}",
            config.url
        )))
    })?;
    stats.connected.store(true, Ordering::Relaxed);
    let subjects = Subjects::new(&config.swarm);
    let (changes, changes_rx) = flume::unbounded();
    let bridge = Arc::new(Bridge {
        epoch: rand_epoch(),
        limits: Limits {
            max_frame: config.max_frame_bytes,
            max_payload: shared.config.max_payload,
        },
        client,
        subjects,
        directory: Directory::default(),
        stats: stats.clone(),
        changes,
        tasks: Mutex::new(Vec::new()),
        links: Mutex::new(Vec::new()),
        config,
    });
    let sub_err = |e: async_nats::SubscribeError| {
        Error::Io(std::io::Error::other(format!("NATS subscribe: {e}")))
    };
    let inbox = bridge
        .client
        .subscribe(bridge.subjects.node(&bridge.config.node))
        .await
        .map_err(sub_err)?;
    let all = bridge
        .client
        .subscribe(bridge.subjects.all())
        .await
        .map_err(sub_err)?;
    let topics = bridge
        .client
        .subscribe(bridge.subjects.topics())
        .await
        .map_err(sub_err)?;
    let dir = bridge
        .client
        .subscribe(bridge.subjects.directory())
        .await
        .map_err(sub_err)?;
    let weak = Arc::downgrade(shared);
    let tasks = vec![
        tokio::spawn(inbound(weak.clone(), bridge.clone(), inbox, Fan::Direct)),
        tokio::spawn(inbound(weak.clone(), bridge.clone(), all, Fan::Everyone)),
        tokio::spawn(inbound(weak.clone(), bridge.clone(), topics, Fan::Topic)),
        tokio::spawn(directory_loop(
            weak,
            bridge.clone(),
            dir,
            changes_rx,
            events_rx,
        )),
    ];
    bridge.tasks.lock().extend(tasks);
    bridge.hello(shared, true).await;
    Ok(bridge)
}

/// Decodes `data` as a wire frame with 1 MiB limits and reads every payload; returns
/// whether it was accepted. For the fuzz target (`fuzz/`): any input must return, never
/// panic.
#[doc(hidden)]
pub fn fuzz_decode_frame(data: &[u8]) -> bool {
    let limits = Limits {
        max_frame: 1 << 20,
        max_payload: 1 << 20,
    };
    match frame::decode(Bytes::copy_from_slice(data), limits, 0) {
        Ok(frame) => {
            for env in &frame.envelopes {
                let _ = env.payload().bytes();
            }
            true
        }
        Err(_) => false,
    }
}

fn rand_epoch() -> u64 {
    let id = uuid::Uuid::new_v4();
    u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap_or([1; 8])) | 1
}

#[derive(Debug, Clone, Copy)]
enum Fan {
    Direct,
    Everyone,
    Topic,
}

impl Bridge {
    /// Tells the directory task that a local agent came or went.
    pub(crate) fn local_change(&self, change: LocalChange) {
        let _ = self.changes.send(change);
    }

    async fn control(&self, message: &Control) {
        match serde_json::to_vec(message) {
            Ok(body) => {
                if let Err(e) = self
                    .client
                    .publish(self.subjects.directory(), Bytes::from(body))
                    .await
                {
                    tracing_warn(&format!("directory publish failed: {e}"));
                }
            }
            Err(e) => tracing_warn(&format!("directory encode failed: {e}")),
        }
    }

    async fn hello(&self, shared: &Shared, reply: bool) {
        let mut agents = Vec::new();
        shared.registry.for_each(|slot| agents.push(slot.id));
        self.control(&Control::Hello {
            node: self.config.node.clone(),
            epoch: self.epoch,
            agents,
            reply,
        })
        .await;
    }

    /// The node entry for `name`, creating its link and publisher task when new.
    fn node_entry(
        &self,
        me: &Arc<Bridge>,
        shared: &Arc<Shared>,
        name: &str,
        epoch: u64,
    ) -> Arc<RemoteNode> {
        let (node, created, replaced) = self.directory.upsert(name, epoch, || {
            Arc::new(
                Mailbox::new(self.config.outage_buffer, OverflowPolicy::Reject)
                    .with_max_batch(self.config.frame_messages),
            )
        });
        if let Some(old) = replaced {
            self.close_link(shared, &old);
        }
        if created {
            let task = tokio::spawn(publish_link(
                Arc::downgrade(shared),
                me.clone(),
                node.clone(),
            ));
            let mut links = self.links.lock();
            links.retain(|t| !t.is_finished());
            links.push(task);
        }
        node
    }

    fn close_link(&self, shared: &Shared, node: &RemoteNode) {
        let dropped = node.link.close(&shared.metrics);
        shared
            .metrics
            .drop_n(DropReason::RecipientGone, dropped as u64);
    }

    /// Whether a topic name maps to a NATS subject.
    pub(crate) fn check_topic(&self, topic: &str) -> Result<()> {
        self.subjects.topic(topic).map(|_| ())
    }

    /// Publishes a broadcast or topic message as one frame for every other hub.
    pub(crate) async fn publish_fan_out(&self, topic: Option<&str>, env: &Envelope) -> Result<()> {
        let subject = match topic {
            Some(t) => self.subjects.topic(t)?,
            None => self.subjects.all(),
        };
        let frame = frame::encode(&self.config.node, self.epoch, 0, std::slice::from_ref(env));
        if frame.len() > self.config.max_frame_bytes {
            return Err(Error::PayloadTooLarge {
                size: env.payload.wire_len(),
                max: self.config.max_frame_bytes,
            });
        }
        self.send_frame(subject, frame, 1).await;
        Ok(())
    }

    async fn send_frame(&self, subject: String, frame: Bytes, messages: u64) -> bool {
        let len = frame.len() as u64;
        match self.client.publish(subject, frame).await {
            Ok(()) => {
                self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_sent.fetch_add(len, Ordering::Relaxed);
                self.stats
                    .messages_out
                    .fetch_add(messages, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing_warn(&format!("frame publish failed: {e}"));
                false
            }
        }
    }

    /// Flushes every link's open batch (shutdown, `hub.flush()`).
    pub(crate) fn flush_links(&self, shared: &Shared, reason: FlushReason) {
        for node in self.directory.nodes() {
            let mut batch = node.link.batch.lock();
            node.link.flush(&mut batch, reason, &shared.metrics);
        }
    }

    /// Shutdown: every link drains into NATS, then this hub says goodbye.
    pub(crate) async fn shutdown(&self, shared: &Shared) {
        self.flush_links(shared, FlushReason::Shutdown);
        for node in self.directory.nodes() {
            node.link.seal();
        }
        let links: Vec<_> = std::mem::take(&mut *self.links.lock());
        for link in links {
            if tokio::time::timeout(Duration::from_secs(5), link)
                .await
                .is_err()
            {
                tracing_warn("a link did not drain within 5 s");
            }
        }
        self.control(&Control::Bye {
            node: self.config.node.clone(),
            epoch: self.epoch,
        })
        .await;
        if tokio::time::timeout(Duration::from_secs(5), self.client.flush())
            .await
            .is_err()
        {
            tracing_warn("NATS flush did not finish within 5 s");
        }
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }

    fn generation(&self) -> u64 {
        self.stats.generation.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> NatsStats {
        let s = &self.stats;
        let (nodes, agents) = self.directory.size();
        let buffered = self
            .directory
            .nodes()
            .iter()
            .map(|n| (n.link.depth() + n.link.batch.lock().len()) as u64)
            .sum();
        NatsStats {
            node: self.config.node.clone(),
            connected: s.connected.load(Ordering::Relaxed),
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            frames_received: s.frames_received.load(Ordering::Relaxed),
            frames_rejected: FrameError::ALL
                .iter()
                .enumerate()
                .map(|(i, r)| (r.as_str(), s.frames_rejected[i].load(Ordering::Relaxed)))
                .collect(),
            frames_lost: s.frames_lost.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
            messages_out: s.messages_out.load(Ordering::Relaxed),
            messages_in: s.messages_in.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            disconnects: s.disconnects.load(Ordering::Relaxed),
            slow_consumer_events: s.slow_consumer_events.load(Ordering::Relaxed),
            buffered,
            directory_nodes: nodes as u64,
            directory_agents: agents as u64,
        }
    }
}

/// Publishes one remote hub's batches as frames, until its link is sealed or closed.
async fn publish_link(shared: Weak<Shared>, bridge: Arc<Bridge>, node: Arc<RemoteNode>) {
    let subject = bridge.subjects.node(&node.name);
    let mut seq = 0u64;
    // Room for the header and one envelope's fixed fields.
    let budget = bridge.config.max_frame_bytes.saturating_sub(512);
    while let Some(batch) = node.link.next_batch().await {
        let mut start = 0;
        while start < batch.len() {
            // Split a batch whose payloads do not fit one frame.
            let mut end = start;
            let mut size = 0;
            while end < batch.len() {
                let len = batch[end].payload.wire_len() + 128;
                if end > start && size + len > budget {
                    break;
                }
                size += len;
                end += 1;
            }
            let part = &batch[start..end];
            start = end;
            if size > budget {
                if let Some(shared) = shared.upgrade() {
                    shared
                        .metrics
                        .drop_n(DropReason::FrameTooLarge, part.len() as u64);
                }
                continue;
            }
            // After a reconnection, wait until the remote hub has been heard again: before
            // that its subscription may not be back, and NATS would drop the frame.
            while node.heard_in() < bridge.generation() && !node.link.is_gone() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seq += 1;
            let frame = frame::encode(&bridge.config.node, bridge.epoch, seq, part);
            if !bridge
                .send_frame(subject.clone(), frame, part.len() as u64)
                .await
            {
                if let Some(shared) = shared.upgrade() {
                    shared
                        .metrics
                        .drop_n(DropReason::PublishFailed, part.len() as u64);
                }
            }
        }
    }
}

/// Decodes frames from one subscription and delivers their envelopes to local agents.
async fn inbound(
    shared: Weak<Shared>,
    bridge: Arc<Bridge>,
    mut sub: async_nats::Subscriber,
    fan: Fan,
) {
    use futures_util::StreamExt;
    while let Some(message) = sub.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let len = message.payload.len() as u64;
        bridge
            .stats
            .bytes_received
            .fetch_add(len, Ordering::Relaxed);
        let now = crate::envelope::nanos_since_epoch(tokio::time::Instant::now());
        let frame = match frame::decode(message.payload, bridge.limits, now) {
            Ok(frame) => frame,
            Err(reason) => {
                bridge.stats.frames_rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
                tracing_warn(&format!("dropped a frame on {}: {reason}", message.subject));
                continue;
            }
        };
        if frame.node == bridge.config.node && frame.epoch == bridge.epoch {
            // Our own broadcast or topic frame: local agents already have it.
            continue;
        }
        bridge.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        bridge
            .stats
            .messages_in
            .fetch_add(frame.envelopes.len() as u64, Ordering::Relaxed);
        if let Fan::Direct = fan {
            if let Some(node) = bridge.directory.node(&frame.node) {
                if node.epoch == frame.epoch {
                    let gap = node.gap_before(frame.seq);
                    bridge.stats.frames_lost.fetch_add(gap, Ordering::Relaxed);
                }
            }
        }
        for env in frame.envelopes {
            match fan {
                Fan::Direct => shared.deliver_inbound(env),
                Fan::Everyone => shared.deliver_fan_out_inbound(env, None),
                Fan::Topic => {
                    let topic = env.topic().map(str::to_owned);
                    shared.deliver_fan_out_inbound(env, topic.as_deref());
                }
            }
        }
    }
}

/// Keeps the directory right: announcements in and out, heartbeats, expiry, reconnects.
async fn directory_loop(
    shared: Weak<Shared>,
    bridge: Arc<Bridge>,
    mut sub: async_nats::Subscriber,
    changes: flume::Receiver<LocalChange>,
    events: flume::Receiver<async_nats::Event>,
) {
    use futures_util::StreamExt;
    let mut beat = tokio::time::interval(bridge.config.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut joined = Vec::new();
    let mut left = Vec::new();
    loop {
        tokio::select! {
            message = sub.next() => {
                let Some(message) = message else { return };
                let Some(shared) = shared.upgrade() else { return };
                match serde_json::from_slice::<Control>(&message.payload) {
                    Ok(control) => bridge.on_control(&shared, control).await,
                    Err(e) => {
                        bridge.stats.frames_rejected[FrameError::BadField as usize].fetch_add(1, Ordering::Relaxed);
                        tracing_warn(&format!("dropped a directory message: {e}"));
                    }
                }
            }
            change = changes.recv_async() => {
                let Ok(change) = change else { return };
                match change {
                    LocalChange::Joined(id) => joined.push(id),
                    LocalChange::Left(id) => left.push(id),
                }
                // Announce in bulk: gather whatever else is queued right now.
                while let Ok(change) = changes.try_recv() {
                    match change {
                        LocalChange::Joined(id) => joined.push(id),
                        LocalChange::Left(id) => left.push(id),
                    }
                }
                let node = bridge.config.node.clone();
                if !joined.is_empty() {
                    let agents = std::mem::take(&mut joined);
                    bridge.control(&Control::Join { node: node.clone(), epoch: bridge.epoch, agents }).await;
                }
                if !left.is_empty() {
                    let agents = std::mem::take(&mut left);
                    bridge.control(&Control::Leave { node, epoch: bridge.epoch, agents }).await;
                }
            }
            event = events.recv_async() => {
                let Ok(event) = event else { return };
                let Some(shared) = shared.upgrade() else { return };
                bridge.on_event(&shared, event).await;
            }
            _ = beat.tick() => {
                let Some(shared) = shared.upgrade() else { return };
                bridge.control(&Control::Beat {
                    node: bridge.config.node.clone(),
                    epoch: bridge.epoch,
                    agents: shared.registry.len(),
                }).await;
                for name in bridge.directory.silent_for(bridge.config.node_timeout) {
                    if let Some(node) = bridge.directory.remove_node(&name, None) {
                        tracing_warn(&format!("hub {name} went silent; removed from the directory"));
                        bridge.close_link(&shared, &node);
                    }
                }
            }
        }
    }
}

impl Bridge {
    async fn on_control(self: &Arc<Self>, shared: &Arc<Shared>, control: Control) {
        let me = &self.config.node;
        match control {
            Control::Hello {
                node,
                epoch,
                agents,
                reply,
            } if &node != me => {
                let entry = self.node_entry(self, shared, &node, epoch);
                entry.seen(self.generation());
                self.directory.set_agents(&entry, &agents);
                if reply {
                    self.hello(shared, false).await;
                }
            }
            Control::Join {
                node,
                epoch,
                agents,
            } if &node != me => {
                let entry = self.node_entry(self, shared, &node, epoch);
                self.directory.add_agents(&entry, &agents);
            }
            Control::Leave {
                node,
                epoch,
                agents,
            } if &node != me => {
                if let Some(entry) = self.directory.node(&node).filter(|n| n.epoch == epoch) {
                    self.directory.remove_agents(&entry, &agents);
                }
            }
            Control::Beat {
                node,
                epoch,
                agents,
            } if &node != me => {
                let known = self.directory.node(&node).filter(|n| n.epoch == epoch);
                match known {
                    Some(entry) if entry.agent_count() == agents => entry.seen(self.generation()),
                    // New to us, or its list drifted: ask for the whole list.
                    _ => self.control(&Control::Sync { node }).await,
                }
            }
            Control::Sync { node } if &node == me => self.hello(shared, false).await,
            Control::Bye { node, epoch } if &node != me => {
                if let Some(entry) = self.directory.remove_node(&node, Some(epoch)) {
                    self.close_link(shared, &entry);
                }
            }
            _ => {}
        }
    }

    async fn on_event(&self, shared: &Arc<Shared>, event: async_nats::Event) {
        match event {
            async_nats::Event::Disconnected => {
                // Close every link's gate until its hub is heard on the new connection:
                // frames queued in the client now would be written the moment it
                // reconnects, perhaps before the other hub has subscribed again.
                self.stats.generation.fetch_add(1, Ordering::AcqRel);
                self.stats.connected.store(false, Ordering::Relaxed);
                self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                tracing_warn("NATS disconnected; buffering for remote hubs");
            }
            async_nats::Event::Connected => {
                if !self.stats.connected.swap(true, Ordering::Relaxed) {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    // Others may have expired us while we were away.
                    self.hello(shared, true).await;
                }
            }
            async_nats::Event::SlowConsumer(_) => {
                self.stats
                    .slow_consumer_events
                    .fetch_add(1, Ordering::Relaxed);
                shared.metrics.drop_n(DropReason::SlowConsumer, 1);
                tracing_warn("NATS subscription overflowed (slow consumer): messages were dropped");
            }
            other => tracing_warn(&format!("NATS: {other}")),
        }
    }
}

fn tracing_warn(message: &str) {
    tracing::warn!(target: "swarmbus::nats", "{message}");
}
