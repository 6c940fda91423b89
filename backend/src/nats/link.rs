//! A link: the outgoing stream of frames from this hub to one destination (a remote hub,
//! or every hub for broadcasts, or every hub for topic messages).
//!
//! A link is a mailbox like an agent's (same batching, same bound: the outage buffer),
//! drained by one publisher task. Every frame carries the link's instance number, a frame
//! sequence number from 1 and the sequence number of its first message from 0, so the
//! receiver counts frames *and messages* lost in transit, and refuses replays. A
//! message is counted once on its way out: handed to the NATS client (`forwarded`), or
//! dropped with a reason (too large, publish failed, hub gone, unsent at shutdown).

use crate::bus::{Inbound, Mailbox};
use crate::metrics::DropReason;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where a link's frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Frames addressed to one remote hub.
    Direct = 0,
    /// Broadcasts, heard by every hub.
    Everyone = 1,
    /// Topic messages, heard by every hub.
    Topics = 2,
}

/// One outgoing stream of frames.
#[derive(Debug)]
pub(crate) struct Link {
    /// This instance: rises for every link a hub creates, so a receiver can tell a new
    /// link from a replay of an old one.
    pub(crate) instance: u64,
    pub(crate) mailbox: Arc<Mailbox>,
    /// Messages the publisher took from the mailbox and has not handed to the client yet.
    in_hand: AtomicU64,
    /// The next frame's sequence number.
    next_seq: AtomicU64,
    /// The next message's sequence number.
    next_msg: AtomicU64,
}

impl Link {
    /// A link over `mailbox` (a forwarding mailbox the bus made: `Inbound::link_mailbox`).
    pub(crate) fn new(instance: u64, mailbox: Mailbox) -> Link {
        Link {
            instance,
            mailbox: Arc::new(mailbox),
            in_hand: AtomicU64::new(0),
            next_seq: AtomicU64::new(1),
            next_msg: AtomicU64::new(0),
        }
    }

    /// Messages waiting in this link: queued, in the open batch, or in the publisher's hand.
    pub(crate) fn waiting(&self) -> u64 {
        self.mailbox.depth() as u64
            + self.mailbox.open_len() as u64
            + self.in_hand.load(Ordering::Acquire)
    }

    pub(crate) fn take_in_hand(&self, n: u64) {
        self.in_hand.fetch_add(n, Ordering::AcqRel);
    }

    pub(crate) fn release_in_hand(&self, n: u64) {
        self.in_hand.fetch_sub(n, Ordering::AcqRel);
    }

    /// Numbers for the next frame of `count` messages: (seq, first message seq).
    pub(crate) fn number(&self, count: u64) -> (u64, u64) {
        // Only the publisher task numbers frames; the atomics let others read.
        let seq = self.next_seq.fetch_add(1, Ordering::AcqRel);
        let msg = self.next_msg.fetch_add(count, Ordering::AcqRel);
        (seq, msg)
    }

    /// Gives back the numbers of a frame that was never published.
    pub(crate) fn unnumber(&self, count: u64) {
        self.next_seq.fetch_sub(1, Ordering::AcqRel);
        self.next_msg.fetch_sub(count, Ordering::AcqRel);
    }

    /// The next message sequence number: where the stream stands now.
    pub(crate) fn next_msg(&self) -> u64 {
        self.next_msg.load(Ordering::Acquire)
    }

    /// Drops what the mailbox holds and refuses further sends; counted as `reason`.
    pub(crate) fn close(&self, bus: &Inbound, reason: DropReason) -> u64 {
        let dropped = self.mailbox.close();
        let n = dropped.len() as u64;
        bus.lost_letters(dropped, reason);
        n
    }

    /// After the publisher was stopped: drops what it held, counted as `reason`.
    pub(crate) fn abandon_in_hand(&self, bus: &Inbound, reason: DropReason) -> u64 {
        let n = self.in_hand.swap(0, Ordering::AcqRel);
        bus.lost_before_mailbox(n, reason);
        n
    }
}
