//! Starting durable delivery's tasks.

use super::context::Durable;
use super::{ack, consume, dead_letters, directory};
use crate::bus::Inbound;
use crate::nats::bridge::{Bridge, LocalChange};
use async_nats::jetstream::consumer;
use std::sync::Arc;

/// Starts the tasks of durable delivery: the consumer's reader, its lag sampler, the
/// acknowledger, the dead-letter publisher and the directory writer (fed `changes`).
pub(crate) fn start(
    bus: &Inbound,
    bridge: &Arc<Bridge>,
    durable: Arc<Durable>,
    consumer: consumer::PullConsumer,
    changes: flume::Receiver<LocalChange>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (letters, letters_rx) = flume::bounded(dead_letters::QUEUE);
    bus.tap_dead_letters(letters);
    vec![
        tokio::spawn(ack::run(
            durable.settled_rx.clone(),
            durable.stats.clone(),
            durable.config.retry_delay,
        )),
        tokio::spawn(ack::keep_in_progress(
            durable.in_flight.clone(),
            durable.stats.clone(),
            durable.config.ack_wait,
            {
                let bus = bus.clone();
                move || bus.is_gone()
            },
        )),
        tokio::spawn(consume::sample_lag(
            bus.clone(),
            durable.clone(),
            consumer.clone(),
        )),
        tokio::spawn(dead_letters::run(
            bridge.clone(),
            durable.clone(),
            letters_rx,
        )),
        tokio::spawn(directory::run(
            bus.clone(),
            bridge.clone(),
            durable.clone(),
            changes,
        )),
        tokio::spawn(consume::run(bus.clone(), bridge.clone(), durable, consumer)),
    ]
}
