//! ractor: one actor per agent (ractor mailboxes are unbounded); `cast` one way, `call` for
//! requests.

use super::{drive, Counter, Mesh, PeerSpec, Sent, Shared};
use anyhow::{Context as _, Result};
use bytes::Bytes;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::{Duration, Instant};

enum Msg {
    Data(Bytes),
    Request(Bytes, RpcReplyPort<Bytes>),
    /// Answered after everything queued before it: the drain.
    Flush(RpcReplyPort<()>),
}

struct Agent;

impl Actor for Agent {
    type Msg = Msg;
    type State = Counter;
    type Arguments = Counter;

    async fn pre_start(
        &self,
        _: ActorRef<Msg>,
        counter: Counter,
    ) -> Result<Counter, ActorProcessingErr> {
        Ok(counter)
    }

    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        counter: &mut Counter,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Data(body) => counter.got(&body),
            Msg::Request(body, reply) => {
                let _ = reply.send(body);
            }
            Msg::Flush(reply) => {
                counter.flush();
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
struct RactorMesh(Arc<Vec<ActorRef<Msg>>>);

impl Mesh for RactorMesh {
    fn len(&self) -> usize {
        self.0.len()
    }

    async fn send(&mut self, _from: usize, to: usize, body: Bytes) -> bool {
        let ok = self.0[to].cast(Msg::Data(body)).is_ok();
        // `cast` never waits, so it never yields; see the flume peer.
        tokio::task::consume_budget().await;
        ok
    }

    async fn request(&mut self, _from: usize, to: usize, body: Bytes, timeout: Duration) -> bool {
        let len = body.len();
        matches!(
            self.0[to]
                .call(|port| Msg::Request(body, port), Some(timeout))
                .await,
            Ok(CallResult::Success(reply)) if reply.len() == len
        )
    }
}

pub(super) async fn run(spec: &PeerSpec, shared: &Arc<Shared>) -> Result<(Sent, Duration)> {
    let mut actors = Vec::with_capacity(spec.agents);
    let mut handles = Vec::with_capacity(spec.agents);
    for _ in 0..spec.agents {
        let (actor, handle) = Actor::spawn(None, Agent, Counter::new(shared))
            .await
            .map_err(|e| anyhow::anyhow!("spawning a ractor actor: {e}"))?;
        actors.push(actor);
        handles.push(handle);
    }
    let mesh = RactorMesh(Arc::new(actors));
    let sent = drive(&mesh, spec, shared).await?;
    let drain = Instant::now();
    // Mailboxes are FIFO: once every actor has answered Flush, it has handled all before it.
    let mut flushes = tokio::task::JoinSet::new();
    for actor in mesh.0.iter() {
        let actor = actor.clone();
        flushes.spawn(async move {
            matches!(
                actor.call(Msg::Flush, None).await,
                Ok(CallResult::Success(()))
            )
        });
    }
    let flushed = tokio::time::timeout(Duration::from_secs(60), flushes.join_all())
        .await
        .context("ractor actors did not drain within 60 s")?;
    let drain = drain.elapsed();
    if flushed.iter().any(|ok| !ok) {
        anyhow::bail!("a ractor actor did not answer the drain");
    }
    for actor in mesh.0.iter() {
        actor.stop(None);
    }
    for handle in handles {
        handle.await.context("a ractor actor panicked")?;
    }
    Ok((sent, drain))
}
