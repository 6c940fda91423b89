//! A spawned agent's loop: one message at a time, in mailbox order; a failure restarts the
//! handler after its backoff, or stops the agent past the restart limit.

use super::book::{Book, Failure};
use super::handle::Spawned;
use super::restart::{Budget, Restart, Verdict};
use crate::metrics::DropReason;
use crate::{Agent, Context, Envelope};
use futures_util::FutureExt;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Marks the loop ended however it ends (returns, or is aborted at shutdown).
struct Ended {
    spawned: Arc<Spawned>,
    book: Arc<Book>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.book.ended(&self.spawned);
        self.spawned.done.send_replace(true);
    }
}

pub(super) async fn run<H, Fut, E>(
    mut agent: Agent,
    handler: H,
    restart: Restart,
    spawned: Arc<Spawned>,
    book: Arc<Book>,
) where
    H: Fn(Context, Envelope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + 'static,
{
    // Declared first, dropped last: after the agent has deregistered.
    let _ended = Ended {
        spawned: spawned.clone(),
        book: book.clone(),
    };
    let ctx = Context::new(agent.sender());
    let mut budget = Budget::new(restart);
    // Once stopping: how many of the queued messages are still to be handled.
    let mut draining: Option<usize> = None;
    loop {
        let next = match draining {
            Some(0) => None,
            Some(ref mut left) => {
                *left -= 1;
                agent.try_recv()
            }
            // A stop interrupts this wait (through the mailbox): nothing else is read per
            // message, and a select with a stop future would register a second waker on
            // every empty mailbox.
            None => agent.recv().await,
        };
        let Some(env) = next else {
            if draining.is_none() && spawned.stopping.load(Ordering::Acquire) {
                // Stop asked: what is queued now is handled, later arrivals are not.
                draining = Some(agent.pending());
                continue;
            }
            // Stopped and drained, or the hub shut down and the mailbox is empty.
            break;
        };
        // Kept for the dead letters: a clone shares the payload and headers.
        let copy = env.clone();
        let guard = InHand {
            spawned: &spawned,
            armed: true,
        };
        // The call itself inside the caught future: a panic before the handler's future
        // exists is caught the same way, and the future is built in place, not moved.
        let outcome = AssertUnwindSafe(async { handler(ctx.clone(), env).await })
            .catch_unwind()
            .await;
        guard.disarm();
        let Some(failure) = verdict(outcome) else {
            budget.succeeded();
            continue;
        };
        // The rare path in a box of its own: the loop's future stays small, so a message
        // touches few of its cache lines.
        if Box::pin(failed(failure, copy, &ctx, &mut budget, &spawned, &book)).await {
            break;
        }
    }
    // Deregisters: what is still queued becomes dead letters (`recipient_gone`).
    drop(agent);
    // The handler's state goes before the agent counts as ended (parameters would drop
    // after `_ended`): who waits for the end sees everything it did.
    drop(handler);
    drop(ctx);
}

/// Notes an abort (the future dropped at shutdown) while a message is in the handler; the
/// normal path writes only this local flag.
struct InHand<'a> {
    spawned: &'a Spawned,
    armed: bool,
}

impl InHand<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.spawned.aborted_in_hand.store(true, Ordering::Release);
        }
    }
}

/// After a failed message: it becomes a dead letter (`handler_failed`), a waiting
/// requester learns at once, and the agent backs off before the next message; true when
/// it is past its restart limit and stops.
async fn failed(
    (failure, why): (Failure, String),
    env: Envelope,
    ctx: &Context,
    budget: &mut Budget,
    spawned: &Spawned,
    book: &Book,
) -> bool {
    if env.is_request() {
        // The caller learns at once, not at its timeout. (A handler that replied and then
        // failed makes this an orphaned reply, counted as such.)
        if let Ok(responder) = ctx.respond(&env) {
            let _ = responder.fail(format!("the handler failed: {why}")).await;
        }
    }
    ctx.dead_letter(DropReason::HandlerFailed, env);
    if ctx.is_closing() {
        // Shutting down: no backoff, no restart count; what is queued is still handled.
        book.failed(spawned, failure, why, false);
        return false;
    }
    match budget.failed(tokio::time::Instant::now()) {
        Verdict::RestartAfter(delay) => {
            spawned.restarts.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                target: "swarmbus::supervisor",
                "agent {} ({}) failed: {why}; restarting in {delay:?}",
                spawned.name,
                spawned.id
            );
            book.failed(spawned, failure, why, false);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // A stop during the backoff: handle what is queued now.
                () = spawned.stop_asked() => {}
            }
            false
        }
        Verdict::GiveUp => {
            let policy = budget.policy();
            tracing::error!(
                target: "swarmbus::supervisor",
                "agent {} ({}) failed: {why}; {} restarts within {:?} reached: it stops",
                spawned.name,
                spawned.id,
                policy.max_restarts,
                policy.within
            );
            book.failed(spawned, failure, why, true);
            true
        }
    }
}

/// How a handler call ended: `None` for success. A function of its own, so the outcome
/// (whose error type need not be `Send`) is gone before the next await.
#[inline]
fn verdict<E: Display>(
    outcome: Result<Result<(), E>, Box<dyn std::any::Any + Send>>,
) -> Option<(Failure, String)> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some((Failure::Error, e.to_string())),
        Err(payload) => Some((Failure::Panic, panic_message(payload))),
    }
}

/// The text of a panic; the payload is dropped without letting a panic in its `Drop` out.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    };
    let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
    text
}
