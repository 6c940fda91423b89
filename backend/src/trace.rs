//! Trace context: with the `otel` feature, the active `tracing` span's OpenTelemetry
//! context goes into every envelope sent under it (a W3C `traceparent`), and
//! [`Envelope::trace_context`](crate::Envelope::trace_context) gives it back to the
//! receiving side, to continue the trace (`span.set_parent(env.trace_context())`).
//! Without the feature, or without a span, nothing is added and nothing costs.

/// The active span's `traceparent`, if it belongs to a valid OpenTelemetry trace.
#[cfg(feature = "otel")]
pub(crate) fn current() -> Option<Box<str>> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let cx = span.context();
    let span_ref = cx.span();
    let sc = span_ref.span_context();
    if !sc.is_valid() {
        return None;
    }
    Some(
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
        .into_boxed_str(),
    )
}

/// Without the `otel` feature there is no trace context to read.
#[cfg(not(feature = "otel"))]
#[inline(always)]
pub(crate) fn current() -> Option<Box<str>> {
    None
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
