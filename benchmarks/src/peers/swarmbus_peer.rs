//! swarmbus through its public API only: `Hub::start(HubConfig::default())`, one `Agent`
//! per receiving agent and per sending identity, each with a receive task calling `recv()`;
//! the driver sends through `AgentSender`s (`send`, `request`) and responders answer with
//! `reply`. Shut down at the end; a run whose hub reports undelivered messages fails.

use super::{drive, join_all, Counter, Mesh, PeerSpec, Sent, Shared};
use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarmbus::{Agent, AgentId, AgentSender, Hub, HubConfig};

#[derive(Clone)]
struct SwarmMesh {
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
        self.senders[from].send(self.ids[to], body).await.is_ok()
    }

    async fn request(&mut self, from: usize, to: usize, body: Bytes, timeout: Duration) -> bool {
        let len = body.len();
        matches!(
            self.senders[from].request(self.ids[to], body, timeout).await,
            Ok(reply) if reply.payload().len() == len
        )
    }
}

/// Counts data messages; answers requests with their own payload (the requester counts
/// the round trip). Ends when the hub has shut down and the mailbox is drained.
async fn receive_loop(mut agent: Agent, mut counter: Counter) {
    while let Some(env) = agent.recv().await {
        if env.is_request() {
            // A reply after shutdown just fails; the requester has its error already.
            let _ = agent.reply(&env, env.payload().clone()).await;
            continue;
        }
        match env.payload().bytes() {
            Ok(body) => counter.got(&body),
            // Received all the same; only its stamp is unreadable.
            Err(_) => counter.got(&[]),
        }
    }
}

pub(super) async fn run(spec: &PeerSpec, shared: &Arc<Shared>) -> Result<(Sent, Duration)> {
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
        let agent = hub.register(name)?;
        senders.push(agent.sender());
        ids.push(agent.id());
        // Clients receive nothing here; their loop only keeps the mailbox honest.
        receivers.push(tokio::spawn(receive_loop(agent, Counter::new(shared))));
    }
    let mesh = SwarmMesh {
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
