//! A spawned agent's loop: one message at a time, in mailbox order; a failure restarts the
//! handler after its backoff, or stops the agent past the restart limit.

use super::book::{Book, Failure};
use super::context::Lender;
use super::handle::Spawned;
use super::kept::Kept;
use super::restart::{Budget, Restart, Verdict};
use crate::metrics::DropReason;
use crate::{Agent, AgentSender, Context, Envelope};
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Poll};

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

/// The agent's loop, as a future for `tokio::spawn`.
///
/// Messages are taken and handled by [`Step::poll`], a poll of its own: one poll takes a
/// message, calls the handler and polls its future with panics caught, and goes on to the
/// next message while handlers finish at once, the dead-letter copy on the stack. Only a
/// handler that waits has its message's copy stored, and only a failure leaves the poll
/// (for the boxed failure path). The future stays small, as its size is each spawned
/// agent's memory and the cache lines a message touches (at 1,640 bytes spawned agents ran
/// at 0.80x of plain ones, 1,000 agents on two cores): an `async move` block, since an
/// `async fn` keeps its arguments twice.
pub(super) fn run<H, Fut, E>(
    agent: Agent,
    handler: H,
    restart: Restart,
    spawned: Arc<Spawned>,
    book: Arc<Book>,
) -> impl Future<Output = ()> + Send + 'static
where
    H: FnMut(Context, Envelope) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + 'static,
{
    // Everything a message touches, together; built outside the `async` block so the
    // block holds it once (a value built inside is stored beside what it was built from).
    let mut step = Step {
        ctx: Lender::new(agent.sender()),
        agent,
        handler,
        budget: Budget::new(restart),
        draining: None,
        kept: None,
        in_hand: InHand {
            spawned: spawned.clone(),
            call_in_flight: false,
        },
    };
    // Dropped last: after the agent has deregistered.
    let ended = Ended { spawned, book };
    async move {
        let spawned = &ended.spawned;
        let mut call = std::pin::pin!(None::<Fut>);
        loop {
            // The rare path in a box of its own, out of the loop's future; the failed
            // message is moved into it in a block of its own, so the loop's future does
            // not keep a slot for it across the `await` (168 bytes).
            let failing = {
                let next = std::future::poll_fn(|cx| step.poll(cx, call.as_mut())).await;
                let Some((failure, env)) = next else { break };
                Box::pin(failed(
                    failure,
                    env,
                    step.ctx.sender(),
                    &mut step.budget,
                    spawned,
                    &ended.book,
                ))
            };
            if failing.await {
                break;
            }
        }
        let Step {
            agent,
            handler,
            ctx,
            in_hand,
            kept,
            budget,
            draining: _,
        } = step;
        drop((kept, budget));
        // Deregisters: what is still queued becomes dead letters (`recipient_gone`).
        drop(agent);
        // The handler's state goes before the agent counts as ended: who waits for the end
        // sees everything it did.
        drop(handler);
        drop(ctx);
        drop(in_hand);
        drop(ended);
    }
}

/// What the loop's poll works with. In this order (`repr(C)`): what a message touches
/// comes last, next to the handler call that follows it in the loop's future, so a
/// message touches as few of the task's cache lines as can be (cold with many agents).
#[repr(C)]
struct Step<H> {
    /// What is kept of the message whose handler is waiting.
    kept: Option<Kept>,
    budget: Budget,
    /// Once stopping: how many of the queued messages are still to be handled.
    draining: Option<usize>,
    in_hand: InHand,
    ctx: Lender,
    agent: Agent,
    handler: H,
}

/// A failed message: how it failed, and the message (without its payload when the
/// handler kept that: true).
type Failed = ((Failure, String), (Envelope, bool));

