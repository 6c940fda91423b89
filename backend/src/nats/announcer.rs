//! The directory task: announces this hub, learns the others, and keeps the directory
//! right through heartbeats, expiry, outages and pauses.
//!
//! Rules that keep it safe under faults and under a hostile publisher:
//! - nobody is expired while this hub is disconnected, nor within `node_timeout` after it
//!   reconnects or wakes from a pause (a stalled process, SIGSTOP): silence it could not
//!   have heard is not silence;
//! - hellos are rate-limited to one per `heartbeat`, however many syncs or replying hellos
//!   ask for one (requests in between are folded into the next hello);
//! - a sync is sent to a hub at most once per `node_timeout`;
//! - directory messages are published from this task only, in order, so a receiver sees a
//!   hello's parts, joins and leaves in the order they were made.

use super::control::{self, Announcement, Control};
use super::link::Stream;
use super::stats::{BridgeStats, Refusal};
use super::{Bridge, LocalChange};
use crate::bus::{GroupKind, Inbound};
use crate::metrics::DropReason;
use crate::{AgentId, Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Directory messages kept from the probe window, at most.
const EARLY_MAX: usize = 10_000;

/// Asks whether a hub with our name runs already, listening for one heartbeat. Returns what
/// arrived meanwhile, for the directory task to process.
///
/// # Errors
///
/// `Error::Config` when another hub answers with our node name.
pub(super) async fn probe(
    bridge: &Arc<Bridge>,
    dir: &mut async_nats::Subscriber,
) -> Result<Vec<async_nats::Message>> {
    use futures_util::StreamExt;
    bridge
        .announce(Control::Probe {
            target: bridge.config.node.clone(),
        })
        .await;
    let deadline = Instant::now() + bridge.config.heartbeat + Duration::from_millis(100);
    let mut early = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, dir.next()).await {
        if let Ok(a) = parse(bridge, &message) {
            if a.node == bridge.config.node && a.epoch != bridge.epoch {
                BridgeStats::add(&bridge.stats.node_clashes, 1);
                return Err(Error::Config(format!(
                    "another hub already runs as nats.node `{}` in swarm `{}`: give every hub a unique node name",
                    bridge.config.node, bridge.config.swarm
                )));
            }
        }
        if early.len() < EARLY_MAX {
            early.push(message);
        }
    }
    Ok(early)
}

fn parse(
    bridge: &Bridge,
    message: &async_nats::Message,
) -> std::result::Result<Announcement, Refusal> {
    let body = bridge.open(&message.subject, message.payload.clone())?;
    serde_json::from_slice::<Announcement>(&body)
        .map_err(|_| Refusal::Frame(super::frame::FrameError::BadField))
}

/// Folds requests for a hello into at most one per period.
#[derive(Debug)]
struct HelloLimiter {
    every: Duration,
    last: Option<Instant>,
    /// A hello is owed; `true` when it should ask others to answer.
    pending: Option<bool>,
}

impl HelloLimiter {
    fn request(&mut self, reply: bool, stats: &BridgeStats) {
        if self.pending.is_some() || self.last.is_some_and(|at| at.elapsed() < self.every) {
            BridgeStats::add(&stats.hellos_deferred, 1);
        }
        self.pending = Some(self.pending.unwrap_or(false) || reply);
    }

    fn due_at(&self) -> Option<Instant> {
        self.pending?;
        Some(self.last.map_or_else(Instant::now, |at| at + self.every))
    }

    fn take(&mut self) -> Option<bool> {
        self.last = Some(Instant::now());
        self.pending.take()
    }
}

/// The directory task's state.
struct Announcer {
    bus: Inbound,
    bridge: Arc<Bridge>,
    hello: HelloLimiter,
    last_tick: Instant,
    confirming: Arc<AtomicBool>,
}

