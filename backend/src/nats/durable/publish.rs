//! The durable publisher of a link to one remote hub: each frame goes into the swarm's
//! stream with a `Nats-Msg-Id` unique to the frame (`<hub>.<epoch>.<link>.<seq>`), up to
//! `publish_window` frames wait for the server's confirmation at once, and messages count
//! as forwarded only once their frame is confirmed. A publish that fails or is not
//! confirmed (the server restarted, the stream is full) is retried with the same id, with
//! every frame after it, in order: the server stores what it already has once (a
//! duplicate), so nothing is lost and nothing is stored twice within `duplicate_window`.

use super::context::Durable;
use crate::bus::Inbound;
use crate::metrics::DropReason;
use crate::nats::bridge::{signing_room, Bridge};
use crate::nats::directory::RemoteNode;
use crate::nats::frame::{self, frame_end};
use crate::nats::link::Link;
use crate::nats::stats::BridgeStats;
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

type Confirmation = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// A frame published and not confirmed yet.
struct Pending {
    id: String,
    body: Bytes,
    messages: u64,
    /// `None` until (re)published.
    confirmation: Option<Confirmation>,
}

/// Publishes the link's batches into the stream until it is sealed and empty, or closed.
pub(crate) async fn run(
    bus: Inbound,
    bridge: Arc<Bridge>,
    durable: Arc<Durable>,
    node: Arc<RemoteNode>,
) {
    let link = &node.link;
    let subject = bridge.subjects.node(&node.name);
    let budget = bridge
        .max_message
        .saturating_sub(frame::HEADER_MAX + signing_room());
    let window = durable.config.publish_window as usize;
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(window);
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            biased;
            result = confirmed(&mut pending), if !pending.is_empty() => match result {
                Ok(ack) => {
                    if let Some(done) = pending.pop_front() {
                        if ack.duplicate {
                            durable.stats.publish_duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        let stats = &bridge.stats;
                        BridgeStats::add(&stats.frames_sent, 1);
                        BridgeStats::add(&stats.bytes_sent, done.body.len() as u64);
                        BridgeStats::add(&stats.messages_out, done.messages);
                        BridgeStats::add(&stats.messages_confirmed, done.messages);
                        bus.forwarded(done.messages);
                        link.release_in_hand(done.messages);
                    }
                }
                Err(e) => {
                    durable.stats.publish_retries.fetch_add(1, Ordering::Relaxed);
                    durable.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "swarmbus::nats", "durable publish not confirmed, retried: {e}");
                    // Everything after it too, in order.
                    for p in pending.iter_mut() {
                        p.confirmation = None;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    republish(&durable, &subject, &mut pending).await;
                }
            },
            batch = link.mailbox.next_batch(), if open && pending.len() < window => match batch {
                None => open = false,
                Some(batch) => {
                    link.take_in_hand(batch.len() as u64);
                    let mut rest = &batch[..];
                    while !rest.is_empty() {
                        let end = frame_end(rest, budget, false);
                        let (part, tail) = rest.split_at(end);
                        rest = tail;
                        let n = part.len() as u64;
                        if part.iter().map(frame::envelope_len).sum::<usize>() > budget {
                            link.release_in_hand(n);
                            bus.lost_letters_before_mailbox(part, DropReason::FrameTooLarge);
                            continue;
                        }
                        pending.push_back(encode(&bridge, link, &subject, part));
                    }
                    republish(&durable, &subject, &mut pending).await;
                }
            },
        }
    }
}

/// Waits for the first pending frame's confirmation.
async fn confirmed(pending: &mut VecDeque<Pending>) -> Result<PublishAck, PublishError> {
    match pending.front_mut().and_then(|p| p.confirmation.as_mut()) {
        Some(confirmation) => confirmation.await,
        // Not published (a retry is under way): never ready.
        None => std::future::pending().await,
    }
}

/// One frame, numbered and sealed, with its id.
fn encode(bridge: &Bridge, link: &Link, subject: &str, part: &[crate::Envelope]) -> Pending {
    let (body, seq) = bridge.next_frame(link, subject, part);
    Pending {
        id: format!(
            "{}.{}.{}.{seq}",
            bridge.config.node, bridge.epoch, link.instance
        ),
        body,
        messages: part.len() as u64,
        confirmation: None,
    }
}

/// Publishes every pending frame that is not out, in order, until each is handed to the
/// client (retrying while the client refuses).
async fn republish(durable: &Durable, subject: &str, pending: &mut VecDeque<Pending>) {
    for p in pending.iter_mut().filter(|p| p.confirmation.is_none()) {
        let mut delay = Duration::from_millis(20);
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, p.id.as_str());
            match durable
                .js
                .publish_with_headers(subject.to_string(), headers, p.body.clone())
                .await
            {
                Ok(confirmation) => {
                    p.confirmation = Some(Box::pin(confirmation.into_future()));
                    break;
                }
                Err(e) => {
                    durable.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "swarmbus::nats", "durable publish failed, retried: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}
