//! Raw flume: one unbounded channel per agent; a request carries a tokio oneshot for the reply.

use super::{drive, join_all, Counter, Mesh, PeerSpec, Sent, Shared};
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

enum Msg {
    Data(Bytes),
    Request(Bytes, oneshot::Sender<Bytes>),
}

#[derive(Clone)]
struct FlumeMesh(Arc<Vec<flume::Sender<Msg>>>);

impl Mesh for FlumeMesh {
    fn len(&self) -> usize {
        self.0.len()
    }

    async fn send(&self, to: usize, body: Bytes) -> bool {
        let ok = self.0[to].send(Msg::Data(body)).is_ok();
        // An unbounded send never waits, so it never yields; without this the senders
        // would hold both workers and starve the receivers (tokio's own channels and
        // swarmbus sends consume the same coop budget).
        tokio::task::consume_budget().await;
        ok
    }

    async fn request(&self, to: usize, body: Bytes, timeout: Duration) -> Option<Bytes> {
        let (tx, rx) = oneshot::channel();
        self.0[to].send(Msg::Request(body, tx)).ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }
}

pub(super) async fn run(spec: &PeerSpec, shared: &Arc<Shared>) -> Result<(Sent, Duration)> {
    let mut txs = Vec::with_capacity(spec.agents);
    let mut receivers = Vec::with_capacity(spec.agents);
    for _ in 0..spec.agents {
        let (tx, rx) = flume::unbounded::<Msg>();
        txs.push(tx);
        let mut counter = Counter::new(shared);
        receivers.push(tokio::spawn(async move {
            while let Ok(msg) = rx.recv_async().await {
                match msg {
                    Msg::Data(body) => counter.got(&body),
                    Msg::Request(body, reply) => {
                        let _ = reply.send(body);
                    }
                }
            }
        }));
    }
    let mesh = FlumeMesh(Arc::new(txs));
    let sent = drive(&mesh, spec, shared).await?;
    let drain = Instant::now();
    // Dropping the last senders ends each receive loop once its channel is empty.
    drop(mesh);
    join_all(receivers).await?;
    Ok((sent, drain.elapsed()))
}
