//! Acknowledging frames: a frame's messages carry receipts that point to one [`FrameAck`];
//! when the last receipt is settled and the frame's reader has let go, the frame is
//! acknowledged (every message taken or dead-lettered) or handed back to be delivered
//! again (one was returned untaken). A later delivery of a frame whose message is still in
//! a mailbox waits for it too (the window holds it). One task sends the verdicts, in the
//! order they settle.

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
    /// Taken out once the verdict is sent.
    message: parking_lot::Mutex<Option<jetstream::Message>>,
    window: Arc<Window>,
    /// A message was returned untaken: deliver the frame again.
    again: AtomicBool,
    /// Messages taken so far: marked done in the window, under one lock, when the frame
    /// is finished (until then they are pending there, which catches duplicates as well).
    taken: parking_lot::Mutex<Vec<MessageId>>,
    to: flume::Sender<Settled>,
}

impl FrameAck {
    pub(crate) fn new(
        message: jetstream::Message,
        window: Arc<Window>,
        to: flume::Sender<Settled>,
    ) -> Arc<FrameAck> {
        Arc::new(FrameAck {
            message: parking_lot::Mutex::new(Some(message)),
            window,
            again: AtomicBool::new(false),
            taken: parking_lot::Mutex::new(Vec::new()),
            to,
        })
    }

    /// The frame must be delivered again, whatever its receipts say.
    pub(crate) fn again(&self) {
        self.again.store(true, Ordering::Release);
    }

    /// When a message of the frame came back while it was being delivered: hands the
    /// frame back now rather than when its other messages are taken (the next delivery
    /// waits for those, see `Window`). True when it did.
    pub(crate) fn hand_back_now(&self) -> bool {
        if !self.again.load(Ordering::Acquire) {
            return false;
        }
        if let Some(message) = self.message.lock().take() {
            let _ = self.to.send(Settled {
                message,
                again: true,
            });
        }
        true
    }
}

impl FrameAck {
    /// Message `id` of the frame is done (taken, or handled without a mailbox).
    pub(crate) fn taken(&self, id: MessageId) {
        self.taken.lock().push(id);
    }
}

impl Settle for FrameAck {
    fn settle(&self, id: MessageId, outcome: Outcome) {
        match outcome {
            Outcome::Taken => self.taken(id),
            Outcome::Returned => {
                // Forgotten at once, so the next delivery can bring it.
                self.window.settle(id, outcome);
                self.again();
            }
        }
    }
}

impl Drop for FrameAck {
    fn drop(&mut self) {
        self.window.taken_all(std::mem::take(self.taken.get_mut()));
        if let Some(message) = self.message.get_mut().take() {
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
