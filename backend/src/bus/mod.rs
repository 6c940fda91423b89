//! The bus: everything on the path from `send` to `recv`, in one wing that depends on no
//! higher layer. A message crosses, in order:
//!
//! 1. `send.rs` (or `fan_out.rs`): routes it (`state.rs`, the `registry.rs` of local agents
//!    or a [`Transport`] link) and admits it into a mailbox;
//! 2. `mailbox.rs`: the recipient's open batch (`batch.rs`), handed over at once to a
//!    waiting recipient, else queued when a bound is reached (`linger.rs` for the time
//!    bound), charged against the hub's budget (`budget.rs`);
//! 3. the recipient's `next_batch`, which `Agent::recv` hands out one message at a time.
//!
//! Replies skip the mailbox (`reply.rs`, `requests.rs`); messages from other hubs come in
//! through [`Inbound`] (`inbound.rs`). `sync.rs` lets loom check the mailbox.

mod batch;
mod budget;
mod calls;
mod dead_letters;
mod deepest;
mod fan_out;
mod groups;
mod inbound;
mod linger;
mod mailbox;
mod pick;
mod pools;
mod registry;
mod reply;
mod requests;
mod send;
mod state;
mod sync;
mod transport;

#[cfg(all(test, swarmbus_loom))]
mod loom_tests;

pub(crate) use fan_out::Audience;
pub(crate) use groups::{GroupKind, MemberLoad};
pub(crate) use inbound::Inbound;
pub(crate) use mailbox::Mailbox;
pub(crate) use pick::InFlight;
pub(crate) use registry::{validate_topic, AgentSlot, MAX_TOPIC_LEN};
pub(crate) use reply::{failure, WireReply, RESPONDER_GONE};
pub(crate) use requests::{Abandoned, ChunkTo};
pub(crate) use send::deadline_after;
pub(crate) use send::Wait;
pub(crate) use state::Bus;
pub(crate) use transport::{RemoteLoad, RemotePick, Transport};
