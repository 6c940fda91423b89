//! Delivery of messages that came from other hubs, through a narrow handle the transport
//! holds: it never reaches the rest of the bus.
//!
//! Inbound delivery never waits: a full mailbox, a spent budget or a missing recipient is a
//! counted drop, never a stall of the transport's subscription.

use super::batch::BatchRules;
use super::calls::CancelOutcome;
use super::groups::{GroupKind, MemberLoad};
use super::mailbox::{Mailbox, Refused};
use super::reply::WireReply;
use super::state::Bus;
use crate::envelope::Kind;
use crate::headers::CallRef;
use crate::metrics::{DropReason, Metrics};
use crate::pool::BufferPool;
use crate::{AgentId, Envelope, Error, MessageId};
use std::sync::{Arc, Weak};

/// The transport's handle on the bus: deliveries in, and the figures it reports about this
/// hub. Holds the bus weakly: a transport never keeps a hub alive.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    bus: Weak<Bus>,
    /// What links are made of (they outlive nothing: the bus holds them through the
    /// transport, and they count into the hub's counters).
    metrics: Arc<Metrics>,
    buffers: Arc<BufferPool<Vec<Envelope>>>,
    rules: BatchRules,
}

impl Inbound {
    pub(crate) fn new(bus: &Arc<Bus>) -> Self {
        Self {
            bus: Arc::downgrade(bus),
            metrics: bus.metrics.clone(),
            buffers: bus.pools.batches.clone(),
            rules: *bus.rules(),
        }
    }

    /// The bus, while the hub is alive.
    fn bus(&self) -> Option<Arc<Bus>> {
        self.bus.upgrade()
    }

    /// Whether the hub is gone.
    pub(crate) fn is_gone(&self) -> bool {
        self.bus.strong_count() == 0
    }

    /// A direct message or request for a local agent.
    pub(crate) fn deliver(&self, env: Envelope) {
        if let Some(bus) = self.bus() {
            bus.deliver_inbound(env);
        }
    }

    /// A direct message or request from a durable log: one the recipient cannot take now
    /// comes back (see [`Bus::deliver_inbound_or_back`]) unless `last_chance`.
    pub(crate) fn deliver_or_back(&self, env: Envelope, last_chance: bool) -> Option<Envelope> {
        match self.bus() {
            Some(bus) => bus.deliver_inbound_or_back(env, !last_chance),
            // The hub is gone: the log keeps it for the next start.
            None => Some(env),
        }
    }

    /// A broadcast (`topic: None`) or topic message for the local agents it reaches.
    pub(crate) fn deliver_fan_out(&self, env: Envelope, topic: Option<&str>) {
        if let Some(bus) = self.bus() {
            bus.deliver_fan_out_inbound(env, topic);
        }
    }

    /// A reply to a local requester; see [`Bus::deliver_reply_from_wire`].
    pub(crate) fn deliver_reply(
        &self,
        env: Envelope,
        request: MessageId,
        sent_by_host: impl FnOnce(AgentId) -> bool,
    ) -> WireReply {
        match self.bus() {
            Some(bus) => bus.deliver_reply_from_wire(env, request, sent_by_host),
            None => WireReply::Dropped,
        }
    }

    /// Sends a copy of every dead letter recorded from now on to `tap`.
    pub(crate) fn tap_dead_letters(&self, tap: flume::Sender<crate::DeadLetter>) {
        if let Some(bus) = self.bus() {
            bus.dead.tap(tap);
        }
    }

    /// Whether `id` is a local agent.
    pub(crate) fn hosts(&self, id: AgentId) -> bool {
        self.bus().is_some_and(|bus| bus.registry.contains(id))
    }

    /// Every local agent's id.
    pub(crate) fn agents(&self) -> Vec<AgentId> {
        let Some(bus) = self.bus() else {
            return Vec::new();
        };
        let mut ids = Vec::with_capacity(bus.registry.len());
        bus.registry.for_each(|slot| ids.push(slot.id));
        ids
    }

