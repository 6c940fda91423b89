//! swarmbus through its public API only: `Hub::start(HubConfig::default())`, one `Agent`
//! per receiving agent and per sending identity, each with a receive task calling `recv()`;
//! the driver sends through `AgentSender`s (`send`, `request`) and responders answer with
//! `reply`. Shut down at the end; a run whose hub reports undelivered messages fails.
//!
//! Two variants share all of it but one part: `Spawned` runs each receiving agent as a
//! supervised handler (`Hub::spawn`) doing what the receive loop does; `Group` puts every
//! receiving agent in one group and sends and requests to the group instead of the peer
//! the driver drew.

use super::{drive, join_all, Counter, Mesh, PeerSpec, Sent, Shared};
use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use futures_util::future::Either;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarmbus::{
    Agent, AgentHandle, AgentId, AgentSender, Context, Envelope, Hub, HubConfig, Restart,
};

/// Which swarmbus: plain agents, spawned ones, or plain ones behind one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Plain,
    Spawned,
    Group,
}

/// The group of the `Group` flavor.
const POOL: &str = "pool";

#[derive(Clone)]
struct SwarmMesh {
    /// Sends go to the group.
    group: bool,
    /// Receiving agents.
    agents: usize,
    /// Receiving agents, then one sending identity per client (see `Mesh`).
    senders: Arc<Vec<AgentSender>>,
    ids: Arc<Vec<AgentId>>,
}

impl Mesh for SwarmMesh {
    fn len(&self) -> usize {
        self.agents
    }

    async fn send(&mut self, from: usize, to: usize, body: Bytes) -> bool {
        let sender = &self.senders[from];
        if self.group {
            sender.send_group(POOL, body).await.is_ok()
        } else {
            sender.send(self.ids[to], body).await.is_ok()
        }
    }

    async fn request(&mut self, from: usize, to: usize, body: Bytes, timeout: Duration) -> bool {
        let len = body.len();
        let sender = &self.senders[from];
        let reply = if self.group {
            sender.request_group(POOL, body, timeout).await
        } else {
            sender.request(self.ids[to], body, timeout).await
        };
        matches!(reply, Ok(reply) if reply.payload().len() == len)
    }
}

/// What a receiving agent does with one message: answers a request with its own payload
/// (the requester counts the round trip), counts anything else.
async fn handle(sender: &AgentSender, env: &Envelope, counter: &mut Counter) {
    if env.is_request() {
        // A reply after shutdown just fails; the requester has its error already.
        let _ = sender.reply(env, env.payload().clone()).await;
        return;
    }
    match env.payload().bytes() {
        Ok(body) => counter.got(&body),
        // Received all the same; only its stamp is unreadable.
        Err(_) => counter.got(&[]),
    }
}

/// The receive loop of a plain agent. Ends when the hub has shut down and the mailbox is
/// drained.
async fn receive_loop(mut agent: Agent, mut counter: Counter) {
    let sender = agent.sender();
    while let Some(env) = agent.recv().await {
        handle(&sender, &env, &mut counter).await;
    }
}

/// A spawned agent doing what [`receive_loop`] does. The handler owns its counter (a
/// spawned handler is `FnMut`, called once at a time, as the receive loop owns its own) and
/// counts before it returns a ready future; only a request's reply is awaited.
fn spawn_receiver(hub: &Hub, name: String, mut counter: Counter) -> Result<AgentHandle> {
    let handle = hub.spawn(
        name,
        move |ctx: Context, env: Envelope| {
            if env.is_request() {
                return Either::Left(async move {
                    // A reply after shutdown just fails; the requester has its error.
                    let _ = ctx.reply(&env, env.payload().clone()).await;
                    Ok::<(), swarmbus::Error>(())
                });
            }
            counter.got(env.payload().bytes().as_deref().unwrap_or(&[]));
            Either::Right(std::future::ready(Ok(())))
        },
        Restart::default(),
    )?;
    Ok(handle)
}

pub(super) async fn run(
    spec: &PeerSpec,
    shared: &Arc<Shared>,
    flavor: Flavor,
) -> Result<(Sent, Duration)> {
    let hub = Hub::start(HubConfig::default()).context("starting the hub")?;
    let total = spec.agents + spec.clients();
    let mut senders = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    let mut receivers = Vec::with_capacity(total);
    for i in 0..total {
        let name = if i < spec.agents {
            format!("agent-{i}")
        } else {
            format!("client-{}", i - spec.agents)
        };
        let receiving = i < spec.agents;
        if receiving && flavor == Flavor::Spawned {
            let spawned = spawn_receiver(&hub, name, Counter::new(shared))?;
            senders.push(spawned.sender());
            ids.push(spawned.id());
            continue;
        }
        let agent = hub.register(name)?;
        senders.push(agent.sender());
        ids.push(agent.id());
        if receiving && flavor == Flavor::Group {
            agent.join_group(POOL)?;
        }
        // Clients receive nothing here; their loop only keeps the mailbox honest.
        receivers.push(tokio::spawn(receive_loop(agent, Counter::new(shared))));
    }
    let mesh = SwarmMesh {
        group: flavor == Flavor::Group,
        agents: spec.agents,
        senders: Arc::new(senders),
        ids: Arc::new(ids),
    };
    let sent = drive(&mesh, spec, shared).await?;
    let drain = Instant::now();
    drop(mesh);
    // Flushes every batch; receivers drain their mailboxes and see `None`.
    let report = hub.shutdown().await.context("shutting the hub down")?;
    join_all(receivers).await?;
    let drain = drain.elapsed();
    if report.undelivered != 0 {
        bail!(
            "the hub reports {} accepted messages that reached no mailbox",
            report.undelivered
        );
    }
    Ok((sent, drain))
}
