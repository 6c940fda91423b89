//! What a spawned agent's handler gets with each message.

use crate::AgentSender;
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

/// A spawned agent's side of the hub, handed to its handler with each message: every
/// sending method of [`AgentSender`] (send, reply, respond, request_within, ...), through
/// `Deref`. `Clone`, so a handler can pass it to tasks of its own.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> swarmbus::Result<()> {
/// use swarmbus::{Context, Envelope, Hub, HubConfig, Restart};
/// use std::time::Duration;
///
/// let hub = Hub::start(HubConfig::default())?;
/// let echo = hub.spawn(
///     "echo",
///     |ctx: Context, env: Envelope| async move {
///         ctx.reply(&env, env.payload().clone()).await?;
///         Ok::<(), swarmbus::Error>(())
///     },
///     Restart::default(),
/// )?;
/// let caller = hub.register("caller")?;
/// let answer = caller.request(echo.id(), "hi", Duration::from_secs(5)).await?;
/// assert_eq!(answer.payload().to_text()?, "hi");
/// echo.stop().await?;
/// hub.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    // Behind an `Arc` of its own: each message gets one, and cloning the sender would
    // touch the hub's reference count, shared by every agent (measured: spawned agents ran
    // at 0.75x of plain ones on two cores with 1,000 agents). `None` only once dropped.
    sender: Option<Arc<AgentSender>>,
}

thread_local! {
    /// The loop's lent `Arc` (its address) while its handler is polled on this thread.
    static LENT: Cell<usize> = const { Cell::new(0) };
    /// That `Arc`, once the handler dropped its context. `ManuallyDrop`: a slot without a
    /// destructor is not checked for one on each use; the loop empties it before its poll
    /// returns.
    static RETURNED: Cell<ManuallyDrop<Option<Arc<AgentSender>>>> =
        const { Cell::new(ManuallyDrop::new(None)) };
}

impl Deref for Context {
    type Target = AgentSender;

    fn deref(&self) -> &AgentSender {
        match &self.sender {
            Some(sender) => sender,
            // Taken only by `drop`.
            None => unreachable!("a context is used after its drop"),
        }
    }
}

impl Drop for Context {
    /// Gives the `Arc` back to the loop that lent it, when it is polling on this thread.
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let lent = LENT.get();
            if lent != 0 && lent == Arc::as_ptr(&sender) as usize {
                LENT.set(0);
                // What was there (never: the loop takes it back) is dropped, not leaked.
                drop(ManuallyDrop::into_inner(
                    RETURNED.replace(ManuallyDrop::new(Some(sender))),
                ));
            }
        }
    }
}

/// Hands out a spawned agent's contexts, one per message, without touching the `Arc`'s
/// count when the handler drops its context while the loop polls it (almost every
/// handler): the same `Arc` is lent again and again. Each count change costs a cache line
/// cold with many agents (measured: 3% of the cycles of 1,000 spawned agents).
pub(super) struct Lender {
    sender: Arc<AgentSender>,
    spare: Option<Arc<AgentSender>>,
}

impl Lender {
    pub(super) fn new(sender: AgentSender) -> Self {
        let sender = Arc::new(sender);
        Lender {
            spare: Some(sender.clone()),
            sender,
        }
    }

    /// The agent's sender, for the loop itself.
    pub(super) fn sender(&self) -> &AgentSender {
        &self.sender
    }

    /// A context for the next handler call, to be returned on this thread until
    /// [`collect`](Self::collect).
    #[inline]
    pub(super) fn lend(&mut self) -> Context {
        let sender = match self.spare.take() {
            Some(spare) => spare,
            None => self.sender.clone(),
        };
        if LENT.get() == 0 {
            LENT.set(Arc::as_ptr(&sender) as usize);
        }
        Context {
            sender: Some(sender),
        }
    }

    /// Ends the lending; keeps the context's `Arc` if it came back.
    #[inline]
    pub(super) fn collect(&mut self) {
        let mine = Arc::as_ptr(&self.sender) as usize;
        if LENT.get() == mine {
            // Still with the handler.
            LENT.set(0);
            return;
        }
        self.spare = ManuallyDrop::into_inner(RETURNED.take())
            .filter(|back| Arc::ptr_eq(back, &self.sender));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hub, HubConfig};

    #[tokio::test]
    async fn a_context_dropped_while_lent_comes_back_and_one_kept_does_not() {
        let hub = Hub::start(HubConfig::default()).unwrap();
        let agent = hub.register("a").unwrap();
        let mut lender = Lender::new(agent.sender());
        let first = lender.lend();
        assert_eq!(first.id(), agent.id());
        drop(first);
        lender.collect();
        // Back: the same `Arc` is lent again, no count touched.
        assert!(lender.spare.is_some());
        assert_eq!(Arc::strong_count(&lender.sender), 2);

        let kept = lender.lend();
        lender.collect();
        assert!(lender.spare.is_none(), "still with the handler");
        // Nothing stays lent: dropping it later just drops it.
        drop(kept);
        assert_eq!(Arc::strong_count(&lender.sender), 1);
        // The next message's context is a fresh clone.
        let next = lender.lend();
        assert_eq!(Arc::strong_count(&lender.sender), 2);
        drop(next);
        lender.collect();
        assert!(lender.spare.is_some());
    }

    #[tokio::test]
    async fn another_agent_s_context_dropped_meanwhile_is_not_taken() {
        let hub = Hub::start(HubConfig::default()).unwrap();
        let (a, b) = (hub.register("a").unwrap(), hub.register("b").unwrap());
        let mut lender = Lender::new(a.sender());
        let mut other = Lender::new(b.sender());
        let theirs = other.lend();
        // Lent on this thread already: `lender` lends without a watch.
        let mine = lender.lend();
        drop(mine);
        lender.collect();
        assert!(lender.spare.is_none());
        drop(theirs);
        other.collect();
        assert!(other.spare.is_some());
        assert_eq!(other.spare.as_ref().map(|s| s.id()), Some(b.id()));
    }
}
