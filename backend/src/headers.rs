//! The headers a conversation carries on its envelopes: a correlation id that stays the same
//! along it, a W3C `traceparent`, a content type, and for requests a deadline. They cross
//! hubs in the frame (`nats/frame.rs`, version 3).
//!
//! An envelope without any holds no allocation (`Option<Arc<Headers>>` is one pointer), so
//! plain sends pay nothing for them.

use crate::call::Call;
use crate::MessageId;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest `traceparent` or content type a frame may carry, in bytes (a W3C `traceparent`
/// is 55).
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
pub(crate) const MAX_HEADER_VALUE: usize = 128;

/// The content type `send_json` sets.
pub(crate) const JSON: &str = "application/json";

/// What an envelope carries besides its payload. Every field is optional; a missing
/// correlation id means the envelope's own id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    /// The topic of a topic message (its own field on the wire, not a header there).
    pub(crate) topic: Option<Arc<str>>,
    pub(crate) correlation: Option<MessageId>,
    pub(crate) trace_parent: Option<Box<str>>,
    pub(crate) content_type: Option<Box<str>>,
    /// Nanoseconds since 1970 (UTC): wall-clock time, so it means the same on every host.
    pub(crate) deadline: Option<u64>,
    /// A request's cancellation state on this hub (never on the wire).
    pub(crate) call: Option<CallRef>,
}

/// A request's [`Call`], compared by identity.
#[derive(Debug, Clone)]
pub(crate) struct CallRef(pub(crate) Arc<Call>);

impl PartialEq for CallRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CallRef {}

impl Headers {
    /// The headers of a topic message.
    #[cfg(all(test, feature = "nats"))]
    pub(crate) fn with_topic(topic: Arc<str>) -> Self {
        Headers {
            topic: Some(topic),
            ..Headers::default()
        }
    }

    /// Whether no header travels in the frame's header section (the topic has its own).
    #[cfg(all(test, feature = "nats"))]
    pub(crate) fn is_empty(&self) -> bool {
        self.correlation.is_none()
            && self.trace_parent.is_none()
            && self.content_type.is_none()
            && self.deadline.is_none()
    }

    /// The deadline as a time.
    pub(crate) fn deadline_time(&self) -> Option<SystemTime> {
        self.deadline
            .and_then(|n| UNIX_EPOCH.checked_add(Duration::from_nanos(n)))
    }
}

/// Whether `deadline` (nanoseconds since 1970) has passed.
pub(crate) fn passed(deadline: u64) -> bool {
    deadline_after(Duration::ZERO) >= deadline
}

/// How long until `deadline` (nanoseconds since 1970); zero once it passed.
pub(crate) fn remaining(deadline: u64) -> Duration {
    Duration::from_nanos(deadline.saturating_sub(deadline_after(Duration::ZERO)))
}

/// `now + timeout` in nanoseconds since 1970, saturating (a timeout of years is no deadline
/// that matters, but must not wrap).
pub(crate) fn deadline_after(timeout: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = now.saturating_add(timeout).as_nanos();
    u64::try_from(at).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_wall_clock_and_saturate() {
        assert_eq!(deadline_after(Duration::MAX), u64::MAX);
        let d = deadline_after(Duration::from_secs(60));
        let h = Headers {
            deadline: Some(d),
            ..Headers::default()
        };
        assert!(h.deadline_time().unwrap() > SystemTime::now());
    }
}
