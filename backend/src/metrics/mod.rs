//! What the runtime counts, and the snapshot it hands out.
//!
//! Counters live here in one place, labelled by small closed enums, so the names in
//! `/metrics`, `/api/stats` and the code cannot drift apart. Hot paths add to them once per
//! batch, not once per message.

mod counter;
pub(crate) mod histogram;
mod snapshot;

pub(crate) use counter::stripe;
pub(crate) use counter::Counter;
pub(crate) use histogram::Histogram;
pub use histogram::HistogramSnapshot;
pub use snapshot::{
    GroupMember, GroupStats, MailboxDepth, MetricsSnapshot, RestartedAgent, SupervisionStats,
};

macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in label order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value used in metrics.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }
    };
}

label_enum!(
    /// Why a batch left its sender.
    FlushReason {
        /// It reached `max_messages`.
        Size => "size",
        /// Its oldest message waited `linger`.
        Linger => "linger",
        /// A message at or above `flush_priority` joined it.
        Priority => "priority",
        /// `hub.flush()`, a request or a reply.
        Explicit => "explicit",
        /// The hub shut down.
        Shutdown => "shutdown",
        /// Its recipient was waiting for messages and took it as soon as it had one.
        Waiting => "waiting",
    }
);

label_enum!(
    /// Why an accepted message was dropped.
    DropReason {
        /// Evicted from a full mailbox under `OverflowPolicy::DropOldest`.
        DropOldest => "drop_oldest",
        /// A fan-out recipient's mailbox was full under `Reject` (or `Block` timed out).
        MailboxFull => "mailbox_full",
        /// The recipient left before the message reached its mailbox, or left it unread.
        RecipientGone => "recipient_gone",
        /// A reply whose requester had stopped waiting.
        ReplyOrphaned => "reply_orphaned",
        /// Arrived from a remote hub while this hub was shutting down.
        HubClosed => "hub_closed",
        /// A payload too large for one NATS frame.
        FrameTooLarge => "frame_too_large",
        /// The NATS client refused a publish.
        PublishFailed => "publish_failed",
        /// Missing from a remote hub's frame sequence: lost between the hubs (a broken
        /// connection, a subscription overflow), counted by the receiving hub.
        LostInTransit => "lost_in_transit",
        /// Buffered for a remote hub that is gone (a new epoch, or not back within
        /// `departed_retention`).
        HubGone => "hub_gone",
        /// Still waiting for a remote hub when shutdown gave up on publishing.
        Unsent => "unsent",
        /// Arrived from a remote hub while the hub's queued messages were at
        /// `max_queued_bytes`, or a fan-out recipient still over budget when the
        /// budget policy gave up.
        MemoryBudget => "memory_budget",
        /// Arrived from a remote hub with a payload over `max_payload` (declared or stored).
        PayloadTooLarge => "payload_too_large",
        /// A chunk of a streamed reply, or a cancel, for a request that no longer waits
        /// on this hub (or never did): never handed to anyone else.
        StreamGone => "stream_gone",
        /// A chunk from a remote hub for a stream whose reader fell a whole channel
        /// (`mailbox_capacity` chunks) behind: the stream ends with an error.
        StreamOverflow => "stream_overflow",
        /// A request whose deadline passed before its callee took it: not handed over.
        DeadlineExpired => "deadline_expired",
        /// A spawned agent's handler failed on it (returned an error or panicked).
        HandlerFailed => "handler_failed",
    }
);

label_enum!(
    /// Why a call failed (the caller got an `Error`).
    SendError {
        /// No such agent.
        UnknownAgent => "unknown_agent",
        /// Mailbox full under the overflow policy.
        MailboxFull => "mailbox_full",
        /// The hub is shutting down.
        ShuttingDown => "shutting_down",
        /// Payload over `max_payload`.
        PayloadTooLarge => "payload_too_large",
        /// Invalid topic name.
        InvalidTopic => "invalid_topic",
        /// A request got no reply in time.
        RequestTimeout => "request_timeout",
        /// A payload failed to decompress.
        CorruptPayload => "corrupt_payload",
        /// The hub's queued-bytes budget refused the message.
        Overloaded => "overloaded",
        /// A group without members, or a capability no agent has.
        UnknownGroup => "unknown_group",
        /// An invalid group or capability name.
        InvalidName => "invalid_name",
    }
);

