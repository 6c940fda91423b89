//! actix 0.13: one actor per agent; `do_send` one way, `send` for requests.
//!
//! actix runs actors on its own arbiters (one thread and one single-threaded runtime
//! each), so this peer gets two arbiters and the driver's sending tasks run on those same
//! two threads (task `t` on arbiter `t % 2`, agent `i` on arbiter `i % 2`): the same
//! driver functions, the same two busy threads as every other system (the tokio runtime
//! the run started on only waits).

use super::{drive, Counter, Mesh, PeerSpec, Sent, Shared};
use actix::{Actor, Addr, Context, Handler, Message, MessageResult};
use actix_rt::{Arbiter, ArbiterHandle, System};
use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arbiters, as many as the other systems have tokio workers.
const ARBITERS: usize = 2;

struct Agent {
    counter: Counter,
}

impl Actor for Agent {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Data(Bytes);

#[derive(Message)]
#[rtype(result = "Bytes")]
struct Request(Bytes);

/// Answered after everything queued before it: the drain.
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Data> for Agent {
    type Result = ();
    fn handle(&mut self, msg: Data, _: &mut Context<Self>) {
        self.counter.got(&msg.0);
    }
}

impl Handler<Request> for Agent {
    type Result = MessageResult<Request>;
    fn handle(&mut self, msg: Request, _: &mut Context<Self>) -> Self::Result {
        MessageResult(msg.0)
    }
}

impl Handler<Flush> for Agent {
    type Result = ();
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        self.counter.flush();
    }
}

#[derive(Clone)]
struct ActixMesh {
    addrs: Arc<Vec<Addr<Agent>>>,
    arbiters: Arc<Vec<ArbiterHandle>>,
}

impl Mesh for ActixMesh {
    fn len(&self) -> usize {
        self.addrs.len()
    }

    async fn send(&mut self, _from: usize, to: usize, body: Bytes) -> bool {
        let addr = &self.addrs[to];
        let ok = addr.connected();
        addr.do_send(Data(body));
        // `do_send` never waits, so it never yields; see the flume peer.
        tokio::task::consume_budget().await;
        ok
    }

    async fn request(&mut self, _from: usize, to: usize, body: Bytes, timeout: Duration) -> bool {
        let len = body.len();
        matches!(
            tokio::time::timeout(timeout, self.addrs[to].send(Request(body))).await,
            Ok(Ok(reply)) if reply.len() == len
        )
    }

    fn spawn<F>(&self, task: usize, fut: F) -> impl Future<Output = Result<F::Output>> + Send
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = self.arbiters[task % self.arbiters.len()].spawn(async move {
            let _ = tx.send(fut.await);
        });
        async move {
            if !started {
                bail!("an actix arbiter is gone");
            }
            rx.await
                .context("an actix load task ended without finishing")
        }
    }
}

/// The actix system's threads: a parked thread owning the `System` and its arbiters.
struct Threads {
    handles: Vec<ArbiterHandle>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    owner: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Threads {
    fn start() -> Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        let owner = std::thread::Builder::new()
            .name("actix-system".into())
            .spawn(move || -> Result<()> {
                // Registers a System on this thread, which arbiters need; its own loop never
                // runs: this thread only parks.
                let _system = System::new();
                let mut arbiters = Vec::with_capacity(ARBITERS);
                for _ in 0..ARBITERS {
                    arbiters.push(Arbiter::try_new().context("starting an actix arbiter")?);
                }
                let handles: Vec<ArbiterHandle> = arbiters.iter().map(|a| a.handle()).collect();
                if ready_tx.send(handles).is_err() {
                    return Ok(());
                }
                let _ = stop_rx.recv();
                for a in &arbiters {
                    a.stop();
                }
                for a in arbiters {
                    a.join().map_err(|_| anyhow!("an actix arbiter panicked"))?;
                }
                Ok(())
            })
            .context("starting the actix thread")?;
        let handles = ready_rx
            .recv()
            .map_err(|_| anyhow!("the actix system did not start"))?;
        Ok(Self {
            handles,
            stop: Some(stop),
            owner: Some(owner),
        })
    }

    fn stop(mut self) -> Result<()> {
        drop(self.stop.take());
        match self.owner.take() {
            Some(owner) => owner
                .join()
                .map_err(|_| anyhow!("the actix thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        // On an early return: the arbiters stop; nobody waits for them.
        drop(self.stop.take());
    }
}

pub(super) async fn run(spec: &PeerSpec, shared: &Arc<Shared>) -> Result<(Sent, Duration)> {
    let threads = Threads::start()?;
    let addrs: Vec<Addr<Agent>> = (0..spec.agents)
        .map(|i| {
            let counter = Counter::new(shared);
            Agent::start_in_arbiter(&threads.handles[i % threads.handles.len()], move |_| {
                Agent { counter }
            })
        })
        .collect();
    let mesh = ActixMesh {
        addrs: Arc::new(addrs),
        arbiters: Arc::new(threads.handles.clone()),
    };
    let sent = drive(&mesh, spec, shared).await?;
    let drain = Instant::now();
    // Mailboxes are FIFO: once every actor has answered Flush, it has handled all before it.
    let mut flushes = tokio::task::JoinSet::new();
    for addr in mesh.addrs.iter() {
        let addr = addr.clone();
        flushes.spawn(async move { addr.send(Flush).await.is_ok() });
    }
    let flushed = tokio::time::timeout(Duration::from_secs(60), flushes.join_all())
        .await
        .context("actix actors did not drain within 60 s")?;
    let drain = drain.elapsed();
    if flushed.iter().any(|ok| !ok) {
        bail!("an actix actor did not answer the drain");
    }
    drop(mesh);
    // Joining threads blocks: off the runtime's workers.
    tokio::task::spawn_blocking(move || threads.stop())
        .await
        .context("stopping actix")??;
    Ok((sent, drain))
}
