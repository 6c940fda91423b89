//! Raw tokio mpsc: one bounded (1024) channel per agent; a request carries a tokio oneshot.

use super::{drive, join_all, Counter, Mesh, PeerSpec, Sent, Shared, BOUNDED_CAPACITY};
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Data(Bytes),
    Request(Bytes, oneshot::Sender<Bytes>),
}

#[derive(Clone)]
struct TokioMesh(Arc<Vec<mpsc::Sender<Msg>>>);

impl Mesh for TokioMesh {
    fn len(&self) -> usize {
        self.0.len()
    }

    async fn send(&mut self, _from: usize, to: usize, body: Bytes) -> bool {
        // Waits while the mailbox is full: backpressure, and a coop-budgeted await.
        self.0[to].send(Msg::Data(body)).await.is_ok()
    }

    async fn request(&mut self, _from: usize, to: usize, body: Bytes, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let len = body.len();
        if self.0[to].send(Msg::Request(body, tx)).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(reply)) if reply.len() == len)
    }
}

pub(super) async fn run(spec: &PeerSpec, shared: &Arc<Shared>) -> Result<(Sent, Duration)> {
    let mut txs = Vec::with_capacity(spec.agents);
    let mut receivers = Vec::with_capacity(spec.agents);
    for _ in 0..spec.agents {
        let (tx, mut rx) = mpsc::channel::<Msg>(BOUNDED_CAPACITY);
        txs.push(tx);
        let mut counter = Counter::new(shared);
        receivers.push(tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Data(body) => counter.got(&body),
                    Msg::Request(body, reply) => {
                        let _ = reply.send(body);
                    }
                }
            }
        }));
    }
    let mesh = TokioMesh(Arc::new(txs));
    let sent = drive(&mesh, spec, shared).await?;
    let drain = Instant::now();
    // Dropping the last senders ends each receive loop once its channel is empty.
    drop(mesh);
    join_all(receivers).await?;
    Ok((sent, drain.elapsed()))
}
