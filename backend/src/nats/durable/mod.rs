//! Durable delivery between hubs on NATS JetStream (`NatsConfig::durable`).
//!
//! - Frames addressed to a hub are published into the swarm's stream (`SWARMBUS_<swarm>`,
//!   subjects `swarmbus.<swarm>.node.*`, interest retention: a frame stays until the hub
//!   it is for has acknowledged it), each with a `Nats-Msg-Id` unique to the frame, so a
//!   publish retried after a lost confirmation is stored once (`publish.rs`).
//! - Each hub reads its subject through a durable pull consumer named after the hub
//!   (`consume.rs`). A frame is acknowledged once every message in it has been taken by its
//!   agent (`Agent::recv`) or has become a dead letter (`ack.rs`); one with a message that
//!   cannot be taken yet (its agent has not registered again after a restart, a full
//!   mailbox) is delivered again after `retry_delay`; one not acknowledged in `ack_wait`
//!   (a paused or dead hub) is delivered again by the server. After `max_deliver`
//!   deliveries, what is still undeliverable becomes a dead letter.
//! - The receiving hub remembers the frames it was given (`window.rs`), so what is delivered twice
//!   reaches an agent once (`messages_deduplicated`).
//! - Dead letters of a durable hub are also published to the swarm's dead-letter stream
//!   (`SWARMBUS_<swarm>_DLQ`, subjects `swarmbus.<swarm>.dlq.<hub>`).
//!
//! - The swarm's directory is also kept in JetStream key-value (`SWARMBUS_<swarm>_DIR`,
//!   `directory.rs`), so a hub that starts or restarts knows the other hubs' agents at once.
//!
//! Broadcasts, topic messages and the directory's announcements stay on core NATS (at
//! most once).

mod ack;
mod config;
mod consume;
mod context;
mod counters;
mod dead_letters;
mod directory;
pub(crate) mod publish;
mod roster;
mod tasks;
mod window;

pub use config::{DurableConfig, MAX_DEDUP_WINDOW};
pub(crate) use context::Durable;
pub(crate) use directory::load as load_directory;
pub(crate) use tasks::start;
