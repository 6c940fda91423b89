//! The restart policy of a spawned agent, and the budget that applies it.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Longest delay before a restart, however many came before.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How a spawned agent recovers when its handler fails (returns an error or panics): it
/// restarts at most `max_restarts` times within any `within`, each after a delay that
/// starts at `backoff` and doubles with every failure in a row (a message handled in
/// between starts it over), up to 1 s. Past the limit the agent stops (logged
/// and counted).
///
/// ```
/// use std::time::Duration;
/// use swarmbus::Restart;
/// let patient = Restart { max_restarts: 20, within: Duration::from_secs(60), ..Restart::default() };
/// assert_eq!(patient.backoff, Duration::from_millis(10));
/// // Never restart: the first failure stops the agent.
/// let strict = Restart { max_restarts: 0, ..Restart::default() };
/// # let _ = (patient, strict);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    /// Restarts allowed within `within`. Default 5.
    pub max_restarts: u32,
    /// The window the limit applies to. Default 10 s.
    pub within: Duration,
    /// The delay before the first restart in a window. Default 10 ms.
    pub backoff: Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            within: Duration::from_secs(10),
            backoff: Duration::from_millis(10),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// The limit is reached: stop.
    GiveUp,
}

/// The restarts of one agent within the policy's window.
#[derive(Debug)]
// The count each message writes last: next to what the loop touches per message.
#[repr(C)]
pub(crate) struct Budget {
    policy: Restart,
    recent: VecDeque<Instant>,
    /// Failures since the last message handled.
    in_a_row: u32,
}

impl Budget {
    pub(crate) fn new(policy: Restart) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            in_a_row: 0,
        }
    }

    /// The policy it applies.
    pub(crate) fn policy(&self) -> &Restart {
        &self.policy
    }

    /// A message was handled: the next delay starts at `backoff` again.
    #[inline]
    pub(crate) fn succeeded(&mut self) {
        // Read, not written, per message: the line stays clean.
        if self.in_a_row != 0 {
            self.in_a_row = 0;
        }
    }

    /// A failure at `now`: restart (after a delay) or give up.
    pub(crate) fn failed(&mut self, now: Instant) -> Verdict {
        while self
            .recent
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= self.policy.within)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return Verdict::GiveUp;
        }
        let delay = self
            .policy
            .backoff
            .saturating_mul(1u32 << self.in_a_row.min(20))
            .min(MAX_BACKOFF);
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.recent.push_back(now);
        Verdict::RestartAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_and_stop_at_the_limit_within_the_window() {
        let policy = Restart {
            max_restarts: 3,
            within: Duration::from_secs(10),
            backoff: Duration::from_millis(300),
        };
        let mut b = Budget::new(policy);
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(b.failed(t), Verdict::RestartAfter(ms(300)));
        assert_eq!(b.failed(t + ms(1)), Verdict::RestartAfter(ms(600)));
        assert_eq!(
            b.failed(t + ms(2)),
            Verdict::RestartAfter(MAX_BACKOFF),
            "capped"
        );
        assert_eq!(b.failed(t + ms(3)), Verdict::GiveUp);
        // Once the first restart leaves the window, one more is allowed.
        assert_eq!(
            b.failed(t + Duration::from_secs(10)),
            Verdict::RestartAfter(MAX_BACKOFF)
        );
        // A message handled in between: the delay starts over (the window still counts).
        b.succeeded();
        assert_eq!(
            b.failed(t + Duration::from_secs(11)),
            Verdict::RestartAfter(ms(300))
        );
        assert_eq!(
            b.failed(t + Duration::from_secs(11)),
            Verdict::RestartAfter(ms(600))
        );
        assert_eq!(b.failed(t + Duration::from_secs(11)), Verdict::GiveUp);
        let mut never = Budget::new(Restart {
            max_restarts: 0,
            ..Restart::default()
        });
        assert_eq!(never.failed(t), Verdict::GiveUp);
    }
}
