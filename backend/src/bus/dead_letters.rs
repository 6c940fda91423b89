//! The bus's side of dead letters: every message it drops while holding it goes to the
//! hub's store (`dead_letter.rs`) with its reason, and a replay sends them again.

use super::mailbox::Refused;
use super::state::Bus;
use crate::dead_letter::Replayed;
use crate::metrics::DropReason;
use crate::receipt::Outcome;
use crate::{AgentId, Envelope};

impl Bus {
    /// Counts `env` as dropped for `reason` and keeps it among the dead letters.
    pub(crate) fn dead_letter(&self, reason: DropReason, env: Envelope) {
        self.settle_dead(reason, &env);
        self.dead.record(reason, env);
    }

    /// [`dead_letter`](Self::dead_letter) for a message whose payload is not at hand (a
    /// failed handler kept it): kept without it, as `payload_dropped`.
    pub(crate) fn dead_letter_without_payload(&self, reason: DropReason, env: Envelope) {
        self.settle_dead(reason, &env);
        self.dead.record_without_payload(reason, env);
    }

    /// Settles a message that becomes a dead letter, and counts it.
    fn settle_dead(&self, reason: DropReason, env: &Envelope) {
        // Kept here, a durable message is done; dropped by a shutdown, the log keeps it
        // for the next start.
        env.settle(if self.is_closing() {
            Outcome::Returned
        } else {
            Outcome::Taken
        });
        self.metrics.drop_n(reason, 1);
    }

    /// [`dead_letter`](Self::dead_letter) for each of `envs`.
    pub(crate) fn dead_letters(
        &self,
        reason: DropReason,
        envs: impl IntoIterator<Item = Envelope>,
    ) {
        for env in envs {
            self.dead_letter(reason, env);
        }
    }

    /// A message a mailbox refused for good: a dead letter when it came back, else counted.
    pub(crate) fn dead_letter_refused(&self, reason: DropReason, refused: Refused) {
        match refused {
            Refused::Full(env) | Refused::OverBudget(env, _) | Refused::Error(_, Some(env)) => {
                self.dead_letter(reason, *env)
            }
            Refused::Error(_, None) => self.metrics.drop_n(reason, 1),
        }
    }

    /// Sends the replayable dead letters dropped for `reason` (any, when `None`) again, to
    /// their recipient or `to`, never waiting; see `Hub::replay_dead_letters`.
    pub(crate) fn replay_dead_letters(
        &self,
        reason: Option<&str>,
        to: Option<AgentId>,
    ) -> Replayed {
        let mut report = Replayed::default();
        let taken = self.dead.take(|letter| {
            let matches = reason.is_none_or(|r| letter.reason() == r);
            if matches && !letter.replayable() {
                report.skipped += 1;
            }
            matches && letter.replayable()
        });
        let mut refused = Vec::new();
        // Oldest first: what one sender sent one recipient arrives in its order again.
        for letter in taken.into_iter().rev() {
            let old = letter.envelope();
            let mut env = self.envelope(
                old.from,
                to.unwrap_or(old.to),
                old.kind,
                old.priority,
                old.headers.clone(),
                old.payload.clone(),
            );
            // The same message: a recipient that deduplicates by id still can.
            env.id = old.id;
            match self.enqueue_now(env, false) {
                Ok(()) => report.sent += 1,
                Err(_) => {
                    report.failed += 1;
                    refused.push(letter);
                }
            }
        }
        self.dead.replayed.add(report.sent);
        self.dead.replay_failed.add(report.failed);
        refused.reverse();
        self.dead.restore(refused);
        report
    }
}
