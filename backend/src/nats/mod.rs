//! Scale-out: hubs on several hosts form one swarm through a NATS server.
//!
//! We do not run a cluster protocol of our own. Each hub:
//! - announces its agents on `swarmbus.<swarm>.dir` ([`control`]: hello in parts sized
//!   from the server's `max_payload`, join, leave, heartbeat, sync, bye) and learns everyone
//!   else's into a [`directory`]; a hub silent for `node_timeout` is expired, and sends to
//!   its agents then fail with `UnknownAgent`, while what was buffered for it waits for
//!   `departed_retention` in case it comes back;
//! - sends to a remote agent through a [`link`] per remote hub: a mailbox like any other,
//!   whose batches the [`outbound`] publisher turns into one [`frame`] per batch on
//!   `swarmbus.<swarm>.node.<hub>` (batching pays on the wire too; payloads travel
//!   compressed);
//! - sends broadcasts and topic messages through two more links, on `swarmbus.<swarm>.all`
//!   and `swarmbus.<swarm>.topic.<topic>`, delivered by every hub to its own agents;
//! - decodes what arrives in [`inbound`], which refuses replays, stale epochs and senders
//!   that belong to another hub, and counts lost frames and messages from the sequence
//!   numbers.
//!
//! While NATS is unreachable, nobody is expired, and messages for remote hubs wait in their
//! links (at most `outage_buffer` each; beyond it, sends fail with `MailboxFull`, never
//! block); they are published after the client reconnects and the remote hub has been
//! heard again. NATS core is at-most-once: frames in flight when a connection breaks can
//! be lost; the receiver counts them (`messages_lost`), and a shutdown reports what it
//! could not hand over or get confirmed. See `docs/scale-out.md` for the guarantees and
//! the trust model.

mod announcer;
pub mod config;
mod control;
mod directory;
pub(crate) mod frame;
mod inbound;
mod link;
mod outbound;
pub mod signing;
mod stats;
mod subjects;

pub use config::NatsConfig;
pub use stats::NatsStats;

/// Every reason label of `NatsStats::frames_rejected`, in order.
#[cfg(test)]
pub(crate) const REFUSAL_LABELS: [&str; 10] = stats::Refusal::LABELS;

use crate::bus::{Inbound, Mailbox, Transport};
use crate::metrics::{DropReason, FlushReason};
use crate::{AgentId, Error, Result};
use bytes::Bytes;
use directory::{Directory, RemoteNode, Upsert};
use frame::Limits;
use link::{Link, Stream};
use parking_lot::Mutex;
use stats::{BridgeStats, Refusal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subjects::Subjects;
use tokio::task::JoinHandle;

/// A change of this hub's agents, for the directory task to announce.
#[derive(Debug)]
pub(crate) enum LocalChange {
    Joined(AgentId),
    Left(AgentId),
}

/// What shutdown could not hand over to NATS.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Leftovers {
    /// Messages still in links when shutdown gave up (counted as dropped, `unsent`).
    pub(crate) unsent: u64,
    /// Messages handed to the client that no server flush confirmed.
    pub(crate) unconfirmed: u64,
}

/// A link's publisher task, with the remote hub it serves (`None`: a fan-out link).
type Publisher = (Option<Arc<RemoteNode>>, JoinHandle<()>);

/// A hub's connection to the swarm.
#[derive(Debug)]
pub(crate) struct Bridge {
    client: async_nats::Client,
    config: NatsConfig,
    /// This instance: the start time in nanoseconds, so a restarted hub has a higher one.
    epoch: u64,
    subjects: Subjects,
    pub(crate) directory: Directory,
    stats: Arc<BridgeStats>,
    changes: flume::Sender<LocalChange>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Each link's publisher.
    publishers: Mutex<Vec<Publisher>>,
    limits: Limits,
    /// Largest message published: the server's `max_payload`, at most `max_frame_bytes`.
    max_message: usize,
    /// Link instances created so far.
    links_created: AtomicU64,
    /// Broadcast and topic streams.
    everyone: Link,
    topics: Link,
    /// Directory messages published (their sequence numbers).
    announced: AtomicU64,
    /// Silence of other hubs counts from here: this hub's last reconnection or pause.
    floor: Mutex<Instant>,
    /// When a node-name clash was last logged.
    clash_logged: Mutex<Option<Instant>>,
    /// The swarm's keys; `None` for an unsigned swarm.
    keyring: Option<signing::Keyring>,
    /// The bus this hub delivers into.
    bus: Inbound,
}

