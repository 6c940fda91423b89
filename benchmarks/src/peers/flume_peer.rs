//! Raw flume: one unbounded channel per agent; a request carries a tokio oneshot for the
//! reply. With `batch > 1` (the `flume-vec50` reference) each sending task batches by hand:
//! it keeps one `Vec` per destination and sends it when it holds `batch` messages.

use super::{drive, join_all, Counter, Mesh, PeerSpec, Sent, Shared};
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

enum Msg {
    Data(Bytes),
    Batch(Vec<Bytes>),
    Request(Bytes, oneshot::Sender<Bytes>),
}

struct FlumeMesh {
    txs: Arc<Vec<flume::Sender<Msg>>>,
    batch: usize,
    /// This task's unsent messages per destination (hand batching only).
    held: Vec<Vec<Bytes>>,
}

impl Clone for FlumeMesh {
    fn clone(&self) -> Self {
        // A clone is a sending task's own: it starts with nothing held.
        Self {
            txs: self.txs.clone(),
            batch: self.batch,
            held: Vec::new(),
        }
    }
}

impl Mesh for FlumeMesh {
    fn len(&self) -> usize {
        self.txs.len()
    }

    async fn send(&mut self, _from: usize, to: usize, body: Bytes) -> bool {
        let ok = if self.batch <= 1 {
            self.txs[to].send(Msg::Data(body)).is_ok()
        } else {
            if self.held.len() < self.txs.len() {
                self.held.resize_with(self.txs.len(), Vec::new);
            }
            let held = &mut self.held[to];
            if held.capacity() == 0 {
                held.reserve_exact(self.batch);
            }
            held.push(body);
            if held.len() >= self.batch {
                let full = std::mem::replace(held, Vec::with_capacity(self.batch));
                self.txs[to].send(Msg::Batch(full)).is_ok()
            } else {
                true
            }
        };
        // An unbounded send never waits, so it never yields; without this the senders
        // would hold both workers and starve the receivers (tokio's own channels and
        // swarmbus sends consume the same coop budget).
        tokio::task::consume_budget().await;
        ok
    }

    async fn request(&mut self, _from: usize, to: usize, body: Bytes, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let len = body.len();
        if self.txs[to].send(Msg::Request(body, tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(reply)) if reply.len() == len)
    }

    async fn flush(&mut self) -> u64 {
        let mut failed = 0;
        for (to, held) in self.held.iter_mut().enumerate() {
            if held.is_empty() {
                continue;
            }
            let n = held.len() as u64;
            if self.txs[to].send(Msg::Batch(std::mem::take(held))).is_err() {
                failed += n;
            }
        }
        failed
    }
}

pub(super) async fn run(
    spec: &PeerSpec,
    shared: &Arc<Shared>,
    batch: usize,
) -> Result<(Sent, Duration)> {
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
                    Msg::Batch(bodies) => {
                        for body in &bodies {
                            counter.got(body);
                        }
                    }
                    Msg::Request(body, reply) => {
                        let _ = reply.send(body);
                    }
                }
            }
        }));
    }
    let mesh = FlumeMesh {
        txs: Arc::new(txs),
        batch,
        held: Vec::new(),
    };
    let sent = drive(&mesh, spec, shared).await?;
    let drain = Instant::now();
    // Dropping the last senders ends each receive loop once its channel is empty.
    drop(mesh);
    join_all(receivers).await?;
    Ok((sent, drain.elapsed()))
}
