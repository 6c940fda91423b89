//! The counters of durable delivery, shared by its tasks (their snapshot is
//! `nats::DurableStats`).

use std::sync::atomic::AtomicU64;

/// Counters of durable delivery.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Frames acknowledged to the server (done).
    pub(crate) acks: AtomicU64,
    /// Frames handed back to be delivered again (`retry_delay`).
    pub(crate) naks: AtomicU64,
    /// Frames reported in progress (their messages wait in mailboxes past `ack_wait / 2`).
    pub(crate) progress: AtomicU64,
    /// Frames that arrived on a second or later delivery.
    pub(crate) redelivered: AtomicU64,
    /// Messages dropped because this hub had them already.
    pub(crate) deduplicated: AtomicU64,
    /// Publishes the server did not confirm (each retried).
    pub(crate) publish_retries: AtomicU64,
    /// Frames a publish confirmation called a duplicate (stored once).
    pub(crate) publish_duplicates: AtomicU64,
    /// Any JetStream call that failed: publishes, acknowledgements, fetches.
    pub(crate) errors: AtomicU64,
    /// Frames refused for good (forged, corrupt): terminated, never delivered again.
    pub(crate) terminated: AtomicU64,
    /// Messages delivered to this hub and not yet acknowledged, at the last sample.
    pub(crate) lag: AtomicU64,
    /// Dead letters published to the dead-letter stream.
    pub(crate) dead_letters_published: AtomicU64,
    /// Entries written to the directory bucket.
    pub(crate) directory_writes: AtomicU64,
    /// Remote agents learned from the directory bucket at start.
    pub(crate) directory_loaded: AtomicU64,
    /// Directory entries refused when read: unsigned, a bad tag, not parsable, a bad name.
    pub(crate) directory_refused: AtomicU64,
}
