//! The headers a conversation carries on its envelopes: a correlation id that stays the same
//! along it, a W3C `traceparent`, a content type, and for requests a deadline. They cross
//! hubs in the frame (`nats/frame.rs`, version 3).
//!
//! An envelope without any holds no allocation (`Option<Arc<Headers>>` is one pointer), so
//! plain sends pay nothing for them.

use crate::call::Call;
use crate::trace::Ids;
use crate::MessageId;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
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
    pub(crate) trace_parent: Option<Arc<str>>,
    pub(crate) content_type: Option<Arc<str>>,
    /// Nanoseconds since 1970 (UTC): wall-clock time, so it means the same on every host.
    pub(crate) deadline: Option<u64>,
    /// A request's cancellation state on this hub (never on the wire).
    pub(crate) call: Option<CallRef>,
    /// A message from a durable log: settled when the agent is done with it (never on the
    /// wire; a copy of the headers has none).
    pub(crate) receipt: crate::receipt::Receipt,
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

/// The headers of a plain message sent now: the active span's trace context (with the
/// `otel` feature) and, for `send_json`, the JSON content type; `None` when neither is set.
///
/// Shared, not built per message: one `Arc` per (trace context, JSON or not) on each thread
/// and one for untraced JSON, so a traced send costs a lookup, not two allocations.
pub(crate) fn for_message(json: bool) -> Option<Arc<Headers>> {
    static JSON_ONLY: OnceLock<Arc<Headers>> = OnceLock::new();
    let Some(ids) = crate::trace::current_ids() else {
        return json.then(|| {
            JSON_ONLY
                .get_or_init(|| Arc::new(Headers::message(None, true)))
                .clone()
        });
    };
    Some(traced(&ids, json))
}

/// The shared headers of a message sent under the trace context `ids`.
#[inline(never)]
fn traced(ids: &Ids, json: bool) -> Arc<Headers> {
    /// The last trace context a message was sent under on this thread, and its headers:
    /// plain, JSON (keyed by value, so an ended span is never confused with a new one).
    type Traced = (Ids, [Option<Arc<Headers>>; 2]);
    thread_local! {
        static TRACED: RefCell<Option<Traced>> = const { RefCell::new(None) };
    }
    TRACED.with_borrow_mut(|traced| {
        let slots = match traced {
            Some((seen, slots)) if seen == ids => slots,
            _ => &mut traced.insert((*ids, [None, None])).1,
        };
        if let Some(h) = &slots[usize::from(json)] {
            return h.clone();
        }
        let tp = slots.iter().flatten().find_map(|h| h.trace_parent.clone());
        let tp = tp.unwrap_or_else(|| crate::trace::traceparent(ids));
        slots[usize::from(json)]
            .insert(Arc::new(Headers::message(Some(tp), json)))
            .clone()
    })
}

impl Headers {
    fn message(trace_parent: Option<Arc<str>>, json: bool) -> Self {
        Headers {
            trace_parent,
            content_type: json.then(|| JSON.into()),
            ..Headers::default()
        }
    }

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
