//! The publisher of one link: takes its batches, splits them into frames that fit the
//! server, waits while the destination cannot hear, and publishes.
//!
//! Every message leaves counted once: handed to the client (`forwarded`), or dropped with a
//! reason (`frame_too_large`, `publish_failed`, `hub_gone`; `unsent` at shutdown).

use super::bridge::{signing_room, Bridge};
use super::directory::RemoteNode;
use super::directory::Upsert;
use super::frame::{self, frame_end};
use super::link::Link;
use super::stats::BridgeStats;
use crate::bus::Inbound;
use crate::metrics::DropReason;
use crate::Envelope;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Whose link a publisher drains.
#[derive(Debug)]
pub(super) enum Target {
    Node(Arc<RemoteNode>),
    Everyone,
    Topics,
}

/// Publishes the link's batches until it is sealed and empty, or closed.
pub(super) async fn run(bus: Inbound, bridge: Arc<Bridge>, target: Target) {
    if let (Target::Node(node), Some(durable)) = (&target, &bridge.durable) {
        let (node, durable) = (node.clone(), durable.clone());
        return super::durable::publish::run(bus, bridge, durable, node).await;
    }
    let link = match &target {
        Target::Node(node) => &node.link,
        Target::Everyone => &bridge.everyone,
        Target::Topics => &bridge.topics,
    };
    let budget = bridge
        .max_message
        .saturating_sub(frame::HEADER_MAX + signing_room());
    while let Some(batch) = link.mailbox.next_batch().await {
        link.take_in_hand(batch.len() as u64);
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let end = frame_end(rest, budget, matches!(target, Target::Topics));
            let (part, tail) = rest.split_at(end);
            rest = tail;
            let n = part.len() as u64;
            let fits = part.iter().map(frame::envelope_len).sum::<usize>() <= budget;
            if !fits {
                // Refused at send when it cannot fit; this is a frame limit that shrank.
                lose(&bus, link, part, DropReason::FrameTooLarge);
                continue;
            }
            if !wait_until_open(&bridge, &target, link).await {
                // The link closed while we waited (its hub is gone).
                let unsent = &batch[batch.len() - part.len() - rest.len()..];
                lose(&bus, link, unsent, DropReason::HubGone);
                break;
            }
            let subject = match &target {
                Target::Node(node) => Ok(bridge.subjects.node(&node.name)),
                Target::Everyone => Ok(bridge.subjects.all()),
                Target::Topics => bridge.subjects.topic(part[0].topic().unwrap_or("")),
            };
            let Ok(subject) = subject else {
                lose(&bus, link, part, DropReason::PublishFailed);
                continue;
            };
            let (sealed, _) = bridge.next_frame(link, &subject, part);
            let len = sealed.len() as u64;
            match bridge.client.publish(subject, sealed).await {
                Ok(()) => {
                    let stats = &bridge.stats;
                    BridgeStats::add(&stats.frames_sent, 1);
                    BridgeStats::add(&stats.bytes_sent, len);
                    BridgeStats::add(&stats.messages_out, n);
                    bus.forwarded(n);
                    link.release_in_hand(n);
                }
                Err(e) => {
                    // Nothing went out: give the numbers back, so the receiver does not
                    // count these as lost on top of our count.
                    link.unnumber(n);
                    tracing::warn!(target: "swarmbus::nats", "frame publish failed: {e}");
                    lose(&bus, link, part, DropReason::PublishFailed);
                }
            }
        }
    }
}

/// Counts `n` messages the publisher held as dropped.
fn lose(bus: &Inbound, link: &Link, envs: &[Envelope], reason: DropReason) {
    link.release_in_hand(envs.len() as u64);
    bus.lost_letters_before_mailbox(envs, reason);
}

/// Waits until the destination can hear: connected, and (for a remote hub) the hub live
/// and heard since the last reconnection, since before that its subscription may not be
/// back and the server would drop the frame. False once the link is closed.
async fn wait_until_open(bridge: &Bridge, target: &Target, link: &Link) -> bool {
    loop {
        if link.mailbox.is_gone() {
            return false;
        }
        let open = bridge.is_connected()
            && match target {
                Target::Node(node) => node.is_live() && node.heard_in() >= bridge.generation(),
                Target::Everyone | Target::Topics => bridge.fan_out_ready(),
            };
        if open {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node entry for `name` at `epoch`, creating its link and starting its publisher
/// when new.
/// `None` for a stale epoch (a replay, or a hub that said bye); a leaving node is
/// returned only when `leaving_ok` (its last frames).
pub(super) fn node_entry(
    bridge: &Arc<Bridge>,
    name: &str,
    epoch: u64,
    leaving_ok: bool,
) -> Option<Arc<RemoteNode>> {
    let inherit = bridge.durable.as_ref().map(|d| d.config.directory_ttl);
    let upsert = bridge.directory.upsert(name, epoch, inherit, || {
        let instance = bridge.links_created.fetch_add(1, Ordering::AcqRel) + 1;
        let mailbox = bridge
            .bus
            .link_mailbox(bridge.config.outage_buffer, bridge.config.frame_messages);
        let link = Link::new(instance, mailbox);
        link.mailbox.set_max_wire(bridge.max_wire_payload());
        link
    });
    match upsert {
        Upsert::Known(node) => Some(node),
        Upsert::Leaving(node) => leaving_ok.then_some(node),
        Upsert::Stale => None,
        Upsert::Revived(node) => {
            BridgeStats::add(&bridge.stats.nodes_revived, 1);
            tracing::info!(target: "swarmbus::nats", "hub {name} is back; its buffered messages follow");
            Some(node)
        }
        Upsert::New { node, replaced } => {
            let mut before = None;
            if let Some(old) = replaced {
                if bridge.durable.is_some() {
                    // Its frames go to the same consumer: let its publisher drain it, and
                    // start the new one after, or the two would interleave in the stream.
                    old.link.mailbox.seal();
                    before = bridge
                        .publishers
                        .lock()
                        .iter()
                        .find(|(n, _)| n.as_ref().is_some_and(|n| Arc::ptr_eq(n, &old)))
                        .map(|(_, task)| task.abort_handle());
                } else {
                    bridge.close_link(&old);
                }
            }
            let publisher = run(
                bridge.bus.clone(),
                bridge.clone(),
                Target::Node(node.clone()),
            );
            let task = tokio::spawn(async move {
                if let Some(before) = before {
                    while !before.is_finished() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                publisher.await;
            });
            let mut publishers = bridge.publishers.lock();
            publishers.retain(|(_, t)| !t.is_finished());
            publishers.push((Some(node.clone()), task));
            Some(node)
        }
    }
}
