//! Compile-time checks of the auto traits of every public type: a change that makes a
//! type lose `Send`, `Sync` or `Unpin` (a `Cell`, an `Rc`, a `PhantomPinned`, a raw
//! guard held across an `.await`) fails to build this file.
//!
//! The list follows `lib.rs` and each `pub mod` (`cargo doc -p swarmbus --no-deps`).
//! Every type listed is `Send + Sync + Unpin` today, except where a comment says why not.

use std::time::Duration;
use swarmbus::{
    Agent, AgentId, AgentSender, BudgetPolicy, Envelope, Error, Hub, HubConfig, MessageId,
    MetricsSnapshot, OverflowPolicy, Payload, PoolConfig, PoolSizing, PoolStats, Priority,
    ShutdownReport,
};

fn send<T: Send + ?Sized>() {}
fn sync<T: Sync + ?Sized>() {}
fn unpin<T: Unpin + ?Sized>() {}

/// Send + Sync + Unpin for each type named.
macro_rules! all_three {
    ($($t:ty),+ $(,)?) => {
        $( send::<$t>(); sync::<$t>(); unpin::<$t>(); )+
    };
}

#[test]
fn root_types() {
    all_three!(
        Agent,
        AgentSender,
        AgentId,
        MessageId,
        Envelope,
        Payload,
        Priority,
        Error,
        Hub,
        HubConfig,
        OverflowPolicy,
        BudgetPolicy,
        PoolConfig,
        PoolSizing,
        PoolStats,
        MetricsSnapshot,
        ShutdownReport,
        swarmbus::Result<()>,
    );
}

/// The conversation handles: `Send + Unpin` as the contract says (and `Sync`: nothing in
/// them is shared mutably without a lock).
#[test]
fn conversation_types() {
    all_three!(swarmbus::ReplyStream, swarmbus::Responder);
}

#[test]
fn config_types() {
    use swarmbus::config;
    all_three!(
        config::HubConfig,
        config::OverflowPolicy,
        config::BudgetPolicy,
        config::PoolConfig,
        config::PoolSizing,
    );
}

#[cfg(feature = "http")]
#[test]
fn http_types() {
    use swarmbus::http;
    all_three!(http::HttpLimits, http::HttpStats);
}

#[test]
fn metrics_types() {
    use swarmbus::metrics;
    all_three!(
        metrics::MetricsSnapshot,
        metrics::MailboxDepth,
        metrics::HistogramSnapshot,
    );
}

#[cfg(feature = "nats")]
#[test]
fn nats_types() {
    use swarmbus::nats;
    all_three!(nats::NatsConfig, nats::NatsStats);
}

#[test]
fn workers_types() {
    use swarmbus::workers::{self, LoadSampler};
    all_three!(
        workers::WorkerPool,
        workers::WorkerShutdown,
        workers::WorkerConfig,
        workers::Decision,
        workers::ResizeReason,
        workers::LoadSample,
        workers::SysinfoSampler,
        workers::ByPriority<u64>,
        workers::LoadPoint,
        workers::ResizeCounts,
        workers::WorkerStats,
    );
    // `LoadSampler: Send + 'static` is the trait's own bound (a sampler moves to the
    // controller thread). It does not require Sync: the controller owns its sampler alone,
    // so a trait object is Send and Unpin, not Sync.
    send::<dyn LoadSampler>();
    unpin::<Box<dyn LoadSampler>>();
}

fn send_value<T: Send>(_: &T) {}

/// The futures of the async API must be Send, so that they can run on a multi-thread
/// runtime (`tokio::spawn`). Creating a future runs nothing until it is polled; this
/// test creates and drops them without awaiting them.
#[tokio::test]
async fn api_futures_are_send() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let mut agent = hub.register("a").unwrap();
    let tx: AgentSender = agent.sender();
    let to = agent.id();
    let env_source = hub.register("b").unwrap();
    env_source.send(to, "x").await.unwrap();
    let env = agent.recv().await.unwrap();

    send_value(&tx.send(to, "x"));
    send_value(&tx.send_with(to, "x", Priority::High));
    send_value(&tx.request(to, "x", Duration::from_millis(1)));
    send_value(&tx.broadcast("x"));
    send_value(&tx.publish("t", "x"));
    send_value(&tx.reply(&env, "x"));
    send_value(&agent.send(to, "x"));
    send_value(&agent.request(to, "x", Duration::from_millis(1)));
    send_value(&agent.broadcast("x"));
    send_value(&agent.recv());
    send_value(&agent.request_stream(to, "x", Duration::from_millis(1)));
    send_value(&env.cancelled());
    send_value(&hub.submit(Priority::Normal, || 1));
    send_value(&hub.submit_batch(Priority::Normal, vec![|| 1]));
    #[cfg(feature = "nats")]
    send_value(&Hub::connect(HubConfig::default()));
    send_value(&hub.shutdown());

    // The futures above were never polled: the hub is still open and shuts down clean.
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
}
