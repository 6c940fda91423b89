//! The library's error type.

use crate::{AgentId, MessageId};
use std::time::Duration;

/// Everything that can go wrong in swarmbus. Nothing in the library panics on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No agent with this id is registered with the hub (or it has left).
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// The recipient's mailbox is full and the overflow policy refused the message.
    #[error("mailbox of agent {0} is full")]
    MailboxFull(AgentId),
    /// No reply arrived in time.
    #[error("request {id} timed out after {after:?}")]
    RequestTimeout {
        /// The request's message id.
        id: MessageId,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The hub's queued messages reached `HubConfig::max_queued_bytes` and the budget policy
    /// refused (or stopped waiting for) this one.
    #[error("hub is over its budget of {max_queued_bytes} queued bytes")]
    Overloaded {
        /// The configured budget.
        max_queued_bytes: u64,
    },
    /// The hub is shutting down or has shut down; nothing new is accepted.
    #[error("hub is shutting down")]
    ShuttingDown,
    /// The payload is larger than `HubConfig::max_payload`.
    #[error("payload of {size} bytes exceeds the maximum of {max} bytes")]
    PayloadTooLarge {
        /// The payload's size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Compressed data is corrupt, truncated, or does not match its declared size.
    #[error("corrupt compressed payload: {0}")]
    CorruptPayload(&'static str),
    /// `reply` was called with an envelope that is not a request.
    #[error("message {0} is not a request")]
    NotARequest(MessageId),
    /// A topic name is empty or too long.
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    /// A unit of work submitted to the worker pool panicked.
    #[error("task panicked: {0}")]
    TaskPanicked(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Called outside a tokio runtime.
    #[error("swarmbus must be started inside a tokio runtime")]
    NoRuntime,
    /// An I/O error (configuration files, sockets).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `Result<T, swarmbus::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