/// A counter per label value.
#[derive(Debug)]
pub(crate) struct LabeledCounter<const N: usize>([Counter; N]);

impl<const N: usize> Default for LabeledCounter<N> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Counter::default()))
    }
}

impl<const N: usize> LabeledCounter<N> {
    pub(crate) fn add(&self, index: usize, n: u64) {
        self.0[index].add(n);
    }

    pub(crate) fn get(&self, index: usize) -> u64 {
        self.0[index].get()
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

/// The core's counters. One per hub.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) sent: Counter,
    pub(crate) delivered: Counter,
    /// Messages handed to the NATS client for remote hubs.
    pub(crate) forwarded: Counter,
    pub(crate) received: Counter,
    pub(crate) dropped: LabeledCounter<{ DropReason::ALL.len() }>,
    pub(crate) errors: LabeledCounter<{ SendError::ALL.len() }>,
    pub(crate) flushes: LabeledCounter<{ FlushReason::ALL.len() }>,
    pub(crate) batch_size: Histogram,
    pub(crate) latency: Histogram,
    pub(crate) bytes_raw: Counter,
    pub(crate) bytes_wire: Counter,
    pub(crate) compressed: Counter,
    pub(crate) incompressible: Counter,
    pub(crate) requests: Counter,
    pub(crate) replies: Counter,
    /// Chunks of streamed replies handed to their streams (final chunks are replies).
    pub(crate) chunks: Counter,
    /// Accepted messages dropped before reaching a mailbox (for the shutdown accounting).
    pub(crate) lost_before_mailbox: Counter,
    /// Delivered messages dropped from a mailbox unread (evicted, or their agent left), so
    /// the depth of every mailbox together is `delivered - received - queue_dropped`,
    /// without visiting any mailbox.
    pub(crate) queue_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sent: Counter::default(),
            delivered: Counter::default(),
            forwarded: Counter::default(),
            received: Counter::default(),
            dropped: LabeledCounter::default(),
            errors: LabeledCounter::default(),
            flushes: LabeledCounter::default(),
            batch_size: Histogram::new(histogram::COUNTS),
            latency: Histogram::new(histogram::SECONDS),
            bytes_raw: Counter::default(),
            bytes_wire: Counter::default(),
            compressed: Counter::default(),
            incompressible: Counter::default(),
            requests: Counter::default(),
            replies: Counter::default(),
            chunks: Counter::default(),
            lost_before_mailbox: Counter::default(),
            queue_dropped: Counter::default(),
        }
    }
}

impl Metrics {
    pub(crate) fn drop_n(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped.add(reason as usize, n);
        }
    }

    pub(crate) fn error(&self, kind: SendError) {
        self.errors.add(kind as usize, 1);
    }

    /// Counts a call's error and passes it on.
    pub(crate) fn fail<T>(&self, err: crate::Error) -> crate::Result<T> {
        use crate::Error as E;
        let kind = match &err {
            E::UnknownAgent(_) => Some(SendError::UnknownAgent),
            E::MailboxFull(_) => Some(SendError::MailboxFull),
            E::ShuttingDown => Some(SendError::ShuttingDown),
            E::PayloadTooLarge { .. } => Some(SendError::PayloadTooLarge),
            E::InvalidTopic(_) => Some(SendError::InvalidTopic),
            E::RequestTimeout { .. } => Some(SendError::RequestTimeout),
            E::CorruptPayload(_) => Some(SendError::CorruptPayload),
            E::Overloaded { .. } => Some(SendError::Overloaded),
            E::UnknownGroup(_) | E::NoCapableAgent(_) => Some(SendError::UnknownGroup),
            E::InvalidName { .. } => Some(SendError::InvalidName),
            _ => None,
        };
        if let Some(kind) = kind {
            self.error(kind);
        }
        Err(err)
    }
}