    /// A mailbox for a link to other hubs: it batches up to `max_messages`, holds at most
    /// `capacity` (refusing beyond), and hands its messages on rather than delivering them.
    pub(crate) fn link_mailbox(&self, capacity: usize, max_messages: usize) -> Mailbox {
        Mailbox::new(
            capacity,
            crate::OverflowPolicy::Reject,
            self.rules.with_max_messages(max_messages),
            self.metrics.clone(),
            self.buffers.clone(),
        )
        .forwarding()
    }

    /// How many local agents there are.
    pub(crate) fn agent_count(&self) -> usize {
        self.bus().map_or(0, |bus| bus.registry.len())
    }

    /// This hub's members of group or capability `name`, with their mailbox depths.
    pub(crate) fn role(&self, kind: GroupKind, name: &str) -> Vec<MemberLoad> {
        self.bus().map_or_else(Vec::new, |bus| match kind {
            GroupKind::Group => bus.groups.loads_of(name),
            GroupKind::Capability => bus.capabilities.loads_of(name),
        })
    }

    /// Every group and capability this hub has members of.
    pub(crate) fn roles(&self) -> Vec<(GroupKind, Arc<str>)> {
        let Some(bus) = self.bus() else {
            return Vec::new();
        };
        let groups = bus.groups.names().into_iter();
        let capabilities = bus.capabilities.names().into_iter();
        groups
            .map(|n| (GroupKind::Group, n))
            .chain(capabilities.map(|n| (GroupKind::Capability, n)))
            .collect()
    }

    /// The largest payload the hub accepts.
    pub(crate) fn max_payload(&self) -> usize {
        self.bus().map_or(0, |bus| bus.config.max_payload)
    }

    /// `n` messages were handed to the transport's client.
    pub(crate) fn forwarded(&self, n: u64) {
        self.metrics.forwarded.add(n);
    }

    /// `n` accepted messages were dropped on their way out, or found missing on their way
    /// in, with `reason`.
    pub(crate) fn lost(&self, n: u64, reason: DropReason) {
        self.metrics.drop_n(reason, n);
    }

    /// Accepted messages dropped on their way out, with `reason`: counted and kept among
    /// the dead letters.
    pub(crate) fn lost_letters(
        &self,
        envs: impl IntoIterator<Item = Envelope>,
        reason: DropReason,
    ) {
        match self.bus() {
            Some(bus) => bus.dead_letters(reason, envs),
            None => self.metrics.drop_n(reason, envs.into_iter().count() as u64),
        }
    }

    /// [`lost_letters`](Self::lost_letters) for messages that never reached a mailbox (for
    /// the shutdown accounting).
    pub(crate) fn lost_letters_before_mailbox(&self, envs: &[Envelope], reason: DropReason) {
        self.metrics.lost_before_mailbox.add(envs.len() as u64);
        self.lost_letters(envs.iter().cloned(), reason);
    }

    /// `n` accepted messages were dropped before reaching any mailbox (for the shutdown
    /// accounting), with `reason`.
    pub(crate) fn lost_before_mailbox(&self, n: u64, reason: DropReason) {
        self.metrics.lost_before_mailbox.add(n);
        self.metrics.drop_n(reason, n);
    }
}

impl Bus {
    /// Delivers an envelope that came from a remote hub, without waiting.
    pub(crate) fn deliver_inbound(&self, env: Envelope) {
        // Without `hold`, nothing comes back.
        let _ = self.deliver_inbound_or_back(env, false);
    }

