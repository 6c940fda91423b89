//! The dead-letter stream: in durable mode every dead letter of this hub is also published
//! to `swarmbus.<swarm>.dlq.<hub>` (stream `SWARMBUS_<swarm>_DLQ`), as a one-message
//! frame with headers `Swarmbus-Reason` and `Swarmbus-At` (milliseconds since 1970), so
//! what reached no agent outlives the hub that dropped it.

use super::context::Durable;
use crate::nats::bridge::Bridge;
use crate::nats::frame::{self, Numbers};
use crate::DeadLetter;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Copies waiting to be published, at most; beyond it a copy is counted as an error (the
/// hub's own store still has the letter).
pub(crate) const QUEUE: usize = 10_000;

/// Publishes the letters `letters` receives until the hub is gone.
pub(crate) async fn run(
    bridge: Arc<Bridge>,
    durable: Arc<Durable>,
    letters: flume::Receiver<DeadLetter>,
) {
    let subject = bridge.subjects.dead_letters(&bridge.config.node);
    let mut seq = 0u64;
    while let Ok(letter) = letters.recv_async().await {
        seq += 1;
        let numbers = Numbers {
            epoch: bridge.epoch,
            link: 0,
            seq,
            msg_seq: seq - 1,
        };
        let body = frame::encode_with_room(
            &bridge.config.node,
            numbers,
            std::slice::from_ref(letter.envelope()),
            0,
        )
        .freeze();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Swarmbus-Reason", letter.reason());
        let at = letter
            .at()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        headers.insert("Swarmbus-At", at.to_string().as_str());
        let id = format!("{}.{}.dlq.{seq}", bridge.config.node, bridge.epoch);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let mut published = false;
        for attempt in 0..5u32 {
            let sent = durable
                .js
                .publish_with_headers(subject.clone(), headers.clone(), body.clone())
                .await;
            if let Ok(ack) = sent {
                if ack.await.is_ok() {
                    published = true;
                    break;
                }
            }
            durable.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100) * (attempt + 1)).await;
        }
        if published {
            durable
                .stats
                .dead_letters_published
                .fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::warn!(target: "swarmbus::nats", "a dead letter could not be published to the dead-letter stream (it stays in the hub's store)");
        }
    }
}
