//! The bridge: this hub's connection to the swarm, its links, and the bus's [`Transport`]
//! to other hubs. Started by `nats::start`; its tasks (`announcer.rs`, `inbound.rs`,
//! `outbound.rs`) use it, and it uses none of them.

use super::config::NatsConfig;
use super::directory::{Directory, RemoteNode};
use super::frame::{self, Limits};
use super::link::{Link, Stream};
use super::stats::{BridgeStats, NatsStats, Refusal};
use super::subjects::Subjects;
use super::{control, signing};
use crate::bus::{GroupKind, Inbound, Mailbox, RemotePick, Transport};
use crate::metrics::{DropReason, FlushReason};
use crate::{AgentId, Error, Result};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// A change of this hub's agents, for the directory task to announce.
#[derive(Debug, Clone)]
pub(crate) enum LocalChange {
    Joined(AgentId),
    Left(AgentId),
    /// The members of a group or capability changed.
    Role(GroupKind, Arc<str>),
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
    pub(super) client: async_nats::Client,
    pub(super) config: NatsConfig,
    /// This instance: the start time in nanoseconds, so a restarted hub has a higher one.
    pub(super) epoch: u64,
    pub(super) subjects: Subjects,
    pub(crate) directory: Directory,
    pub(super) stats: Arc<BridgeStats>,
    pub(super) changes: flume::Sender<LocalChange>,
    /// The same changes, for the durable directory's writer.
    pub(super) durable_changes: Option<flume::Sender<LocalChange>>,
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Each link's publisher.
    pub(super) publishers: Mutex<Vec<Publisher>>,
    pub(super) limits: Limits,
    /// Largest message published: the server's `max_payload`, at most `max_frame_bytes`.
    pub(super) max_message: usize,
    /// Link instances created so far.
    pub(super) links_created: AtomicU64,
    /// Broadcast and topic streams.
    pub(super) everyone: Link,
    pub(super) topics: Link,
    /// Directory messages published (their sequence numbers).
    pub(super) announced: AtomicU64,
    /// Silence of other hubs counts from here: this hub's last reconnection or pause.
    pub(super) floor: Mutex<Instant>,
    /// When a node-name clash was last logged.
    pub(super) clash_logged: Mutex<Option<Instant>>,
    /// The swarm's keys; `None` for an unsigned swarm.
    pub(super) keyring: Option<signing::Keyring>,
    /// The bus this hub delivers into.
    pub(super) bus: Inbound,
    /// Durable delivery, when `NatsConfig::durable` asks for it.
    pub(super) durable: Option<Arc<super::durable::Durable>>,
}

impl Bridge {
    /// Tells the directory task that a local agent came or went.
    pub(crate) fn local_change(&self, change: LocalChange) {
        if let Some(durable) = &self.durable_changes {
            let _ = durable.send(change.clone());
        }
        let _ = self.changes.send(change);
    }

    pub(super) fn generation(&self) -> u64 {
        self.stats.generation.load(Ordering::Acquire)
    }

    pub(super) fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Whether broadcast and topic frames may go out: connected, and after a reconnection
    /// every live hub heard again (or two heartbeats passed, for a hub that never speaks).
    pub(super) fn fan_out_ready(&self) -> bool {
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

    /// Drops what a gone hub's link still holds, counted (`hub_gone`).
    pub(super) fn close_link(&self, node: &RemoteNode) {
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
    pub(super) fn clash(&self, epoch: u64) {
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
            if let Some(durable) = &self.durable {
                durable.forget_directory(&self.config.node).await;
            }
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
        let mut stats = self.stats.snapshot(
            self.config.node.clone(),
            buffered,
            (nodes as u64, agents as u64),
        );
        stats.durable = self.durable.as_ref().map(|d| d.snapshot());
        stats
    }

    /// Publishes one directory message; a failure is counted and logged, never silent.
    pub(super) async fn announce(&self, body: control::Control) -> bool {
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

    /// The next frame of `link`, holding `part`: numbered, encoded and sealed for
    /// `subject`; with its frame sequence number.
    pub(super) fn next_frame(
        &self,
        link: &Link,
        subject: &str,
        part: &[crate::Envelope],
    ) -> (Bytes, u64) {
        let (seq, msg_seq) = link.number(part.len() as u64);
        let numbers = frame::Numbers {
            epoch: self.epoch,
            link: link.instance,
            seq,
            msg_seq,
        };
        let body = frame::encode_with_room(&self.config.node, numbers, part, signing_room());
        (self.seal(subject, body), seq)
    }

    /// Adds the swarm key's tag, when the swarm has a key (in place: `body` has room).
    pub(super) fn seal(&self, subject: &str, mut body: bytes::BytesMut) -> Bytes {
        if let Some(keyring) = &self.keyring {
            keyring.seal_in_place(subject, &mut body);
        }
        body.freeze()
    }

    /// Checks and strips the tag, when the swarm has a key.
    pub(super) fn open(
        &self,
        subject: &str,
        message: Bytes,
    ) -> std::result::Result<Bytes, Refusal> {
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
pub(super) const fn signing_room() -> usize {
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

    fn roles_changed(&self, kind: GroupKind, name: &Arc<str>) {
        // The durable directory keeps agents only: roles travel in announcements.
        let _ = self.changes.send(LocalChange::Role(kind, name.clone()));
    }

    fn remote_members(&self, kind: GroupKind, name: &str) -> Vec<AgentId> {
        self.directory.role_members(kind, name)
    }

    fn remote_pick(&self, kind: GroupKind, name: &str) -> Option<RemotePick> {
        self.directory.pick_role(kind, name)
    }
}