    /// [`deliver_inbound`](Self::deliver_inbound), except that with `hold` a message the
    /// recipient cannot take now (not registered yet, mailbox full, budget spent) comes
    /// back instead of becoming a dead letter: a durable log delivers it again later.
    pub(crate) fn deliver_inbound_or_back(&self, env: Envelope, hold: bool) -> Option<Envelope> {
        if !self.inbound_payload_fits(&env) {
            // Its copy is a dead letter: done.
            env.settle(crate::receipt::Outcome::Taken);
            return None;
        }
        match env.kind {
            // Replies from the wire go through `deliver_reply_from_wire`.
            Kind::Reply(_) => {
                self.dead_letter(DropReason::ReplyOrphaned, env);
                return None;
            }
            // Answers go through `deliver_reply_from_wire`; never into a mailbox.
            Kind::Chunk(_) | Kind::Failed(_) => {
                self.dead_letter(DropReason::StreamGone, env);
                return None;
            }
            // Handled here, ahead of anything queued in the callee's mailbox.
            Kind::Cancel(request) => {
                if self.calls.cancel(request, env.from) == CancelOutcome::Unknown {
                    self.dead_letter(DropReason::StreamGone, env);
                }
                return None;
            }
            Kind::Message | Kind::Topic | Kind::Request => {}
        }
        let mut env = env;
        if env.kind == Kind::Request {
            // This hub's own cancellation state for the request: a cancel from the
            // requester's hub sets it.
            let call = self.calls.open(env.id, env.from);
            let mut headers = env.headers.as_deref().cloned().unwrap_or_default();
            headers.call = Some(CallRef(call));
            if let Some(old) = &env.headers {
                headers.receipt = old.receipt.take();
            }
            env.headers = Some(Arc::new(headers));
        }
        let flush_now = env.kind == Kind::Request;
        // Only local agents: a frame is never forwarded to a third hub.
        let to = env.to;
        let mut env = Some(env);
        let outcome = self.registry.with_mailbox(to, |mailbox| match env.take() {
            Some(env) => self.admit_to(mailbox, env, flush_now, 1),
            None => Ok(()),
        });
        let back = match (outcome, env) {
            (Some(Err(Refused::Full(env) | Refused::OverBudget(env, _))), _) if hold => *env,
            (None, Some(env)) if hold => env,
            (Some(outcome), _) => {
                self.count_inbound_refusal(outcome);
                return None;
            }
            (None, Some(env)) => {
                self.dead_letter(DropReason::RecipientGone, env);
                return None;
            }
            (None, None) => return None,
        };
        if back.kind == Kind::Request {
            // Opened again when it comes again.
            self.calls.close(back.id);
        }
        Some(back)
    }

    /// Delivers a remote broadcast (`topic: None`) or topic message to local agents, each
    /// copy charged its share of the one payload they share.
    pub(crate) fn deliver_fan_out_inbound(&self, env: Envelope, topic: Option<&str>) {
        if !self.inbound_payload_fits(&env) {
            return;
        }
        let deliver = |to: AgentId, mailbox: &Arc<Mailbox>, recipients: usize| {
            if to == env.from {
                return;
            }
            let mut copy = env.clone();
            copy.to = to;
            self.count_inbound_refusal(self.admit_to(mailbox, copy, false, recipients));
        };
        match topic {
            None => {
                let recipients = self.registry.len();
                self.registry
                    .for_each(|slot| deliver(slot.id, &slot.mailbox, recipients))
            }
            Some(name) => {
                if let Ok((_, ids)) = self.registry.subscribers(name, &self.pools.uuids) {
                    for &to in ids.iter() {
                        self.registry
                            .with_mailbox(to, |mailbox| deliver(to, mailbox, ids.len()));
                    }
                }
            }
        }
    }

    /// The wire decoder bounds what it reads; this bounds what is queued, whatever decoded
    /// it: a payload over `max_payload` (declared or stored) is dropped and counted.
    pub(crate) fn inbound_payload_fits(&self, env: &Envelope) -> bool {
        let fits = env.payload.check_size(self.config.max_payload).is_ok();
        if !fits {
            // Metadata only: the payload is what is too large to keep.
            let mut meta = env.clone();
            meta.payload = crate::Payload::from(Vec::new());
            self.dead_letter(DropReason::PayloadTooLarge, meta);
        }
        fits
    }

    fn count_inbound_refusal(&self, outcome: Result<(), Refused>) {
        let (reason, env) = match outcome {
            Ok(()) => return,
            Err(Refused::Full(env)) => (DropReason::MailboxFull, Some(env)),
            Err(Refused::OverBudget(env, _)) => (DropReason::MemoryBudget, Some(env)),
            Err(Refused::Error(Error::ShuttingDown, env)) => (DropReason::HubClosed, env),
            Err(Refused::Error(_, env)) => (DropReason::RecipientGone, env),
        };
        match env {
            Some(env) => self.dead_letter(reason, *env),
            None => self.metrics.drop_n(reason, 1),
        }
    }
}
