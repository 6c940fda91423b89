//! With the `otel` feature, the active span's trace travels with every envelope sent under
//! it and the receiving side continues it: one trace id at every hop.

use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use swarmbus::{Hub, HubConfig};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

fn trace_id(span: &tracing::Span) -> TraceId {
    span.context().span().span_context().trace_id()
}

#[tokio::test(flavor = "current_thread")]
async fn the_active_span_travels_and_the_receiver_continues_it() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("swarmbus-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let mut carol = hub.register("carol").unwrap();
    let (bob_id, carol_id) = (bob.id(), carol.id());

    // Without a span nothing is added.
    alice.send(bob_id, "untraced").await.unwrap();
    hub.flush();
    assert_eq!(bob.recv().await.unwrap().trace_parent(), None);

    let root = tracing::info_span!("ask");
    let id = trace_id(&root);
    assert_ne!(id, TraceId::INVALID);
    alice
        .send(bob_id, "traced")
        .instrument(root.clone())
        .await
        .unwrap();
    hub.flush();
    let env = bob.recv().await.unwrap();
    let tp = env.trace_parent().expect("a traceparent").to_string();
    assert!(tp.starts_with(&format!("00-{id:032x}-")), "{tp}");

    // bob continues the trace and asks carol within it: same trace at every hop.
    let handle = tracing::info_span!("handle");
    handle.set_parent(env.trace_context()).unwrap();
    assert_eq!(trace_id(&handle), id);
    let carol_task = tokio::spawn(async move {
        let req = carol.recv().await.unwrap();
        let span = tracing::info_span!("carol");
        span.set_parent(req.trace_context()).unwrap();
        let seen = trace_id(&span);
        carol.reply(&req, "done").instrument(span).await.unwrap();
        seen
    });
    let reply = bob
        .request(carol_id, "sub-task", Duration::from_secs(5))
        .instrument(handle.clone())
        .await
        .unwrap();
    assert_eq!(carol_task.await.unwrap(), id);
    let back = tracing::info_span!("back");
    back.set_parent(reply.trace_context()).unwrap();
    assert_eq!(trace_id(&back), id, "the reply carries the trace too");
    hub.shutdown().await.unwrap();
}

/// With the layer's context activation off, the current OpenTelemetry context stays empty
/// inside a span; the span's own context is read instead, and the trace still travels.
#[tokio::test(flavor = "current_thread")]
async fn the_trace_travels_with_context_activation_off() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_context_activation(false)
            .with_tracer(provider.tracer("swarmbus-test")),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let root = tracing::info_span!("ask");
    let id = trace_id(&root);
    alice
        .send(bob.id(), "traced")
        .instrument(root.clone())
        .await
        .unwrap();
    alice.send(bob.id(), "after the span").await.unwrap();
    // Another trace, then the first again: each send carries its own span's context.
    let other = tracing::info_span!("other");
    let other_id = trace_id(&other);
    assert_ne!(other_id, id);
    for span in [&other, &root] {
        alice
            .send_json(bob.id(), &1)
            .instrument(span.clone())
            .await
            .unwrap();
    }
    hub.flush();
    let tp = bob.recv().await.unwrap().trace_parent().map(str::to_string);
    assert!(tp.is_some_and(|tp| tp.starts_with(&format!("00-{id:032x}-"))));
    assert_eq!(bob.recv().await.unwrap().trace_parent(), None);
    for expected in [other_id, id] {
        let env = bob.recv().await.unwrap();
        assert_eq!(env.content_type(), Some("application/json"));
        let tp = env.trace_parent().expect("traced");
        assert!(tp.starts_with(&format!("00-{expected:032x}-")), "{tp}");
    }
    hub.shutdown().await.unwrap();
}
