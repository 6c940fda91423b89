//! Acknowledging frames: a frame's messages carry receipts that point to one [`FrameAck`];
//! when the last receipt is settled and the frame's reader has let go, the frame is
//! acknowledged (every message taken or dead-lettered) or handed back to be delivered
//! again (one was returned untaken). One task sends both, in the order they settle.

use super::{DurableStats, Window};
use crate::receipt::{Outcome, Settle};
use crate::MessageId;
use async_nats::jetstream::{self, AckKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to tell the server about one frame.
#[derive(Debug)]
pub(crate) struct Settled {
    message: jetstream::Message,
    again: bool,
}

/// One delivered frame, until all its messages are settled.
#[derive(Debug)]
pub(crate) struct FrameAck {
    message: Option<jetstream::Message>,
    window: Arc<Window>,
    /// A message was returned untaken: deliver the frame again.
    again: AtomicBool,
    to: flume::Sender<Settled>,
}

impl FrameAck {
    pub(crate) fn new(
        message: jetstream::Message,
        window: Arc<Window>,
        to: flume::Sender<Settled>,
    ) -> Arc<FrameAck> {
        Arc::new(FrameAck {
            message: Some(message),
            window,
            again: AtomicBool::new(false),
            to,
        })
    }

    /// The frame must be delivered again, whatever its receipts say.
    pub(crate) fn again(&self) {
        self.again.store(true, Ordering::Release);
    }
}

impl Settle for FrameAck {
    fn settle(&self, id: MessageId, outcome: Outcome) {
        self.window.settle(id, outcome);
        if outcome == Outcome::Returned {
            self.again();
        }
    }
}

impl Drop for FrameAck {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            let again = self.again.load(Ordering::Acquire);
            // The task is gone only when the hub is: the server delivers the frame again
            // after `ack_wait`.
            let _ = self.to.send(Settled { message, again });
        }
    }
}

/// Sends the acknowledgements, until every sender is gone.
pub(crate) async fn run(
    settled: flume::Receiver<Settled>,
    stats: Arc<DurableStats>,
    retry_delay: Duration,
) {
    while let Ok(Settled { message, again }) = settled.recv_async().await {
        let (kind, counter) = if again {
            (AckKind::Nak(Some(retry_delay)), &stats.naks)
        } else {
            (AckKind::Ack, &stats.acks)
        };
        match message.ack_with(kind).await {
            Ok(()) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // Not lost: unacknowledged, the frame comes again after `ack_wait`, and the
                // window drops what was taken already.
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "swarmbus::nats", "JetStream ack failed: {e}");
            }
        }
    }
}
