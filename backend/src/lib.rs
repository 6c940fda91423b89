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
//! # Handles
//!
//! - [`Hub`] is the running bus, started with [`Hub::start`] inside a tokio runtime. It is
//!   cheap to clone (every clone is the same hub) and registers agents, flushes, reports
//!   [`metrics`](Hub::metrics), runs CPU-heavy work on the pool ([`submit`](Hub::submit)),
//!   and shuts down.
//! - [`Agent`] is one registered agent, returned by [`Hub::register`]. It owns the mailbox:
//!   only it receives ([`recv`](Agent::recv) and [`try_recv`](Agent::try_recv) take
//!   `&mut self`), and it can send. Dropping it deregisters the agent: sends to its id then
//!   fail with [`Error::UnknownAgent`].
//! - [`AgentSender`] is the sending half ([`Agent::sender`]): `Clone + Send + Sync`, for
//!   other tasks. Every clone sends as the same agent, through the same batches.
//!
//! Messages arrive as [`Envelope`]s (sender, id, priority, topic, [`Payload`]). Agents and
//! messages are named by [`AgentId`] and [`MessageId`], v4 UUIDs.
//!
//! # Ordering
//!
//! Messages from one agent to one recipient arrive in the order they were sent, within a
//! [`Priority`], whichever of the agent's handles sent them. Between different senders
//! there is no order. A mailbox serves the highest priority first: a later message of a
//! higher priority overtakes lower ones still queued (also the sender's own), but not the
//! batch the recipient is already working through. A message at or above
//! [`HubConfig::flush_priority`] (default [`Priority::Critical`]) flushes its recipient's
//! open batch at once, so it and everything batched before it leave without waiting out
//! the linger; requests flush their batch too.
//!
//! # Overflow and the queued-bytes budget
//!
//! Two bounds apply to a send to a local agent. Each mailbox holds at most
//! [`HubConfig::mailbox_capacity`] messages (default 65,536), and the
//! [`OverflowPolicy`] says what a send to a full one does: wait for room up to a timeout
//! (`Block`, the default, for 1 s), fail at once (`Reject`), both ending in
//! [`Error::MailboxFull`], or accept and evict the oldest message of the lowest priority
//! (`DropOldest`). All mailboxes together hold at most [`HubConfig::max_queued_bytes`]
//! (default 1 GiB; a message costs its 128-byte envelope plus its share of the payload),
//! and the [`BudgetPolicy`] (`Block`, the default, for 1 s, or `Reject`) ends in
//! [`Error::Overloaded`]. [`try_send`](AgentSender::try_send) never waits. A broadcast or
//! topic message counts the local recipients it could not reach in time as dropped rather
//! than failing. Messages from other hubs never wait: over a bound they are dropped and
//! counted. A send to an agent on another hub goes through the link to that hub, a
//! mailbox of `outage_buffer` messages that is not charged to the budget; when it is full
//! the send fails with [`Error::MailboxFull`] at once.
//!
//! # Request and reply
//!
//! [`request`](AgentSender::request) sends an envelope for which
//! [`is_request`](Envelope::is_request) is true, with its batch flushed at once, and waits
//! for the answer at most its timeout ([`Error::RequestTimeout`]). The recipient answers
//! with [`reply`](AgentSender::reply), which first flushes what is batched for the
//! requester; the reply goes straight to the waiting requester, never through a mailbox.
//! A reply nobody waits for any more is counted (`reply_orphaned`). The [`Hub`] example
//! shows the round trip.
//!
//! # Shutdown
//!
//! [`Hub::shutdown`] refuses new sends and registrations ([`Error::ShuttingDown`], also
//! for senders blocked on a full mailbox), flushes every open batch, drains the links to
//! other hubs, lets the worker pool finish its queued units (within
//! `workers.shutdown_timeout`), ends the requests still waiting with
//! [`Error::ShuttingDown`], and seals the mailboxes: each agent's
//! [`recv`](Agent::recv) still returns what is queued, then `None`. It returns a
//! [`ShutdownReport`] that accounts for every accepted message (`undelivered` is 0 unless
//! there is a bug); calling it again returns the same report.
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! |---|---|
//! | `nats` | hubs on several hosts that meet over a NATS server: `HubConfig::nats`, `Hub::connect`, the `nats` module, `Error::Nats` |
//! | `http` | an HTTP server with `/metrics` (Prometheus), `/api/stats`, a dashboard and `/healthz`: `HubConfig::metrics_addr`, `auth_token` and `http`, `Hub::local_addr`, the `http` module |
//! | `cli` | the `swarmbus` binary (a hub, a demo swarm); turns on `http` and `nats` |
//!
//! The default is `cli`, so everything is built. An embedder that wants only the
//! in-process bus writes `swarmbus = { version = "0.1", default-features = false }` and
//! adds the features it uses; without any, the crate has the bus, the worker pool
//! ([`workers`]) and the metrics snapshot ([`MetricsSnapshot`]).
//!
//! See `docs/architecture.md` for the path of a message and the threads it crosses.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::missing_errors_doc)]

/// The examples of `docs/conversations.md` run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/conversations.md")]
struct ConversationsGuide;

mod agent;
// The bus's transport-facing half (`Inbound`, wire replies, forwarding mailboxes) serves
// only the NATS bridge; dead code is checked in the full build (clippy, all features).
#[cfg_attr(not(feature = "nats"), allow(dead_code, unused_imports))]
mod bus;
mod call;
mod codec;
pub mod config;
mod dead_letter;
mod duration;
mod envelope;
mod error;
mod headers;
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
mod receipt;
mod stream;
mod supervisor;
mod trace;
pub mod workers;

pub use agent::{Agent, AgentSender};
pub use config::{BudgetPolicy, HubConfig, OverflowPolicy};
pub use dead_letter::{DeadLetter, Replayed};
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
pub use stream::{ReplyStream, Responder};
pub use supervisor::{AgentHandle, Context, Restart};
