//! The library's error type.

use crate::{AgentId, MessageId};
use std::time::Duration;

/// Everything that can go wrong in swarmbus. Nothing in the library panics on bad input.
///
/// Each fallible method says which variants it returns, and when, under `# Errors`. Some
/// are transient and worth a retry ([`MailboxFull`](Self::MailboxFull),
/// [`Overloaded`](Self::Overloaded), [`RequestTimeout`](Self::RequestTimeout)); others
/// will not change by retrying ([`UnknownAgent`](Self::UnknownAgent),
/// [`ShuttingDown`](Self::ShuttingDown), [`PayloadTooLarge`](Self::PayloadTooLarge)). The
/// enum is `#[non_exhaustive]`: a `match` needs a catch-all arm.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use std::time::Duration;
/// use swarmbus::{AgentId, AgentSender, Error, Hub, HubConfig, OverflowPolicy};
///
/// /// Sends `text`, retrying while the recipient is behind; `Ok(false)` if it is gone.
/// async fn deliver(
///     from: &AgentSender,
///     to: AgentId,
///     text: &'static str,
/// ) -> swarmbus::Result<bool> {
///     let mut retries = 0;
///     loop {
///         match from.try_send(to, text) {
///             Ok(_) => return Ok(true),
///             // Transient: back off, retry, but not forever.
///             Err(Error::MailboxFull(_) | Error::Overloaded { .. }) if retries < 1_000 => {
///                 retries += 1;
///                 tokio::time::sleep(Duration::from_millis(1)).await;
///             }
///             // The recipient left (or never was): retrying cannot help.
///             Err(Error::UnknownAgent(_)) => return Ok(false),
///             // The rest (shutting down, payload too large, ...) goes to the caller.
///             Err(e) => return Err(e),
///         }
///     }
/// }
///
/// let mut config = HubConfig::default();
/// config.mailbox_capacity = 1;
/// config.overflow = OverflowPolicy::Reject;
/// let hub = Hub::start(config)?;
/// let alice = hub.register("alice")?;
/// let tx = alice.sender();
/// let mut bob = hub.register("bob")?;
/// let to = bob.id();
/// let reader = tokio::spawn(async move {
///     for _ in 0..3 {
///         bob.recv().await.unwrap();
///     }
///     // `bob` is dropped here: he leaves the hub.
/// });
/// for text in ["a", "b", "c"] {
///     assert!(deliver(&tx, to, text).await?); // a full mailbox only delays these
/// }
/// reader.await.unwrap();
/// assert!(!deliver(&tx, to, "d").await?); // bob has left
/// hub.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No agent with this id is registered with the hub (or it has left).
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// `Hub::register_with_id` with an id that is registered on this hub already.
    #[error("agent {0} is registered already")]
    AgentExists(AgentId),
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
    /// A group or capability name breaks the rules of topic names.
    #[error("invalid {what} name: {name}")]
    InvalidName {
        /// `"group"` or `"capability"`.
        what: &'static str,
        /// The name (its first 64 characters).
        name: String,
    },
    /// A send to a group that has no member.
    #[error("group {0} has no member")]
    UnknownGroup(String),
    /// A request by capability that no agent has.
    #[error("no agent has capability {0}")]
    NoCapableAgent(String),
    /// A unit of work submitted to the worker pool panicked.
    #[error("task panicked: {0}")]
    TaskPanicked(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Called outside a tokio runtime.
    #[error("swarmbus must be started inside a tokio runtime")]
    NoRuntime,
    /// The request was cancelled: its caller cancelled or dropped its stream (or its
    /// request future). `Responder::send` returns it so the callee stops.
    #[error("request was cancelled by its caller")]
    Cancelled,
    /// The request's deadline passed: `Responder::send` returns it so the callee stops.
    #[error("request deadline exceeded")]
    DeadlineExceeded,
    /// A streamed reply ended without its final chunk: the responder failed
    /// (`Responder::fail`, with its reason) or went away unfinished.
    #[error("reply stream failed: {0}")]
    StreamFailed(String),
    /// A value given to `send_json` or `request_json` does not serialize as JSON.
    #[error("value does not serialize as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// A payload is not the JSON `Envelope::json` was asked to decode.
    #[error("payload does not decode as the expected JSON: {0}")]
    Decode(#[source] serde_json::Error),
    /// An I/O error (configuration files, sockets, worker threads).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A NATS operation failed: connecting, subscribing, reading a credentials file.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// Durable delivery cannot start on this JetStream stream: it is missing (and
    /// `DurableConfig::create` is off), misconfigured (its subjects do not cover the
    /// swarm's, another consumer reads this hub's subject), full, or JetStream is not
    /// enabled on the server. Never a silent fallback to at-most-once delivery.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    #[error("JetStream stream `{stream}`: {problem}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The CPU sampler behind the elastic worker pool could not read the system's or the
    /// process's CPU times; the source is the sampler's own error.
    #[error("CPU sampling is unavailable")]
    CpuSampler(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A failed NATS operation, as the source of [`Error::Nats`]. Its text names the
/// operation and carries the client's message with any credentials in URLs blanked out;
/// the client's own error is kept ([`get_ref`](Self::get_ref)), and its sources follow in
/// [`source`](std::error::Error::source).
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub struct NatsError {
    operation: String,
    message: String,
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

#[cfg(feature = "nats")]
impl NatsError {
    /// `operation` and `message` must already be free of credentials.
    pub(crate) fn new(
        operation: String,
        message: String,
        inner: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        NatsError {
            operation,
            message,
            inner: Box::new(inner),
        }
    }

    /// What was being done, e.g. `NATS connect to nats://127.0.0.1:4222`.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The NATS client's own error (`async_nats::ConnectError`, `SubscribeError`, an
    /// `io::Error` for a credentials file), for `downcast_ref`. Its text is the client's,
    /// unredacted: it may name a URL with its password.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }
}

#[cfg(feature = "nats")]
impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

#[cfg(feature = "nats")]
impl std::fmt::Debug for NatsError {
    /// The redacted text only: `Debug` of the client's error could print credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsError")
            .field("operation", &self.operation)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "nats")]
impl std::error::Error for NatsError {
    /// The client error's own source (an `io::Error`, say): the client error itself is
    /// this error's redacted text.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// `Result<T, swarmbus::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