/// Connects, subscribes, checks that the node name is free, announces this hub, and starts
/// the bridge's tasks.
pub(crate) async fn start(bus: Inbound, config: NatsConfig) -> Result<Arc<Bridge>> {
    config.validate()?;
    let keyring = config.keyring()?;
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
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| nats_error("NATS credentials file", &e.to_string()))?;
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
        nats_error(
            &format!("NATS connect to {}", config::redact_urls_in(&config.url)),
            &e.to_string(),
        )
    })?;
    stats.connected.store(true, Ordering::Relaxed);
    let server_max = client.server_info().max_payload;
    let max_message = config.max_frame_bytes.min(server_max.max(4096));
    if server_max < config.max_frame_bytes {
        tracing::info!(
            target: "swarmbus::nats",
            "the server takes messages of at most {server_max} bytes: frames and announcements are split to fit"
        );
    }
    let subjects = Subjects::new(&config.swarm);
    let (changes, changes_rx) = flume::unbounded();
    let epoch = start_epoch();
    let link = |instance| {
        Link::new(
            instance,
            bus.link_mailbox(config.outage_buffer, config.frame_messages),
        )
    };
    let (everyone, topics) = (link(1), link(2));
    let bridge = Arc::new(Bridge {
        epoch,
        limits: Limits {
            max_frame: max_message,
            max_payload: bus.max_payload(),
        },
        max_message,
        client,
        subjects,
        directory: Directory::default(),
        stats,
        changes,
        tasks: Mutex::new(Vec::new()),
        publishers: Mutex::new(Vec::new()),
        links_created: AtomicU64::new(2),
        everyone,
        topics,
        announced: AtomicU64::new(0),
        floor: Mutex::new(Instant::now()),
        clash_logged: Mutex::new(None),
        keyring,
        config,
        bus: bus.clone(),
    });
    let sub_err = |e: async_nats::SubscribeError| nats_error("NATS subscribe", &e.to_string());
    let client = &bridge.client;
    let inbox = client
        .subscribe(bridge.subjects.node(&bridge.config.node))
        .await
        .map_err(sub_err)?;
    let all = client
        .subscribe(bridge.subjects.all())
        .await
        .map_err(sub_err)?;
    let topics = client
        .subscribe(bridge.subjects.topics())
        .await
        .map_err(sub_err)?;
    let mut dir = client
        .subscribe(bridge.subjects.directory())
        .await
        .map_err(sub_err)?;
    // Is the name taken? Ask, and listen for one heartbeat before announcing anything, so
    // a second hub with the same name never replaces the first in anyone's directory.
    let early = announcer::probe(&bridge, &mut dir).await?;
    let weak = bus;
    let tasks = vec![
        tokio::spawn(inbound::run(
            weak.clone(),
            bridge.clone(),
            inbox,
            Stream::Direct,
        )),
        tokio::spawn(inbound::run(
            weak.clone(),
            bridge.clone(),
            all,
            Stream::Everyone,
        )),
        tokio::spawn(inbound::run(
            weak.clone(),
            bridge.clone(),
            topics,
            Stream::Topics,
        )),
        tokio::spawn(announcer::run(
            weak.clone(),
            bridge.clone(),
            dir,
            early,
            changes_rx,
            events_rx,
        )),
    ];
    bridge.tasks.lock().extend(tasks);
    let fan_out = |target| tokio::spawn(outbound::run(weak.clone(), bridge.clone(), target));
    // Agents registered before the bridge existed are in the first hello.
    let fan_out_publishers = [
        (None, fan_out(outbound::Target::Everyone)),
        (None, fan_out(outbound::Target::Topics)),
    ];
    bridge.publishers.lock().extend(fan_out_publishers);
    Ok(bridge)
}

