//! Acknowledging frames: a frame's messages carry receipts that point to one [`FrameAck`];
//! when the last receipt is settled and the frame's reader has let go, the frame is
//! acknowledged (every message taken or dead-lettered) or handed back to be delivered
//! again (one was returned untaken). A later delivery of a frame whose message is still in
//! a mailbox waits for it too (the window holds it). One task sends the verdicts, in the
//! order they settle.

use super::counters::Counters;
use super::window::{FrameKey, Waiting, Window};
use crate::receipt::{Outcome, Settle};
use async_nats::jetstream::{self, AckKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Frames delivered to this hub and not finished, so that those that wait long (their
/// messages sit in a slow agent's mailbox) are kept from being delivered again: every
/// `ack_wait / 2`, each that has waited that long is reported in progress to the server.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    frames: parking_lot::Mutex<HashMap<u64, Weak<FrameAck>>>,
    next: AtomicU64,
}

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
    /// The frame, in the window.
    frame: FrameKey,
    /// A message was returned untaken: deliver the frame again.
    again: AtomicBool,
    /// Messages taken so far (their positions in the frame): marked done in the window,
    /// under one lock, when the frame is finished (until then they are pending there,
    /// which catches duplicates as well).
    taken: parking_lot::Mutex<Vec<u32>>,
    to: flume::Sender<Settled>,
    in_flight: Arc<InFlight>,
    key: u64,
    since: Instant,
}

impl FrameAck {
    pub(crate) fn new(
        message: jetstream::Message,
        window: Arc<Window>,
        frame: FrameKey,
        to: flume::Sender<Settled>,
        in_flight: &Arc<InFlight>,
    ) -> Arc<FrameAck> {
        let key = in_flight.next.fetch_add(1, Ordering::Relaxed);
        let ack = Arc::new(FrameAck {
            message: parking_lot::Mutex::new(Some(message)),
            window,
            frame,
            again: AtomicBool::new(false),
            taken: parking_lot::Mutex::new(Vec::new()),
            to,
            in_flight: in_flight.clone(),
            key,
            since: Instant::now(),
        });
        in_flight.frames.lock().insert(key, Arc::downgrade(&ack));
        ack
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
    /// Message `slot` of the frame is done (taken, or handled without a mailbox).
    pub(crate) fn taken(&self, slot: u32) {
        self.taken.lock().push(slot);
    }
}

impl Waiting for FrameAck {
    fn again(&self) {
        FrameAck::again(self);
    }
}

impl Settle for FrameAck {
    fn settle(&self, slot: u32, outcome: Outcome) {
        match outcome {
            Outcome::Taken => self.taken(slot),
            Outcome::Returned => {
                // Forgotten at once, so the next delivery can bring it.
                self.window.settle(self.frame, slot, outcome);
                self.again();
            }
        }
    }
}

impl Drop for FrameAck {
    fn drop(&mut self) {
        self.in_flight.frames.lock().remove(&self.key);
        self.window.taken(self.frame, self.taken.get_mut());
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
    stats: Arc<Counters>,
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

/// Reports the frames that have waited `ack_wait / 2` or more as in progress, every
/// `ack_wait / 2`, until the hub is gone (a paused or dead hub sends nothing: the server
/// delivers its frames again, as it should).
pub(crate) async fn keep_in_progress(
    in_flight: Arc<InFlight>,
    stats: Arc<Counters>,
    ack_wait: Duration,
    gone: impl Fn() -> bool,
) {
    let every = (ack_wait / 2).max(Duration::from_millis(5));
    while !gone() {
        tokio::time::sleep(every).await;
        // Upgraded under the lock, let go outside it (a last reference drops the frame,
        // which takes the lock to leave the map).
        let waiting: Vec<Arc<FrameAck>> = in_flight
            .frames
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .filter(|f| f.since.elapsed() >= every)
            .collect();
        let messages: Vec<jetstream::Message> = waiting
            .iter()
            .filter_map(|f| f.message.lock().clone())
            .collect();
        drop(waiting);
        for message in messages {
            match message.ack_with(AckKind::Progress).await {
                Ok(()) => stats.progress.fetch_add(1, Ordering::Relaxed),
                Err(_) => stats.errors.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}
