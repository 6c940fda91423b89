//! The bus: the state one hub's agents share (configuration, counters, pools, registry,
//! pending requests, the budget, the linger timer, the transport), with registration and
//! routing. The send path is in `send.rs`, fan-out in `fan_out.rs`, replies in
//! `reply.rs`, delivery from other hubs in `inbound.rs`.

use super::batch::BatchRules;
use super::budget::MemoryBudget;
use super::calls::Calls;
use super::deepest::Deepest;
use super::groups::{GroupKind, Groups};
use super::linger::{self, Schedule};
use super::mailbox::{Admitted, Mailbox};
use super::pools::Pools;
use super::registry::{AgentSlot, Registry};
use super::requests::Requests;
use super::transport::Transport;
use crate::dead_letter::DeadLetters;
use crate::envelope::Kind;
use crate::headers::Headers;
use crate::metrics::{DropReason, FlushReason, Metrics};
use crate::{AgentId, Envelope, Error, HubConfig, MessageId, Payload, Priority, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The shared state behind a hub and every agent handle.
#[derive(Debug)]
pub(crate) struct Bus {
    pub(crate) config: HubConfig,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) pools: Pools,
    pub(crate) registry: Registry,
    pub(crate) requests: Requests,
    /// Requests from other hubs that local agents are answering (cancels find them here).
    pub(crate) calls: Calls,
    /// The messages that reached no agent.
    pub(crate) dead: Arc<DeadLetters>,
    /// Bytes queued in agents' mailboxes, against `max_queued_bytes`.
    pub(crate) budget: Arc<MemoryBudget>,
    pub(crate) deepest: Deepest,
    /// Groups (`join_group`, `send_group`).
    pub(crate) groups: Groups,
    /// Who registered with which capability (`register_with`, `find`).
    pub(crate) capabilities: Groups,
    linger: flume::Sender<Schedule>,
    closing: AtomicBool,
    /// Other hubs, once connected.
    transport: OnceLock<Arc<dyn Transport>>,
    rules: BatchRules,
}

impl Bus {
    /// A bus for `config` (already validated), with its linger timer on `runtime`.
    pub(crate) fn start(config: HubConfig, runtime: &tokio::runtime::Handle) -> Arc<Bus> {
        let (tx, rx) = flume::unbounded();
        runtime.spawn(linger::run(rx));
        let rules = BatchRules {
            max_messages: config.max_messages,
            linger: config.linger,
            flush_priority: config.flush_priority,
        };
        Arc::new(Bus {
            pools: Pools::new(&config.pools),
            metrics: Arc::new(Metrics::default()),
            registry: Registry::default(),
            requests: Requests::default(),
            calls: Calls::default(),
            dead: Arc::new(DeadLetters::new(
                config.dead_letters,
                config.dead_letter_payload_bytes,
            )),
            budget: Arc::new(MemoryBudget::new(config.max_queued_bytes)),
            deepest: Deepest::default(),
            groups: Groups::new(GroupKind::Group),
            capabilities: Groups::new(GroupKind::Capability),
            linger: tx,
            closing: AtomicBool::new(false),
            transport: OnceLock::new(),
            rules,
            config,
        })
    }

    /// Whether shutdown has begun: no new work is accepted.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Refuses new work from now on.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// The batching rules of agents' mailboxes.
    pub(crate) fn rules(&self) -> &BatchRules {
        &self.rules
    }

    pub(crate) fn closing_flag(&self) -> &AtomicBool {
        &self.closing
    }

    /// Connects the bus to other hubs. Agents registered before are announced by the
    /// transport's own hello; every later one through `joined`.
    pub(crate) fn set_transport(&self, transport: Arc<dyn Transport>) {
        let _ = self.transport.set(transport);
    }

    pub(crate) fn transport(&self) -> Option<&Arc<dyn Transport>> {
        self.transport.get()
    }

    /// A mailbox with this hub's batching rules, counters and buffers.
    pub(crate) fn mailbox(
        &self,
        capacity: usize,
        policy: crate::OverflowPolicy,
        max_messages: usize,
    ) -> Mailbox {
        Mailbox::new(
            capacity,
            policy,
            self.rules.with_max_messages(max_messages),
            self.metrics.clone(),
            self.pools.batches.clone(),
        )
        .with_dead_letters(self.dead.clone())
    }

    /// Registers an agent: its slot, in the registry and announced to other hubs.
    ///
    /// # Errors
    /// `ShuttingDown`.
    pub(crate) fn register(&self, name: String) -> Result<Arc<AgentSlot>> {
        self.register_as(name, None)
    }

    /// [`register`](Self::register) under `id` when given (an agent that comes back after
    /// a restart), else a new one.
    ///
    /// # Errors
    /// `ShuttingDown`; `AgentExists` when `id` is registered here.
    pub(crate) fn register_as(&self, name: String, id: Option<AgentId>) -> Result<Arc<AgentSlot>> {
        if self.is_closing() {
            return self.metrics.fail(Error::ShuttingDown);
        }
        let config = &self.config;
        let mailbox = self
            .mailbox(
                config.mailbox_capacity,
                config.overflow,
                config.max_messages,
            )
            .with_budget(self.budget.clone());
        let id = id.unwrap_or_else(AgentId::new_v4);
        // Senders start their turns at different members (from the id's random bits), so
        // many agents that each send once to a group do not all start with its first member.
        let turn = usize::from(id.as_uuid().as_bytes()[15])
            | usize::from(id.as_uuid().as_bytes()[14]) << 8;
        let slot = Arc::new(AgentSlot {
            id,
            name: Arc::from(name),
            mailbox: Arc::new(mailbox),
            topics: parking_lot::Mutex::new(Vec::new()),
            groups: parking_lot::Mutex::new(Vec::new()),
            capabilities: parking_lot::Mutex::new(Vec::new()),
            turn: std::sync::atomic::AtomicUsize::new(turn),
        });
        if !self.registry.insert_new(slot.clone()) {
            return self.metrics.fail(Error::AgentExists(slot.id));
        }
        if let Some(transport) = self.transport.get() {
            transport.joined(slot.id);
        }
        Ok(slot)
    }