/// A NATS failure as an `Error`, with any credentials in URLs blanked out.
fn nats_error(what: &str, detail: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "{what}: {}",
        config::redact_urls_in(detail)
    )))
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

/// The start time in nanoseconds since 1970: a restarted hub's epoch is higher than its
/// previous one's (the directory refuses lower ones as stale).
fn start_epoch() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    nanos.max(1)
}

impl Bridge {
    /// Tells the directory task that a local agent came or went.
    pub(crate) fn local_change(&self, change: LocalChange) {
        let _ = self.changes.send(change);
    }

    fn generation(&self) -> u64 {
        self.stats.generation.load(Ordering::Acquire)
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Whether broadcast and topic frames may go out: connected, and after a reconnection
    /// every live hub heard again (or two heartbeats passed, for a hub that never speaks).
    fn fan_out_ready(&self) -> bool {
        let generation = self.generation();
        generation == 0
            || self.floor.lock().elapsed() >= self.config.heartbeat * 2
            || self
                .directory
                .nodes()
                .iter()
                .all(|n| n.heard_in() >= generation)
    }

    /// The largest payload (as stored) that fits one frame: larger ones are refused at
    /// send, before any delivery.
    pub(crate) fn max_wire_payload(&self) -> usize {
        self.max_message
            .saturating_sub(frame::HEADER_MAX + signing_room() + frame::ENVELOPE_FIXED_MAX)
    }

    /// The node entry for `name` at `epoch`, creating its link and publisher when new.
    /// `None` for a stale epoch (a replay, or a hub that said bye); a leaving node is
    /// returned only when `leaving_ok` (its last frames).
    fn node_entry(
        self: &Arc<Self>,
        name: &str,
        epoch: u64,
        leaving_ok: bool,
    ) -> Option<Arc<RemoteNode>> {
        let upsert = self.directory.upsert(name, epoch, || {
            let instance = self.links_created.fetch_add(1, Ordering::AcqRel) + 1;
            let mailbox = self
                .bus
                .link_mailbox(self.config.outage_buffer, self.config.frame_messages);
            let link = Link::new(instance, mailbox);
            link.mailbox.set_max_wire(self.max_wire_payload());
            link
        });
        match upsert {
            Upsert::Known(node) => Some(node),
            Upsert::Leaving(node) => leaving_ok.then_some(node),
            Upsert::Stale => None,
            Upsert::Revived(node) => {
                BridgeStats::add(&self.stats.nodes_revived, 1);
                tracing::info!(target: "swarmbus::nats", "hub {name} is back; its buffered messages follow");
                Some(node)
            }
            Upsert::New { node, replaced } => {
                if let Some(old) = replaced {
                    self.close_link(&old);
                }
                let task = tokio::spawn(outbound::run(
                    self.bus.clone(),
                    self.clone(),
                    outbound::Target::Node(node.clone()),
                ));
                let mut publishers = self.publishers.lock();
                publishers.retain(|(_, t)| !t.is_finished());
                publishers.push((Some(node.clone()), task));
                Some(node)
            }
        }
    }

    /// Drops what a gone hub's link still holds, counted (`hub_gone`).
    fn close_link(&self, node: &RemoteNode) {
        let dropped = node.link.close(&self.bus, DropReason::HubGone);
        if dropped > 0 {
            tracing::warn!(
                target: "swarmbus::nats",
                "hub {} is gone: {dropped} messages buffered for it are dropped (reason `hub_gone`)",
                node.name
            );
        }
    }

    /// Logs (at most every 5 s) and counts a message from another hub with our name.
    fn clash(&self, epoch: u64) {
        BridgeStats::add(&self.stats.node_clashes, 1);
        let mut logged = self.clash_logged.lock();
        if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
            *logged = Some(Instant::now());
            tracing::error!(
                target: "swarmbus::nats",
                "another hub uses this hub's node name `{}` in swarm `{}` (its epoch {epoch}, ours {}): \
                 give every hub a unique nats.node",
                self.config.node,
                self.config.swarm,
                self.epoch
            );
        }
    }

