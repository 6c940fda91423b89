//! The handle `Hub::spawn` returns, and the state it shares with its agent's task.

use crate::{AgentId, Result};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// What a spawned agent's task and its handle share.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) id: AgentId,
    pub(crate) name: Arc<str>,
    /// To join and leave groups from the handle.
    sender: crate::AgentSender,
    pub(crate) restarts: AtomicU32,
    /// `stop()` asked for it.
    pub(crate) stopping: AtomicBool,
    /// Wakes the agent's loop from a backoff when `stopping` is set.
    stop_waker: futures_util::task::AtomicWaker,
    /// The agent's task; taken by whoever waits for it first (`stop`, shutdown).
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    /// True once the task has ended.
    pub(crate) done: tokio::sync::watch::Sender<bool>,
    /// The task was aborted with a message in the handler (set by the loop's guard as the
    /// aborted future drops: nothing is written per message).
    pub(crate) aborted_in_hand: AtomicBool,
}

impl Spawned {
    pub(crate) fn new(sender: crate::AgentSender) -> Self {
        Self {
            id: sender.id(),
            name: sender.name().into(),
            sender,
            restarts: AtomicU32::new(0),
            stopping: AtomicBool::new(false),
            stop_waker: futures_util::task::AtomicWaker::new(),
            task: Mutex::new(None),
            done: tokio::sync::watch::Sender::new(false),
            aborted_in_hand: AtomicBool::new(false),
        }
    }

    /// Asks the loop to stop: its wait for mail ends (through the mailbox, so the loop
    /// reads nothing of this struct per message), and so does a backoff.
    pub(crate) fn ask_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.sender.interrupt_receiver();
        self.stop_waker.wake();
    }

    /// Ready once a stop was asked for (for one waiting task: the agent's loop, in a
    /// backoff).
    pub(crate) fn stop_asked(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            self.stop_waker.register(cx.waker());
            if self.stopping.load(Ordering::Acquire) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    /// Waits until the task has ended.
    pub(crate) async fn ended(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }
}

/// A spawned agent ([`Hub::spawn`](crate::Hub::spawn)): its id, how often it restarted,
/// and a graceful stop. Dropping the handle does not stop the agent; it runs until
/// `stop`, the hub's shutdown, or its restart limit.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    spawned: Arc<Spawned>,
}

impl AgentHandle {
    pub(crate) fn new(spawned: Arc<Spawned>) -> Self {
        Self { spawned }
    }

    /// The agent's id (the same across restarts).
    pub fn id(&self) -> AgentId {
        self.spawned.id
    }

    /// The name it was spawned with.
    pub fn name(&self) -> &str {
        &self.spawned.name
    }

    /// A sender of this agent, to send as it from outside its handler (a first message, a
    /// kick-off); it does not keep the agent running.
    pub fn sender(&self) -> crate::AgentSender {
        self.spawned.sender.clone()
    }

    /// Joins group `group`, as [`AgentSender::join_group`](crate::AgentSender::join_group):
    /// a pool of spawned agents behind one name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName) for a name that breaks the rules
    /// of topic names.
    pub fn join_group(&self, group: &str) -> Result<()> {
        self.spawned.sender.join_group(group)
    }

    /// Leaves group `group`; false when the agent was not in it.
    pub fn leave_group(&self, group: &str) -> bool {
        self.spawned.sender.leave_group(group)
    }

    /// How many times its handler failed and the agent restarted.
    pub fn restarts(&self) -> u32 {
        self.spawned.restarts.load(Ordering::Acquire)
    }

    /// Whether it still runs (not stopped, not past its restart limit, hub not shut down).
    pub fn is_running(&self) -> bool {
        !*self.spawned.done.borrow()
    }

    /// Stops the agent gracefully: the message in hand is finished, then the rest of its
    /// current batch and the messages queued when it would next wait for mail are handled,
    /// then it deregisters (later sends to its id fail with
    /// [`Error::UnknownAgent`](crate::Error::UnknownAgent); what arrived in between is
    /// counted, `recipient_gone`). Returns once it has.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for a stop that can fail.
    pub async fn stop(self) -> Result<()> {
        self.spawned.ask_stop();
        self.spawned.ended().await;
        Ok(())
    }
}