/// Runs until the hub is gone or the subscription ends.
pub(super) async fn run(
    bus: Inbound,
    bridge: Arc<Bridge>,
    mut sub: async_nats::Subscriber,
    early: Vec<async_nats::Message>,
    changes: flume::Receiver<LocalChange>,
    events: flume::Receiver<async_nats::Event>,
) {
    use futures_util::StreamExt;
    let heartbeat = bridge.config.heartbeat;
    let mut me = Announcer {
        bus,
        hello: HelloLimiter {
            every: heartbeat,
            last: None,
            pending: None,
        },
        last_tick: Instant::now(),
        confirming: Arc::new(AtomicBool::new(false)),
        bridge,
    };
    me.hello.request(true, &me.bridge.stats);
    for message in early {
        me.on_message(message).await;
    }
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut joined = Vec::new();
    let mut left = Vec::new();
    let mut roles: Vec<(GroupKind, Arc<str>)> = Vec::new();
    loop {
        let hello_at = if me.bridge.is_connected() {
            me.hello.due_at()
        } else {
            None
        };
        tokio::select! {
            message = sub.next() => {
                let Some(message) = message else { return };
                me.on_message(message).await;
            }
            change = changes.recv_async() => {
                let Ok(change) = change else { return };
                for change in std::iter::once(change).chain(changes.try_iter()) {
                    match change {
                        LocalChange::Joined(id) => joined.push(id),
                        LocalChange::Left(id) => left.push(id),
                        LocalChange::Role(kind, name) => {
                            if !roles.contains(&(kind, name.clone())) {
                                roles.push((kind, name));
                            }
                        }
                    }
                }
                if me.bridge.is_connected() {
                    me.announce_list(std::mem::take(&mut joined), |agents| Control::Join { agents }).await;
                    me.announce_list(std::mem::take(&mut left), |agents| Control::Leave { agents }).await;
                    // After the joins, so receivers know the members' hub.
                    for (kind, name) in roles.drain(..) {
                        me.announce_role(kind, &name).await;
                    }
                } else {
                    // The hello after reconnection carries the whole list, and the next
                    // beat every role.
                    joined.clear();
                    left.clear();
                    roles.clear();
                }
            }
            event = events.recv_async() => {
                let Ok(event) = event else { return };
                me.on_event(event);
            }
            _ = sleep_until(hello_at) => {
                if let Some(reply) = me.hello.take() {
                    me.say_hello(reply).await;
                }
            }
            _ = beat.tick() => {
                if !me.tick().await {
                    return;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Announcer {
    fn is_local(&self) -> impl Fn(AgentId) -> bool + '_ {
        move |id| self.bus.hosts(id)
    }

    /// Publishes a list in parts that fit the server.
    async fn announce_list(&self, agents: Vec<AgentId>, make: impl Fn(Vec<AgentId>) -> Control) {
        if agents.is_empty() {
            return;
        }
        let room = self
            .bridge
            .max_message
            .saturating_sub(super::bridge::signing_room());
        for part in control::parts(&agents, room) {
            self.bridge.announce(make(part.to_vec())).await;
        }
    }

    /// Announces this hub's members of `name` (none: the name is gone here). Members past
    /// what one message holds are left out, and counted.
    async fn announce_role(&self, kind: GroupKind, name: &str) {
        let mut members = self.bus.role(kind, name);
        let room = self
            .bridge
            .max_message
            .saturating_sub(super::bridge::signing_room())
            .saturating_sub(1024 + name.len());
        let fits = (room / super::roles::MEMBER_JSON_BYTES).max(1);
        if members.len() > fits {
            let left_out = (members.len() - fits) as u64;
            BridgeStats::add(&self.bridge.stats.role_members_unannounced, left_out);
            members.truncate(fits);
        }
        self.bridge
            .announce(Control::Role {
                kind,
                name: name.to_owned(),
                members,
            })
            .await;
    }

    /// Announces every group and capability of this hub, with the members' loads.
    async fn announce_roles(&self) {
        for (kind, name) in self.bus.roles() {
            self.announce_role(kind, &name).await;
        }
    }

    async fn say_hello(&self, reply: bool) {
        if self.bus.is_gone() {
            return;
        }
        let agents = self.bus.agents();
        let room = self
            .bridge
            .max_message
            .saturating_sub(super::bridge::signing_room());
        let parts = control::parts(&agents, room);
        let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        for (i, part) in parts.iter().enumerate() {
            self.bridge
                .announce(Control::Hello {
                    part: u32::try_from(i).unwrap_or(u32::MAX),
                    parts: count,
                    total: agents.len() as u64,
                    agents: part.to_vec(),
                    reply,
                })
                .await;
        }
        BridgeStats::add(&self.bridge.stats.hellos_sent, 1);
    }

    /// Heartbeat: pause detection, the beat, confirmation of what was published, expiry.
    /// False when the hub is gone.
    async fn tick(&mut self) -> bool {
        if self.bus.is_gone() {
            return false;
        }
        let bridge = &self.bridge;
        let now = Instant::now();
        let slept = now.duration_since(self.last_tick);
        self.last_tick = now;
        if slept > bridge.config.node_timeout {
            // We were paused: nobody could be heard meanwhile.
            *bridge.floor.lock() = std::time::Instant::now();
            tracing::warn!(target: "swarmbus::nats", "this hub did not run for {slept:?}; peers get a grace period");
        }
        if !bridge.is_connected() {
            return true;
        }
        bridge
            .announce(Control::Beat {
                agents: self.bus.agent_count() as u64,
            })
            .await;
        self.announce_roles().await;
        self.confirm();
        let floor = *bridge.floor.lock();
        // Durable: a silent hub's messages wait in the stream for it, so its agents stay
        // known (only a hub's goodbye removes them).
        let silent = match bridge.durable {
            Some(_) => Vec::new(),
            None => bridge
                .directory
                .silent_for(bridge.config.node_timeout, floor),
        };
        for name in silent {
            if bridge.directory.expire(&name) {
                BridgeStats::add(&bridge.stats.nodes_expired, 1);
                tracing::warn!(
                    target: "swarmbus::nats",
                    "hub {name} went silent: its agents are unknown until it is heard again; \
                     messages buffered for it wait {:?}",
                    bridge.config.departed_retention
                );
            }
        }
        let not_resumed = bridge.directory.end_inheritance();
        if not_resumed > 0 {
            BridgeStats::add(&bridge.stats.agents_not_resumed, not_resumed);
            tracing::warn!(
                target: "swarmbus::nats",
                "{not_resumed} agents of restarted hubs were not registered again within directory_ttl: \
                 they are unknown now, and what was sent to them becomes dead letters"
            );
        }
        let grace = (bridge.config.heartbeat * 2).max(Duration::from_millis(500));
        for swept in bridge
            .directory
            .sweep(grace, bridge.config.departed_retention)
        {
            if let Some(ends) = &swept.bye {
                self.settle(&swept.node, ends);
            }
            bridge.close_link(&swept.node);
        }
        true
    }

    /// Counts messages a departed hub said it sent on its streams to us but that never came.
    fn settle(&self, node: &super::directory::RemoteNode, ends: &[control::StreamEnd]) {
        let me = &self.bridge.config.node;
        let mut lost = 0;
        let mut streams = node.streams.lock();
        for end in ends {
            let index = usize::from(end.stream);
            let ours = if end.stream == Stream::Direct as u8 {
                &end.to == me
            } else {
                index < super::directory::STREAMS
            };
            if ours {
                lost += streams[index].settle(end.link, end.next_msg);
            }
        }
        drop(streams);
        if lost > 0 {
            BridgeStats::add(&self.bridge.stats.messages_lost, lost);
            self.bus.lost(lost, DropReason::LostInTransit);
            tracing::warn!(target: "swarmbus::nats", "{lost} messages from hub {} were lost in transit", node.name);
        }
    }

    /// Confirms with a server round trip what was handed to the client so far, in the
    /// background (one at a time).
    fn confirm(&self) {
        if self.confirming.swap(true, Ordering::AcqRel) {
            return;
        }
        let bridge = self.bridge.clone();
        let flag = self.confirming.clone();
        let limit = bridge.config.node_timeout;
        tokio::spawn(async move {
            let out = bridge.stats.messages_out.load(Ordering::Acquire);
            if let Ok(Ok(())) = tokio::time::timeout(limit, bridge.client.flush()).await {
                bridge
                    .stats
                    .messages_confirmed
                    .fetch_max(out, Ordering::AcqRel);
            }
            flag.store(false, Ordering::Release);
        });
    }

    fn on_event(&mut self, event: async_nats::Event) {
        let bridge = &self.bridge;
        let stats = &bridge.stats;
        match event {
            async_nats::Event::Disconnected => {
                // Close every link's gate until its hub is heard on the new connection:
                // frames queued in the client now would be written the moment it
                // reconnects, perhaps before the other hub has subscribed again.
                stats.generation.fetch_add(1, Ordering::AcqRel);
                stats.connected.store(false, Ordering::Relaxed);
                BridgeStats::add(&stats.disconnects, 1);
                tracing::warn!(target: "swarmbus::nats", "NATS disconnected; buffering for remote hubs");
            }
            async_nats::Event::Connected => {
                if !stats.connected.swap(true, Ordering::Relaxed) {
                    BridgeStats::add(&stats.reconnects, 1);
                    *bridge.floor.lock() = std::time::Instant::now();
                    // Others may have expired us while we were away.
                    self.hello.request(true, stats);
                }
            }
            async_nats::Event::SlowConsumer(_) => {
                // What it dropped shows as gaps in the senders' sequence numbers.
                BridgeStats::add(&stats.slow_consumer_events, 1);
                tracing::warn!(target: "swarmbus::nats", "NATS subscription overflowed (slow consumer): messages were dropped");
            }
            other => tracing::warn!(target: "swarmbus::nats", "NATS: {other}"),
        }
    }

    async fn on_message(&mut self, message: async_nats::Message) {
        if self.bus.is_gone() {
            return;
        }
        let bridge = self.bridge.clone();
        let a = match parse(&bridge, &message) {
            Ok(a) => a,
            Err(why) => {
                bridge.stats.refuse(why);
                return;
            }
        };
        if a.node == bridge.config.node {
            if a.epoch != bridge.epoch {
                bridge.clash(a.epoch);
                if matches!(a.body, Control::Probe { .. }) {
                    // Tell the newcomer at once that the name is taken.
                    bridge
                        .announce(Control::Beat {
                            agents: self.bus.agent_count() as u64,
                        })
                        .await;
                }
            }
            return;
        }
        if !super::config::is_token(&a.node) || a.node.len() > 64 {
            bridge
                .stats
                .refuse(Refusal::Frame(super::frame::FrameError::BadField));
            return;
        }
        if matches!(a.body, Control::Probe { .. }) {
            return;
        }
        let Some(node) = super::outbound::node_entry(&bridge, &a.node, a.epoch, false) else {
            bridge.stats.refuse(Refusal::Replayed);
            return;
        };
        if !node.accept_control(a.seq) {
            bridge.stats.refuse(Refusal::Replayed);
            return;
        }
        node.seen(bridge.generation());
        let dir = &bridge.directory;
        match a.body {
            Control::Hello {
                part,
                parts,
                agents,
                reply,
                ..
            } => {
                let refused = dir.hello_part(&node, a.seq, part, parts, &agents, self.is_local());
                self.conflicts(refused).await;
                if reply {
                    self.hello.request(false, &bridge.stats);
                }
            }
            Control::Join { agents } => {
                let refused = dir.add_agents(&node, &agents, self.is_local());
                self.conflicts(refused).await;
            }
            Control::Leave { agents } => dir.remove_agents(&node, &agents),
            Control::Beat { agents } => {
                let drifted = node.agent_count() as u64 != agents;
                if drifted && !node.hello_in_progress() && node.may_sync(bridge.config.node_timeout)
                {
                    bridge
                        .announce(Control::Sync {
                            target: node.name.clone(),
                        })
                        .await;
                }
            }
            Control::Sync { target } => {
                if target == bridge.config.node {
                    self.hello.request(false, &bridge.stats);
                }
            }
            Control::Role {
                kind,
                name,
                members,
            } => self.take_role(&node, kind, &name, members),
            Control::Bye { sent } => {
                dir.remove_node(&node.name, node.epoch, sent);
            }
            Control::Probe { .. } => {}
        }
    }

    /// A remote hub's members of a group or capability: only agents it hosts, under a
    /// valid name, within the bound of names per hub; the rest refused and counted.
    fn take_role(
        &self,
        node: &super::directory::RemoteNode,
        kind: GroupKind,
        name: &str,
        mut members: Vec<crate::bus::MemberLoad>,
    ) {
        let stats = &self.bridge.stats;
        if crate::bus::validate_topic(name).is_err() {
            stats.refuse(Refusal::BadSender);
            return;
        }
        let before = members.len();
        members.retain(|m| node.hosts(m.id));
        if members.len() < before {
            stats.refuse(Refusal::BadSender);
        }
        if node.roles.set(kind, name, members).refused {
            BridgeStats::add(&stats.roles_refused, 1);
        }
    }

    /// Claims refused because another hub holds the agents: counted, and the holders are
    /// asked to confirm (their hello removes what they no longer have).
    async fn conflicts(&self, refused: super::directory::Refused) {
        if refused.count == 0 {
            return;
        }
        let bridge = &self.bridge;
        BridgeStats::add(&bridge.stats.claim_conflicts, refused.count);
        tracing::warn!(
            target: "swarmbus::nats",
            "{} agent claims refused: the agents belong to another hub or to this one",
            refused.count
        );
        for owner in refused.owners {
            if owner.may_sync(bridge.config.node_timeout) {
                bridge
                    .announce(Control::Sync {
                        target: owner.name.clone(),
                    })
                    .await;
            }
        }
    }
}
