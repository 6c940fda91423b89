//! Trace context: with the `otel` feature, the active `tracing` span's OpenTelemetry
//! context goes into every envelope sent under it (a W3C `traceparent`), and
//! [`Envelope::trace_context`](crate::Envelope::trace_context) gives it back to the
//! receiving side, to continue the trace (`span.set_parent(env.trace_context())`).
//! Without the feature, or without a span, nothing is added and nothing costs.

use std::sync::Arc;

/// The ids a `traceparent` is made of: trace id, span id, flags.
pub(crate) type Ids = [u8; 25];

#[cfg(feature = "otel")]
thread_local! {
    /// The last `traceparent` made on this thread, by its ids: consecutive sends under one
    /// span share one string (keyed by value, so a span that ended cannot be confused with
    /// a new one).
    static LAST: std::cell::RefCell<Option<(Ids, Arc<str>)>> = const { std::cell::RefCell::new(None) };
}

/// The active span's `traceparent`, if it belongs to a valid OpenTelemetry trace.
///
/// tracing-opentelemetry activates a span's OpenTelemetry context when the span is entered
/// (its default), so the current OpenTelemetry context is read first: a thread-local read,
/// where `Span::current().context()` costs a registry lookup and a context build per send.
/// With context activation turned off, the span's own context is the fallback.
#[cfg(feature = "otel")]
pub(crate) fn current() -> Option<Arc<str>> {
    let ids = current_ids()?;
    Some(LAST.with_borrow_mut(|last| match last {
        Some((seen, tp)) if *seen == ids => tp.clone(),
        _ => {
            let tp = traceparent(&ids);
            *last = Some((ids, tp.clone()));
            tp
        }
    }))
}

/// The ids of the active span's trace context, if valid (see [`current`]).
#[cfg(feature = "otel")]
#[inline]
pub(crate) fn current_ids() -> Option<Ids> {
    use opentelemetry::trace::TraceContextExt;
    if let Some(ids) = opentelemetry::Context::map_current(|cx| ids_of(cx.span().span_context())) {
        return Some(ids);
    }
    // Whether any span is entered, without cloning it (no reference count touched).
    if !tracing::dispatcher::get_default(|d| d.current_span().id().is_some()) {
        return None;
    }
    span_ids()
}

/// The entered span's own context: context activation is off (rare, and slower).
#[cfg(feature = "otel")]
#[cold]
#[inline(never)]
fn span_ids() -> Option<Ids> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    ids_of(tracing::Span::current().context().span().span_context())
}

#[cfg(feature = "otel")]
fn ids_of(sc: &opentelemetry::trace::SpanContext) -> Option<Ids> {
    sc.is_valid().then(|| {
        let mut ids = [0u8; 25];
        ids[..16].copy_from_slice(&sc.trace_id().to_bytes());
        ids[16..24].copy_from_slice(&sc.span_id().to_bytes());
        ids[24] = sc.trace_flags().to_u8();
        ids
    })
}

/// A version-00 W3C `traceparent`: `00-<trace id>-<span id>-<flags>`, lowercase hex.
#[cfg(feature = "otel")]
pub(crate) fn traceparent(ids: &Ids) -> Arc<str> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 55];
    out[..2].copy_from_slice(b"00");
    // Where each id's hex starts: after "00-", after the trace id and its dash, ...
    let starts = [3usize, 36, 53];
    for ((from, to), start) in [(0usize, 16usize), (16, 24), (24, 25)]
        .into_iter()
        .zip(starts)
    {
        for (i, b) in ids[from..to].iter().enumerate() {
            out[start + 2 * i] = HEX[usize::from(b >> 4)];
            out[start + 2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
    }
    // Only ASCII was written.
    std::str::from_utf8(&out)
        .map(Arc::from)
        .unwrap_or_else(|_| Arc::from(""))
}

/// Without the `otel` feature there is no trace context to read.
#[cfg(not(feature = "otel"))]
#[inline(always)]
pub(crate) fn current() -> Option<Arc<str>> {
    None
}

/// Without the `otel` feature there is no trace context to read.
#[cfg(not(feature = "otel"))]
#[inline(always)]
pub(crate) fn current_ids() -> Option<Ids> {
    None
}

/// Never called without the `otel` feature (there are no ids to write).
#[cfg(not(feature = "otel"))]
pub(crate) fn traceparent(_: &Ids) -> Arc<str> {
    Arc::from("")
}

/// The OpenTelemetry context a `traceparent` names (remote, as it came from the sender), or
/// an empty one when it is missing or malformed.
#[cfg(feature = "otel")]
pub(crate) fn context(trace_parent: Option<&str>) -> opentelemetry::Context {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let parsed = trace_parent.and_then(|tp| {
        let mut parts = tp.split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        let sc = SpanContext::new(
            TraceId::from_hex(trace).ok()?,
            SpanId::from_hex(span).ok()?,
            TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
            true,
            TraceState::default(),
        );
        sc.is_valid().then_some(sc)
    });
    match parsed {
        Some(sc) => opentelemetry::Context::new().with_remote_span_context(sc),
        None => opentelemetry::Context::new(),
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn the_traceparent_is_the_w3c_text_of_the_ids() {
        let trace: [u8; 16] = core::array::from_fn(|i| (i as u8) * 17);
        let span: [u8; 8] = core::array::from_fn(|i| 0xf0 | i as u8);
        let mut ids = [0u8; 25];
        ids[..16].copy_from_slice(&trace);
        ids[16..24].copy_from_slice(&span);
        ids[24] = 1;
        let tp = traceparent(&ids);
        let expected = format!(
            "00-{:032x}-{:016x}-{:02x}",
            u128::from_be_bytes(trace),
            u64::from_be_bytes(span),
            1
        );
        assert_eq!(&*tp, expected);
        let cx = context(Some(&tp));
        let s = cx.span();
        assert_eq!(s.span_context().trace_id().to_bytes(), trace);
        assert_eq!(s.span_context().span_id().to_bytes(), span);
    }

    #[test]
    fn a_traceparent_round_trips_and_garbage_is_no_context() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context(Some(tp));
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(
            format!("{:032x}", sc.trace_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        for bad in [
            None,
            Some(""),
            Some("00-zz-00f067aa0ba902b7-01"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ] {
            assert!(!context(bad).span().span_context().is_valid(), "{bad:?}");
        }
        // No span active: nothing to send.
        assert!(current().is_none());
    }
}
