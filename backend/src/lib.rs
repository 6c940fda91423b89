//! swarmbus: a batching message bus for swarms of agents.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod config;
mod error;
mod id;
pub mod metrics;
mod priority;
pub mod workers;

pub use config::{HubConfig, OverflowPolicy, PoolConfig, PoolSizing};
pub use error::{Error, Result};
pub use id::{AgentId, MessageId};
pub use priority::Priority;
