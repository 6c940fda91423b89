//! kameo: one actor per agent with a bounded (1024) mailbox; `tell` one way, `ask` for requests.

use super::{drive, Counter, Mesh, PeerSpec, Sent, Shared, BOUNDED_CAPACITY};
use anyhow::{Context as _, Result};
use bytes::Bytes;
use kameo::actor::{ActorRef, Spawn};
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::{Actor, Reply};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Actor)]
struct Agent {
    counter: Counter,
}

struct Data(Bytes);
struct Request(Bytes);
/// The reply to a [`Request`] (kameo replies must implement `Reply`).
#[derive(Reply)]
struct Echo(Bytes);
/// Answered after everything queued before it: the drain.
struct Flush;

impl Message<Data> for Agent {
    type Reply = ();
    async fn handle(&mut self, msg: Data, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        self.counter.got(&msg.0);
    }
}

impl Message<Request> for Agent {
    type Reply = Echo;
    async fn handle(&mut self, msg: Request, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        Echo(msg.0)
    }
}

impl Message<Flush> for Agent {
    type Reply = ();
    async fn handle(&mut self, _: Flush, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        self.counter.flush();
    }
}

#[derive(Clone)]
struct KameoMesh(Arc<Vec<ActorRef<Agent>>>);

impl Mesh for KameoMesh {
    fn len(&self) -> usize {
        self.0.len()
    }

    async fn send(&mut self, _from: usize, to: usize, body: Bytes) -> bool {
        // Waits while the mailbox is full.
        self.0[to].tell(Data(body)).await.is_ok()
    }

    async fn request(&mut self, _from: usize, to: usize, body: Bytes, timeout: Duration) -> bool {
        let len = body.len();
        matches!(
            tokio::time::timeout(timeout, self.0[to].ask(Request(body))).await,
            Ok(Ok(Echo(reply))) if reply.len() == len
        )
    }
}

pub(super) async fn run(spec: &PeerSpec, shared: &Arc<Shared>) -> Result<(Sent, Duration)> {
    let actors: Vec<ActorRef<Agent>> = (0..spec.agents)
        .map(|_| {
            Agent::spawn_with_mailbox(
                Agent {
                    counter: Counter::new(shared),
                },
                mailbox::bounded(BOUNDED_CAPACITY),
            )
        })
        .collect();
    let mesh = KameoMesh(Arc::new(actors));
    let sent = drive(&mesh, spec, shared).await?;
    let drain = Instant::now();
    // Mailboxes are FIFO: once every actor has answered Flush, it has handled all before it.
    let mut flushes = tokio::task::JoinSet::new();
    for actor in mesh.0.iter() {
        let actor = actor.clone();
        flushes.spawn(async move { actor.ask(Flush).await.is_ok() });
    }
    let flushed = tokio::time::timeout(Duration::from_secs(60), flushes.join_all())
        .await
        .context("kameo actors did not drain within 60 s")?;
    let drain = drain.elapsed();
    if flushed.iter().any(|ok| !ok) {
        anyhow::bail!("a kameo actor did not answer the drain");
    }
    for actor in mesh.0.iter() {
        actor.kill();
    }
    for actor in mesh.0.iter() {
        actor.wait_for_shutdown().await;
    }
    Ok((sent, drain))
}
