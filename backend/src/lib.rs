//! swarmbus: a batching message bus for swarms of agents.
//!
//! Agents register with a [`Hub`], get a v4 UUID [`AgentId`], and talk: direct
//! ([`Agent::send`]), broadcast, topics, and request/reply with a timeout. A recipient
//! waiting in [`Agent::recv`] gets a message at once; while it is busy, messages wait in a
//! per-destination batch that leaves at 50 messages or 10 ms at the latest, so a busy
//! recipient costs one lock and one wake-up per batch rather than per message. Payloads over
//! 1 KiB are gzip-compressed where that pays: on their way to other hubs, and into backlogs.
//! CPU-heavy work goes to an elastic worker pool ([`Hub::submit`]), started on first use.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> swarmbus::Result<()> {
//! use swarmbus::{Hub, HubConfig, Priority};
//!
//! let hub = Hub::start(HubConfig::default())?;
//! let alice = hub.register("alice")?;
//! let mut bob = hub.register("bob")?;
//!
//! alice.send(bob.id(), "hello").await?;            // bob is busy: it waits in his batch
//! alice.send_with(bob.id(), "now", Priority::Critical).await?; // flushes the batch at once
//! let first = bob.recv().await.unwrap();
//! assert_eq!(&*first.payload().bytes()?, b"now");  // higher priority is served first
//! let second = bob.recv().await.unwrap();
//! assert_eq!(&*second.payload().bytes()?, b"hello");
//!
//! let report = hub.shutdown().await?;
//! assert_eq!(report.undelivered, 0);
//! # Ok(()) }
//! ```
//!
//! See `docs/architecture.md` for the path of a message and the threads it crosses.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::missing_errors_doc)]

mod agent;
// The bus's transport-facing half (`Inbound`, wire replies, forwarding mailboxes) serves
// only the NATS bridge; dead code is checked in the full build (clippy, all features).
#[cfg_attr(not(feature = "nats"), allow(dead_code, unused_imports))]
mod bus;
mod codec;
pub mod config;
mod duration;
mod envelope;
mod error;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod hub;
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
mod id;
pub mod metrics;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
mod payload;
mod pool;
mod priority;
pub mod workers;

pub use agent::{Agent, AgentSender};
pub use config::{BudgetPolicy, HubConfig, OverflowPolicy};
pub use envelope::Envelope;
#[cfg(feature = "nats")]
pub use error::NatsError;
pub use error::{Error, Result};
pub use hub::{Hub, ShutdownReport};
pub use id::{AgentId, MessageId};
pub use metrics::MetricsSnapshot;
pub use payload::Payload;
pub use pool::PoolStats;
pub use pool::{PoolConfig, PoolSizing};
pub use priority::Priority;
