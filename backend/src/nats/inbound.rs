//! Frames from other hubs: verified, decoded, checked against the sender's stream, then
//! delivered to local agents.
//!
//! A frame is refused, and counted by reason, when its tag does not verify, when it does
//! not decode, when its epoch is stale or its sequence numbers were seen before (a replay),
//! when it claims a sender that is ours or another hub's, or when it carries a kind of
//! message its subject does not carry. Gaps in the sequence numbers are counted as lost
//! frames and lost messages (`lost_in_transit`).

use super::bridge::Bridge;
use super::directory::RemoteNode;
use super::link::Stream;
use super::stats::{BridgeStats, Refusal};
use crate::bus::{Inbound, WireReply};
use crate::envelope::Kind;
use crate::metrics::DropReason;
use crate::{AgentId, Envelope};
use std::sync::Arc;

/// Decodes frames from one subscription and delivers their envelopes to local agents.
pub(super) async fn run(
    bus: Inbound,
    bridge: Arc<Bridge>,
    mut sub: async_nats::Subscriber,
    stream: Stream,
) {
    use futures_util::StreamExt;
    while let Some(message) = sub.next().await {
        if bus.is_gone() {
            return;
        }
        let stats = &bridge.stats;
        BridgeStats::add(&stats.bytes_received, message.payload.len() as u64);
        if let Err(why) = receive(&bus, &bridge, stream, &message.subject, message.payload) {
            stats.refuse(why);
            tracing::debug!(target: "swarmbus::nats", "refused a frame on {}: {why:?}", message.subject);
        }
    }
}

fn receive(
    bus: &Inbound,
    bridge: &Arc<Bridge>,
    stream: Stream,
    subject: &str,
    payload: bytes::Bytes,
) -> Result<(), Refusal> {
    let Some(Checked { frame, node }) = check(bus, bridge, stream, subject, payload, false)? else {
        return Ok(());
    };
    let node = node.ok_or(Refusal::Replayed)?;
    let numbers = frame.numbers;
    let count = frame.envelopes.len() as u64;
    let gap = node.streams.lock()[stream as usize]
        .accept(numbers.link, numbers.seq, numbers.msg_seq, count)
        .map_err(|()| Refusal::Replayed)?;
    node.seen(bridge.generation());
    let stats = &bridge.stats;
    BridgeStats::add(&stats.frames_received, 1);
    BridgeStats::add(&stats.messages_in, count);
    if gap.frames > 0 || gap.messages > 0 {
        BridgeStats::add(&stats.frames_lost, gap.frames);
        BridgeStats::add(&stats.messages_lost, gap.messages);
        bus.lost(gap.messages, DropReason::LostInTransit);
        tracing::warn!(
            target: "swarmbus::nats",
            "{} frames ({} messages) from hub {} were lost in transit",
            gap.frames, gap.messages, frame.node
        );
    }
    let hosted_by_sender = |id: AgentId| node.hosts(id);
    let mut forged = 0;
    for env in frame.envelopes {
        match stream {
            Stream::Direct => match env.kind {
                Kind::Reply(request) | Kind::Chunk(request) | Kind::Failed(request) => {
                    match bus.deliver_reply(env, request, hosted_by_sender) {
                        WireReply::Forged => forged += 1,
                        WireReply::NotHere => BridgeStats::add(&stats.replies_not_forwarded, 1),
                        WireReply::Delivered | WireReply::Dropped => {}
                    }
                }
                _ => bus.deliver(env),
            },
            Stream::Everyone => bus.deliver_fan_out(env, None),
            Stream::Topics => {
                let topic = env.topic().map(str::to_owned);
                bus.deliver_fan_out(env, topic.as_deref());
            }
        }
    }
    // Replies to requests this hub sent to agents of another hub.
    stats.refuse_n(Refusal::BadSender, forged);
    Ok(())
}

/// A frame that passed every check, with its sender's directory entry (`None` only for a
/// frame of an earlier epoch read from a durable log: the hub has restarted since).
pub(super) struct Checked {
    pub(super) frame: super::frame::Frame,
    pub(super) node: Option<Arc<RemoteNode>>,
}

/// Verifies and decodes a frame, and checks that it fits its stream and that its senders
/// belong to the hub that sent it. `None` for this hub's own frame. With `durable`, a
/// frame of an earlier epoch of its hub is accepted (a log delivers old frames after a
/// restart); its senders are checked against the hub's name.
pub(super) fn check(
    bus: &Inbound,
    bridge: &Arc<Bridge>,
    stream: Stream,
    subject: &str,
    payload: bytes::Bytes,
    durable: bool,
) -> Result<Option<Checked>, Refusal> {
    let body = bridge.open(subject, payload)?;
    let now = crate::envelope::nanos_since_epoch(tokio::time::Instant::now());
    let frame = super::frame::decode(body, bridge.limits, now).map_err(Refusal::Frame)?;
    let numbers = frame.numbers;
    if frame.node == bridge.config.node {
        if numbers.epoch != bridge.epoch && !durable {
            bridge.clash(numbers.epoch);
        }
        // Our own broadcast or topic frame: local agents already have it.
        return Ok(None);
    }
    if frame.envelopes.iter().any(|e| !fits_stream(e, stream)) {
        return Err(Refusal::Frame(super::frame::FrameError::BadField));
    }
    let node = super::outbound::node_entry(bridge, &frame.node, numbers.epoch, true);
    if node.is_none() && !durable {
        return Err(Refusal::Replayed);
    }
    // A sender must be this hub's agent, or one nobody else claims (it may have joined
    // a moment ago): never ours, never another hub's.
    let foreign = |id: AgentId| {
        bus.hosts(id)
            || bridge
                .directory
                .owner(id)
                .is_some_and(|owner| owner.name != frame.node)
    };
    // Frames usually carry runs from one sender: check each run once.
    let mut checked = None;
    for e in &frame.envelopes {
        if checked != Some(e.from) {
            if foreign(e.from) {
                return Err(Refusal::BadSender);
            }
            checked = Some(e.from);
        }
    }
    Ok(Some(Checked { frame, node }))
}

/// Whether an envelope is of a kind that travels on `stream`.
fn fits_stream(env: &Envelope, stream: Stream) -> bool {
    match stream {
        Stream::Direct => env.kind != Kind::Topic,
        Stream::Everyone => env.kind == Kind::Message,
        Stream::Topics => env.kind == Kind::Topic,
    }
}
