//! Reading this hub's durable consumer: frames verified like any other, their messages
//! delivered with receipts, duplicates dropped, what cannot be taken yet handed back.
//!
//! A frame whose direct message is for an agent that is not registered (yet: it registers
//! again after a restart) holds the reader for up to `retry_delay`, so that a restarting
//! hub's agents get their messages in order; after that the frame is delivered again
//! later, and on its `max_deliver`-th delivery what is still undeliverable becomes a dead
//! letter.

use super::ack::FrameAck;
use super::context::Durable;
use crate::bus::{Inbound, WireReply};
use crate::envelope::Kind;
use crate::nats::bridge::Bridge;
use crate::nats::inbound::{check, Checked};
use crate::nats::link::Stream;
use crate::nats::stats::BridgeStats;
use crate::receipt::Receipt;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Reads the consumer until the hub is gone.
///
/// After a crash, the frames the dead run had been given and had not acknowledged come
/// again only after `ack_wait`, while newer ones come at once. To keep each sender's order,
/// the reader holds frames newer than what the consumer had delivered when this run
/// started until those older ones are acknowledged (the consumer's ack floor reaches
/// them), for at most twice `ack_wait`.
pub(crate) async fn run(
    bus: Inbound,
    bridge: Arc<Bridge>,
    durable: Arc<Durable>,
    mut consumer: jetstream::consumer::PullConsumer,
) {
    let mut catch_up = match consumer.info().await {
        Ok(info) if info.delivered.stream_sequence > info.ack_floor.stream_sequence => {
            Some(CatchUp {
                upto: info.delivered.stream_sequence,
                until: tokio::time::Instant::now() + durable.config.ack_wait * 2,
                held: std::collections::VecDeque::new(),
            })
        }
        _ => None,
    };
    let mut backoff = Duration::from_millis(50);
    while !bus.is_gone() {
        let messages = consumer
            .stream()
            .max_messages_per_batch(durable.config.max_ack_pending.clamp(1, 1024) as usize)
            .heartbeat(Duration::from_secs(2))
            .expires(Duration::from_secs(10))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                durable.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "swarmbus::nats", "JetStream pull failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            let item = tokio::select! {
                item = messages.next() => item,
                _ = tick.tick(), if catch_up.is_some() => {
                    if let Some(c) = catch_up.take() {
                        catch_up = c.release_if_caught_up(&bus, &bridge, &durable, &mut consumer).await;
                    }
                    continue;
                }
            };
            let Some(item) = item else { break };
            if bus.is_gone() {
                return;
            }
            match item {
                Ok(message) => {
                    let newer = catch_up.as_mut().and_then(|c| {
                        let sseq = message.info().map_or(0, |i| i.stream_sequence);
                        (sseq > c.upto).then_some(c)
                    });
                    match newer {
                        Some(c) => c.held.push_back(message),
                        None => receive(&bus, &bridge, &durable, message).await,
                    }
                }
                Err(e) => {
                    durable.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "swarmbus::nats", "JetStream consumer: {e}");
                    if !matches!(
                        e.kind(),
                        pull::MessagesErrorKind::MissingHeartbeat
                            | pull::MessagesErrorKind::Pull
                            | pull::MessagesErrorKind::NoResponders
                    ) {
                        break;
                    }
                }
            }
        }
        // The pull ended (consumer deleted, subscription closed): start another.
        tokio::time::sleep(backoff).await;
    }
}

/// Frames held back after a restart until the dead run's unacknowledged ones are done.
struct CatchUp {
    /// The last stream sequence delivered before this run.
    upto: u64,
    /// Give up holding then.
    until: tokio::time::Instant,
    held: std::collections::VecDeque<jetstream::Message>,
}

