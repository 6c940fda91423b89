//! Agents that run themselves ([`Hub::spawn`](crate::Hub::spawn)): a task per agent calls
//! its handler for each message, one at a time and in mailbox order, and restarts it per
//! its [`Restart`] policy when it fails (returns an error or panics).
//!
//! - The agent's id, mailbox and subscriptions survive a restart: what was queued behind
//!   the failed message is handled after it. The failed message becomes a dead letter
//!   (`handler_failed`).
//! - Past its restart limit the agent stops: it deregisters, what is queued for it becomes
//!   dead letters (`recipient_gone`), and the event is logged and counted.
//! - `AgentHandle::stop` finishes the message in hand, its batch and what is queued when
//!   the agent would next wait, then stops.
//! - At shutdown, agents handle what is queued for them for up to
//!   `HubConfig::agent_shutdown_timeout`. Those still busy after it are aborted, and what
//!   they had not handled is in `ShutdownReport::unhandled`.
//!
//! `run.rs` is the agent's loop; `restart.rs` the policy; `handle.rs` what the handle and
//! the loop share; `context.rs` what a handler gets; `kept.rs` the loop's copy of the
//! message in hand.

mod book;
mod context;
mod handle;
mod kept;
mod restart;
mod run;

pub use context::Context;
pub use handle::AgentHandle;
pub use restart::Restart;

use crate::metrics::SupervisionStats;
use crate::{Agent, Envelope};
use book::Book;
use handle::Spawned;
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The hub's spawned agents.
#[derive(Debug, Default)]
pub(crate) struct Supervisors {
    book: Arc<Book>,
}

impl Supervisors {
    /// Starts `agent`'s loop with `handler`; the handle to it.
    pub(crate) fn spawn<H, Fut, E>(&self, agent: Agent, handler: H, restart: Restart) -> AgentHandle
    where
        H: FnMut(crate::Context, Envelope) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + 'static,
    {
        let spawned = Arc::new(Spawned::new(agent.sender()));
        self.book.started(&spawned);
        let task = tokio::spawn(run::run(
            agent,
            handler,
            restart,
            spawned.clone(),
            self.book.clone(),
        ));
        *spawned.task.lock() = Some(task);
        AgentHandle::new(spawned)
    }

    /// The figures for `MetricsSnapshot::supervision`.
    pub(crate) fn stats(&self) -> SupervisionStats {
        self.book.stats()
    }

    /// Shutdown: waits up to `timeout` for every spawned agent to handle what is queued
    /// for it (the hub's mailboxes are sealed, so each loop ends once drained), then aborts
    /// the rest. Returns how many were aborted and the messages they were handling.
    pub(crate) async fn shutdown(&self, timeout: Duration) -> (u64, u64) {
        let all = self.book.running();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut aborted = 0;
        let mut in_hand = 0;
        for spawned in all {
            if tokio::time::timeout_at(deadline, spawned.ended())
                .await
                .is_ok()
            {
                continue;
            }
            aborted += 1;
            tracing::warn!(
                target: "swarmbus::supervisor",
                "shutdown: agent {} ({}) was still handling after {timeout:?}: aborted",
                spawned.name,
                spawned.id
            );
            let task = spawned.task.lock().take();
            if let Some(task) = task {
                task.abort();
                // Its agent drops with the task: what it held is counted (`recipient_gone`).
                let _ = task.await;
            }
            if spawned.aborted_in_hand.load(Ordering::Acquire) {
                in_hand += 1;
            }
        }
        (aborted, in_hand)
    }
}