impl<H> Step<H> {
    /// Handles messages until one fails (`Ready(Some)`) or the loop ends (`Ready(None)`:
    /// stopped and drained, or the hub shut down and the mailbox is empty); `Pending` while
    /// a handler or the mailbox waits. `call` holds a waiting handler's future.
    fn poll<Fut, E>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        mut call: Pin<&mut Option<Fut>>,
    ) -> Poll<Option<Failed>>
    where
        H: FnMut(Context, Envelope) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        loop {
            // A handler that waited: poll it again.
            if let Some(fut) = call.as_mut().as_pin_mut() {
                // The message may be dropped in this poll: watch for it on this thread.
                if let Some(kept) = &self.kept {
                    kept.rearm();
                }
                let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                    Ok(Poll::Pending) => {
                        if let Some(kept) = &mut self.kept {
                            kept.collect();
                        }
                        return Poll::Pending;
                    }
                    Ok(Poll::Ready(result)) => Ok(result),
                    Err(payload) => Err(payload),
                };
                // What the future still holds is dropped while the watch is armed.
                call.set(None);
                self.in_hand.call_in_flight = false;
                let kept = self.kept.take();
                match (verdict(outcome), kept) {
                    (Some(failure), Some(kept)) => {
                        return Poll::Ready(Some((failure, kept.into_envelope())))
                    }
                    // A waiting call always has what it keeps: `(Some, None)` is not reached.
                    _ => self.budget.succeeded(),
                }
                continue;
            }
            let next = match self.draining {
                Some(0) => None,
                Some(ref mut left) => {
                    *left -= 1;
                    self.agent.try_recv()
                }
                // A stop interrupts this wait (through the mailbox): nothing else is read
                // per message.
                None => ready!(self.agent.poll_recv(cx)),
            };
            let Some(env) = next else {
                if self.draining.is_none() && self.in_hand.spawned.stopping.load(Ordering::Acquire)
                {
                    // Stop asked: what is queued now is handled, later arrivals are not.
                    self.draining = Some(self.agent.pending());
                    continue;
                }
                return Poll::Ready(None);
            };
            // What the dead letters would need; the payload is watched, not copied.
            let mut kept = Kept::of(&env);
            self.in_hand.call_in_flight = true;
            let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
                call.set(Some((self.handler)(self.ctx.lend(), env)));
                match call.as_mut().as_pin_mut() {
                    Some(fut) => fut.poll(cx),
                    // Not reached: the call was just set.
                    None => Poll::Ready(Ok(())),
                }
            }));
            let outcome = match first {
                Ok(Poll::Pending) => {
                    // It waits: what is kept goes into the loop's state.
                    kept.collect();
                    self.ctx.collect();
                    self.kept = Some(kept);
                    return Poll::Pending;
                }
                Ok(Poll::Ready(result)) => Ok(result),
                Err(payload) => Err(payload),
            };
            call.set(None);
            self.ctx.collect();
            self.in_hand.call_in_flight = false;
            if let Some(failure) = verdict(outcome) {
                return Poll::Ready(Some((failure, kept.into_envelope())));
            }
            // Success: the message's bytes are freed here, as the handler's drop would have.
            drop(kept);
            self.budget.succeeded();
        }
    }
}

/// Notes an abort (the future dropped at shutdown) while a handler call is in flight; the
/// loop writes only its own flag per message.
struct InHand {
    spawned: Arc<Spawned>,
    call_in_flight: bool,
}

impl Drop for InHand {
    fn drop(&mut self) {
        if self.call_in_flight {
            self.spawned.aborted_in_hand.store(true, Ordering::Release);
        }
    }
}

/// After a failed message: it becomes a dead letter (`handler_failed`), a waiting
/// requester learns at once, and the agent backs off before the next message; true when
/// it is past its restart limit and stops.
async fn failed(
    (failure, why): (Failure, String),
    (env, payload_kept): (Envelope, bool),
    ctx: &AgentSender,
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
    if payload_kept {
        ctx.dead_letter_without_payload(DropReason::HandlerFailed, env);
    } else {
        ctx.dead_letter(DropReason::HandlerFailed, env);
    }
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
#[inline(always)]
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