    /// Every link: live and retained remote hubs, broadcasts, topics.
    fn links(&self) -> Vec<LinkRef> {
        let mut all: Vec<LinkRef> = self
            .directory
            .all_links()
            .into_iter()
            .map(LinkRef::Node)
            .collect();
        all.push(LinkRef::Everyone);
        all.push(LinkRef::Topics);
        all
    }

    fn link<'a>(&'a self, r: &'a LinkRef) -> &'a Link {
        match r {
            LinkRef::Node(node) => &node.link,
            LinkRef::Everyone => &self.everyone,
            LinkRef::Topics => &self.topics,
        }
    }

    /// Flushes every link's open batch (shutdown, `hub.flush()`).
    pub(crate) fn flush_links(&self, reason: FlushReason) {
        for r in self.links() {
            self.link(&r).mailbox.flush(reason);
        }
    }

    /// Shutdown: links drain into NATS (for at most `shutdown_drain`), this hub says bye,
    /// and what could not be handed over or confirmed is reported, never called delivered.
    pub(crate) async fn shutdown(&self) -> Leftovers {
        self.flush_links(FlushReason::Shutdown);
        let links = self.links();
        for r in &links {
            self.link(r).mailbox.seal();
        }
        let publishers: Vec<_> = std::mem::take(&mut *self.publishers.lock());
        let deadline = tokio::time::Instant::now() + self.config.shutdown_drain;
        for (node, task) in &publishers {
            // Wait only for what can drain: while connected, to a hub that is there.
            while !task.is_finished()
                && tokio::time::Instant::now() < deadline
                && self.is_connected()
                && node.as_ref().is_none_or(|n| n.is_live())
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for (_, task) in &publishers {
            task.abort();
        }
        for (_, task) in publishers {
            let _ = task.await;
        }
        let mut leftovers = Leftovers::default();
        for r in &links {
            let link = self.link(r);
            leftovers.unsent += link.close(&self.bus, DropReason::Unsent);
            leftovers.unsent += link.abandon_in_hand(&self.bus, DropReason::Unsent);
        }
        if leftovers.unsent > 0 {
            tracing::warn!(
                target: "swarmbus::nats",
                "shutdown: {} messages for remote hubs could not be published (counted as dropped, reason `unsent`)",
                leftovers.unsent
            );
        }
        let sent = links
            .iter()
            .map(|r| {
                let link = self.link(r);
                let (stream, to) = match r {
                    LinkRef::Node(node) => (Stream::Direct, node.name.clone()),
                    LinkRef::Everyone => (Stream::Everyone, String::new()),
                    LinkRef::Topics => (Stream::Topics, String::new()),
                };
                control::StreamEnd {
                    stream: stream as u8,
                    to,
                    link: link.instance,
                    next_msg: link.next_msg(),
                }
            })
            .collect();
        if self.is_connected() {
            self.announce(control::Control::Bye { sent }).await;
        }
        let out = self.stats.messages_out.load(Ordering::Acquire);
        match tokio::time::timeout(Duration::from_secs(5), self.client.flush()).await {
            Ok(Ok(())) => {
                self.stats
                    .messages_confirmed
                    .fetch_max(out, Ordering::AcqRel);
            }
            _ => {
                tracing::warn!(target: "swarmbus::nats", "shutdown: the NATS server did not confirm the last frames")
            }
        }
        leftovers.unconfirmed =
            out.saturating_sub(self.stats.messages_confirmed.load(Ordering::Acquire));
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        leftovers
    }

    pub(crate) fn stats(&self) -> NatsStats {
        let buffered = self.links().iter().map(|r| self.link(r).waiting()).sum();
        let (nodes, agents) = self.directory.size();
        self.stats.snapshot(
            self.config.node.clone(),
            buffered,
            (nodes as u64, agents as u64),
        )
    }

    /// Publishes one directory message; a failure is counted and logged, never silent.
    async fn announce(&self, body: control::Control) -> bool {
        let message = control::Announcement {
            node: self.config.node.clone(),
            epoch: self.epoch,
            seq: self.announced.fetch_add(1, Ordering::AcqRel) + 1,
            body,
        };
        let result = match serde_json::to_vec(&message) {
            Ok(body) if body.len() + signing_room() <= self.max_message => {
                let subject = self.subjects.directory();
                let mut buf = bytes::BytesMut::with_capacity(body.len() + signing_room());
                buf.extend_from_slice(&body);
                let sealed = self.seal(&subject, buf);
                self.client
                    .publish(subject, sealed)
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(body) => Err(format!("{} bytes is over the server's limit", body.len())),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                BridgeStats::add(&self.stats.directory_publish_failures, 1);
                tracing::warn!(target: "swarmbus::nats", "directory publish failed: {e}");
                false
            }
        }
    }

    /// Adds the swarm key's tag, when the swarm has a key (in place: `body` has room).
    fn seal(&self, subject: &str, mut body: bytes::BytesMut) -> Bytes {
        if let Some(keyring) = &self.keyring {
            keyring.seal_in_place(subject, &mut body);
        }
        body.freeze()
    }

    /// Checks and strips the tag, when the swarm has a key.
    fn open(&self, subject: &str, message: Bytes) -> std::result::Result<Bytes, Refusal> {
        match &self.keyring {
            None => Ok(message),
            Some(keyring) => keyring.open(subject, message).map_err(|e| match e {
                signing::SignError::Unsigned => Refusal::Unsigned,
                signing::SignError::BadTag => Refusal::BadTag,
                signing::SignError::UnknownKey => Refusal::UnknownKey,
            }),
        }
    }
}

/// Room a tag takes at the end of a message.
const fn signing_room() -> usize {
    signing::TAG_LEN
}

/// A link, by who owns it.
#[derive(Debug)]
enum LinkRef {
    Node(Arc<RemoteNode>),
    Everyone,
    Topics,
}

/// The envelope a remote fan-out travels in: addressed to nobody in particular.
pub(crate) fn fan_out_recipient() -> AgentId {
    AgentId::from(uuid::Uuid::nil())
}

impl Transport for Bridge {
    fn route(&self, to: AgentId) -> Option<Arc<Mailbox>> {
        self.directory
            .with_node(to, |node| node.link.mailbox.clone())
    }

    fn fan_out_link(&self, topic: Option<&str>, wire_len: usize) -> Result<Arc<Mailbox>> {
        if let Some(name) = topic {
            self.subjects.topic(name)?;
        }
        let max = self.max_wire_payload();
        if wire_len > max {
            return Err(Error::PayloadTooLarge {
                size: wire_len,
                max,
            });
        }
        Ok(match topic {
            Some(_) => self.topics.mailbox.clone(),
            None => self.everyone.mailbox.clone(),
        })
    }

    fn fan_out_recipient(&self) -> AgentId {
        fan_out_recipient()
    }

    fn joined(&self, id: AgentId) {
        self.local_change(LocalChange::Joined(id));
    }

    fn left(&self, id: AgentId) {
        self.local_change(LocalChange::Left(id));
    }

    fn flush(&self, reason: FlushReason) {
        self.flush_links(reason);
    }
}

#[cfg(test)]
mod tests;