impl CatchUp {
    /// Delivers what it held once the ack floor passed `upto` (or time is up); else keeps
    /// holding.
    async fn release_if_caught_up(
        mut self,
        bus: &Inbound,
        bridge: &Arc<Bridge>,
        durable: &Durable,
        consumer: &mut jetstream::consumer::PullConsumer,
    ) -> Option<CatchUp> {
        let caught_up = match consumer.info().await {
            Ok(info) => info.ack_floor.stream_sequence >= self.upto,
            Err(_) => {
                durable.stats.errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        if !caught_up && tokio::time::Instant::now() < self.until {
            return Some(self);
        }
        if !caught_up {
            tracing::warn!(target: "swarmbus::nats", "frames a previous run of this hub held were not delivered again in time: newer ones go first");
        }
        while let Some(message) = self.held.pop_front() {
            receive(bus, bridge, durable, message).await;
        }
        None
    }
}

/// One frame from the log.
async fn receive(
    bus: &Inbound,
    bridge: &Arc<Bridge>,
    durable: &Durable,
    message: jetstream::Message,
) {
    let stats = &bridge.stats;
    let ds = &durable.stats;
    let delivered = message.info().map_or(1, |info| info.delivered);
    if delivered > 1 {
        ds.redelivered.fetch_add(1, Ordering::Relaxed);
    }
    let last_chance = delivered >= i64::from(durable.config.max_deliver);
    BridgeStats::add(&stats.bytes_received, message.payload.len() as u64);
    let checked = check(
        bus,
        bridge,
        Stream::Direct,
        message.subject.as_str(),
        message.payload.clone(),
        true,
    );
    let Checked { frame, node } = match checked {
        Ok(Some(checked)) => checked,
        // Our own (never published to ourselves, but harmless): done.
        Ok(None) => return durable.settle_now(message, AckKind::Ack).await,
        Err(why) => {
            // Forged or corrupt: it will never be better. Stop its redelivery.
            stats.refuse(why);
            ds.terminated.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "swarmbus::nats", "refused a durable frame on {}: {why:?}", message.subject);
            return durable.settle_now(message, AckKind::Term).await;
        }
    };
    if let Some(node) = &node {
        node.seen(bridge.generation());
    }
    let count = frame.envelopes.len() as u64;
    BridgeStats::add(&stats.frames_received, 1);
    BridgeStats::add(&stats.messages_in, count);
    if !last_chance {
        wait_for_recipients(bus, &frame.envelopes, durable.config.retry_delay).await;
    }
    let numbers = frame.numbers;
    let key = durable
        .window
        .key(&frame.node, numbers.epoch, numbers.link, numbers.seq);
    let ack = FrameAck::new(
        message,
        durable.window.clone(),
        key,
        durable.settled.clone(),
        &durable.in_flight,
    );
    let hosted_by_sender = |id| node.as_ref().is_some_and(|n| n.hosts(id));
    let mut forged = 0;
    let fresh = durable
        .window
        .arrive(key, frame.envelopes.len(), Some(ack.clone() as _));
    let duplicates = fresh.iter().filter(|new| !**new).count() as u64;
    if duplicates > 0 {
        ds.deduplicated.fetch_add(duplicates, Ordering::Relaxed);
    }
    for ((mut env, new), slot) in frame.envelopes.into_iter().zip(fresh).zip(0u32..) {
        if !new {
            continue;
        }
        match env.kind {
            Kind::Reply(request) | Kind::Chunk(request) | Kind::Failed(request) => {
                match bus.deliver_reply(env, request, hosted_by_sender) {
                    WireReply::Forged => forged += 1,
                    WireReply::NotHere => BridgeStats::add(&stats.replies_not_forwarded, 1),
                    WireReply::Delivered | WireReply::Dropped => {}
                }
                ack.taken(slot);
            }
            Kind::Message | Kind::Request => {
                let mut headers = env.headers.as_deref().cloned().unwrap_or_default();
                headers.receipt = Receipt::new(ack.clone(), slot);
                env.headers = Some(Arc::new(headers));
                env.redelivered = delivered > 1;
                // What comes back is dropped here: its receipt hands the frame back.
                drop(bus.deliver_or_back(env, last_chance));
            }
            Kind::Cancel(_) | Kind::Topic => {
                drop(bus.deliver_or_back(env, true));
                ack.taken(slot);
            }
        }
    }
    stats.refuse_n(crate::nats::stats::Refusal::BadSender, forged);
    // A message came back: deliver the frame again after `retry_delay`, without waiting
    // for the ones in mailboxes (the next delivery waits for them).
    ack.hand_back_now();
}

/// Waits (at most `hold`) until every direct recipient of `envs` is registered here.
async fn wait_for_recipients(bus: &Inbound, envs: &[crate::Envelope], hold: Duration) {
    let missing = |bus: &Inbound| {
        envs.iter()
            .any(|e| matches!(e.kind, Kind::Message | Kind::Request) && !bus.hosts(e.to))
    };
    let deadline = tokio::time::Instant::now() + hold;
    while missing(bus) && tokio::time::Instant::now() < deadline && !bus.is_gone() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Durable {
    /// Acknowledges (or terminates) a frame that needs no delivery.
    async fn settle_now(&self, message: jetstream::Message, kind: AckKind) {
        match message.ack_with(kind).await {
            Ok(()) => {
                self.stats.acks.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Samples how far this hub's consumer is behind (published to it, not acknowledged),
/// every second, until the hub is gone.
pub(crate) async fn sample_lag(
    bus: Inbound,
    durable: Arc<Durable>,
    mut consumer: jetstream::consumer::PullConsumer,
) {
    while !bus.is_gone() {
        match consumer.info().await {
            Ok(info) => {
                let lag = info.num_pending + info.num_ack_pending as u64;
                durable.stats.lag.store(lag, Ordering::Relaxed);
            }
            Err(_) => {
                durable.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
