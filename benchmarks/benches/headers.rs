//! What headers cost on the plain `send` path: one sender, one receiving agent, 64-byte
//! payloads, one hub kept across the measurement. One criterion iteration is one message
//! sent into the recipient's mailbox; reading the mailbox out is not timed.
//!
//! - `send_none`: `send` with no span active, so no header is set (`Envelope::headers` stays
//!   `None`). With the `otel` feature on, as here, this still pays the span lookup, so it is
//!   the worst case of "none set".
//! - `send_all`: `send_json` of a 64-byte JSON text under an OpenTelemetry span: every header
//!   a plain message carries (`traceparent` and `content-type`; a correlation id is the
//!   message's own id and a deadline belongs to requests). The payload is a
//!   `serde_json::value::RawValue`, so serializing it is one copy of 64 bytes, as the
//!   `Bytes::copy_from_slice` of `send_none`.
//!
//! `scripts/header_cost.sh` runs this bench against the last commit before headers (where
//! only `send_none` exists; it is built without the `otel` feature there) and this tree,
//! reps interleaved, and reports the ratios.
//!
//! - `trace_lookup/*` (with `otel`): finding the trace context alone, each way a send can.
//!
//! `cargo bench -p swarmbus-benchmarks --features otel --bench headers`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};
use swarmbus::{Agent, AgentSender, Hub, HubConfig};
use tokio::runtime::Runtime;

const MSG: [u8; 64] = [7u8; 64];
/// Messages per timed stretch: sent and flushed into the mailbox (timed), then read out
/// (not timed), so the receiver's scheduling does not blur the send path.
const CHUNK: u64 = 1024;
/// Bound on waiting for one stretch to reach the mailbox.
const DRAIN: Duration = Duration::from_secs(60);

/// One thread: the sender, the hub's tasks and the draining share it, as on a busy
/// worker, and a sample does not depend on which thread woke first.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A hub with a sender and the receiving agent.
struct Pair {
    hub: Hub,
    tx: AgentSender,
    rx: Agent,
}

fn pair(rt: &Runtime) -> Pair {
    rt.block_on(async {
        let hub = Hub::start(HubConfig::default()).expect("hub");
        let tx = hub.register("tx").expect("tx").sender();
        let rx = hub.register("rx").expect("rx");
        Pair { hub, tx, rx }
    })
}

/// The time `iters` sends made by `send` take to reach the mailbox (with `hub.flush()`
/// after every `CHUNK`); reading them out is not timed.
async fn measure<F, Fut>(hub: &Hub, rx: &mut Agent, iters: u64, send: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let start = Instant::now();
        for _ in 0..n {
            send().await;
        }
        hub.flush();
        timed += start.elapsed();
        let mut got = 0;
        while got < n {
            match rx.try_recv() {
                Some(env) => {
                    std::hint::black_box(env);
                    got += 1;
                }
                None => {
                    assert!(start.elapsed() < DRAIN, "the messages stopped short");
                    tokio::task::yield_now().await;
                }
            }
        }
        left -= n;
    }
    timed
}

fn send_none(c: &mut Criterion, rt: &Runtime) {
    let mut p = pair(rt);
    let (tx, to) = (p.tx.clone(), p.rx.id());
    let mut g = c.benchmark_group("headers");
    g.throughput(Throughput::Elements(1));
    g.bench_function("send_none", |b| {
        b.iter_custom(|iters| {
            rt.block_on(measure(&p.hub, &mut p.rx, iters, || async {
                tx.send(to, Bytes::copy_from_slice(&MSG))
                    .await
                    .expect("send");
            }))
        })
    });
    g.finish();
    rt.block_on(p.hub.shutdown()).expect("shutdown");
}

#[cfg(feature = "otel")]
fn send_all(c: &mut Criterion, rt: &Runtime) {
    use opentelemetry::trace::TracerProvider as _;
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("header-cost")));
    // Installed for `send_none` too (it runs after this): the span lookup it pays is real.
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");

    let text = format!("\"{}\"", "x".repeat(MSG.len() - 2));
    let raw = serde_json::value::RawValue::from_string(text).expect("json");
    let mut p = pair(rt);
    let (tx, to) = (p.tx.clone(), p.rx.id());
    // Checks the claim before timing it: every envelope carries both headers.
    rt.block_on(async {
        let hub = Hub::start(HubConfig::default()).expect("hub");
        let tx = hub.register("probe-tx").expect("tx");
        let mut rx = hub.register("probe-rx").expect("rx");
        tx.send_json(rx.id(), &raw)
            .instrument(tracing::info_span!("probe"))
            .await
            .expect("send");
        hub.flush();
        let env = rx.recv().await.expect("delivered");
        assert!(env.trace_parent().is_some() && env.content_type().is_some());
        assert_eq!(env.payload().len(), MSG.len());
        hub.shutdown().await.expect("shutdown");
    });
    let mut g = c.benchmark_group("headers");
    g.throughput(Throughput::Elements(1));
    g.bench_function("send_traced", |b| {
        b.iter_custom(|iters| {
            let span = tracing::info_span!("conversation");
            rt.block_on(
                measure(&p.hub, &mut p.rx, iters, || async {
                    tx.send(to, Bytes::copy_from_slice(&MSG))
                        .await
                        .expect("send");
                })
                .instrument(span),
            )
        })
    });
    g.bench_function("send_json", |b| {
        b.iter_custom(|iters| {
            rt.block_on(measure(&p.hub, &mut p.rx, iters, || async {
                tx.send_json(to, &raw).await.expect("send");
            }))
        })
    });
    g.bench_function("send_all", |b| {
        b.iter_custom(|iters| {
            let span = tracing::info_span!("conversation");
            rt.block_on(
                measure(&p.hub, &mut p.rx, iters, || async {
                    tx.send_json(to, &raw).await.expect("send");
                })
                .instrument(span),
            )
        })
    });
    g.finish();
    rt.block_on(p.hub.shutdown()).expect("shutdown");
}

/// What finding the trace context costs, alone: OpenTelemetry's current context (what a
/// send reads), the "is any span entered" check (what a send without a span pays when the
/// context is empty), and the span's own context (the fallback with context activation off).
/// Runs after `send_all` installed the subscriber.
#[cfg(feature = "otel")]
fn trace_lookup(c: &mut Criterion) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut g = c.benchmark_group("trace_lookup");
    let span = tracing::info_span!("lookup");
    {
        let _entered = span.enter();
        g.bench_function("otel_current_context", |b| {
            b.iter(|| opentelemetry::Context::map_current(|cx| cx.span().span_context().is_valid()))
        });
        g.bench_function("span_own_context", |b| {
            b.iter(|| {
                tracing::Span::current()
                    .context()
                    .span()
                    .span_context()
                    .is_valid()
            })
        });
    }
    g.bench_function("any_span_entered_none", |b| {
        b.iter(|| tracing::dispatcher::get_default(|d| d.current_span().id().is_some()))
    });
    g.finish();
}

fn headers(c: &mut Criterion) {
    let rt = runtime();
    #[cfg(feature = "otel")]
    send_all(c, &rt);
    #[cfg(feature = "otel")]
    trace_lookup(c);
    send_none(c, &rt);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .nresamples(20_000)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = headers
}
criterion_main!(benches);