    /// An agent left: out of the registry, announced, its mailbox closed. `in_hand` are the
    /// messages it had taken out and not received; every dropped message is a dead letter.
    pub(crate) fn deregister(
        &self,
        slot: &AgentSlot,
        in_hand: impl ExactSizeIterator<Item = Envelope>,
    ) {
        self.registry.remove(slot);
        self.leave_roles(slot);
        if let Some(transport) = self.transport.get() {
            transport.left(slot.id);
        }
        let left = slot.mailbox.close();
        self.metrics.queue_dropped.add(in_hand.len() as u64);
        self.dead_letters(DropReason::RecipientGone, in_hand.chain(left));
    }

    /// Checks the sizes (declared and stored). Compression happens where it pays, once
    /// the route is known (`compress_for`).
    pub(crate) fn prepare(&self, payload: Payload) -> Result<Payload> {
        if let Err(e) = payload.check_size(self.config.max_payload) {
            return self.metrics.fail(e);
        }
        Ok(payload)
    }

    /// Compresses `payload` for `mailbox` when it pays: a link to other hubs (the wire),
    /// or a local mailbox with a backlog (the payload will wait).
    #[inline]
    pub(crate) fn compress_for(&self, mailbox: &Mailbox, payload: &mut Payload) {
        let config = &self.config;
        if payload.len() <= config.compress_over || payload.is_compressed() {
            return;
        }
        if mailbox.is_forwarding() || mailbox.depth() >= config.compress_backlog {
            self.compress(payload);
        }
    }

    /// Compresses a payload over `compress_over` if gzip shrinks it, and counts it.
    pub(crate) fn compress(&self, payload: &mut Payload) {
        let config = &self.config;
        if payload.len() <= config.compress_over || payload.is_compressed() {
            return;
        }
        let counter = if payload.compress_if_worth(
            config.compress_over,
            config.compression_level,
            &self.pools.bytes,
        ) {
            &self.metrics.compressed
        } else {
            &self.metrics.incompressible
        };
        counter.add(1);
    }

    pub(crate) fn envelope(
        &self,
        from: AgentId,
        to: AgentId,
        kind: Kind,
        priority: Priority,
        headers: Option<Arc<Headers>>,
        payload: Payload,
    ) -> Envelope {
        let kind = match (kind, headers.as_ref().is_some_and(|h| h.topic.is_some())) {
            (Kind::Message, true) => Kind::Topic,
            (kind, _) => kind,
        };
        Envelope {
            id: MessageId::new_v4(),
            from,
            to,
            kind,
            priority,
            payload,
            // Set from the batch when it joins one.
            sent_at: 0,
            headers,
            redelivered: false,
        }
    }

    /// Runs `f` on the mailbox for `to`: the agent's own when it is local, else the link to
    /// the remote hub that hosts it.
    #[inline]
    pub(crate) fn route<R>(&self, to: AgentId, f: impl FnOnce(&Arc<Mailbox>) -> R) -> Option<R> {
        let mut f = Some(f);
        if let Some(r) = self
            .registry
            .with_mailbox(to, |mb| f.take().map(|f| f(mb)))
            .flatten()
        {
            return Some(r);
        }
        let link = self.transport.get()?.route(to)?;
        f.take().map(|f| f(&link))
    }

    /// Does what an admission asked once its lock is released.
    #[inline]
    pub(crate) fn after_admit(&self, mailbox: &Arc<Mailbox>, admitted: Admitted) {
        if let Admitted::Schedule(at) = admitted {
            // The timer task stops only when the bus is gone, and we hold the bus.
            let _ = self.linger.send(Schedule(at, mailbox.clone()));
        }
    }

    /// Offers `mailbox` (of agent `to`) to the list of deepest mailboxes if it is deep.
    #[inline]
    pub(crate) fn watch_depth(&self, to: AgentId, mailbox: &Arc<Mailbox>) {
        if !mailbox.is_forwarding() {
            let min = mailbox.rules().max_messages;
            self.deepest.offer(to, mailbox, mailbox.depth(), min);
        }
    }

    /// Flushes every open batch: agents' and links'.
    pub(crate) fn flush_all(&self, reason: FlushReason) {
        if let Some(transport) = self.transport.get() {
            transport.flush(reason);
        }
        self.registry.for_each(|slot| slot.mailbox.flush(reason));
    }

    /// Messages in every local mailbox's queue together, from the counters (no mailbox is
    /// visited): delivered, minus received, minus dropped unread.
    pub(crate) fn queued_total(&self) -> u64 {
        let m = &self.metrics;
        m.delivered
            .get()
            .saturating_sub(m.received.get())
            .saturating_sub(m.queue_dropped.get())
    }
}
