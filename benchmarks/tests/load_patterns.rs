//! Every `swarm-load` pattern runs, counts honestly and loses nothing, in both modes.

use std::time::Duration;
use swarmbus_benchmarks::load::{self, payload::PayloadSpec, LoadSpec, Mode, Pattern};

async fn run(pattern: Pattern, payload: PayloadSpec, mode: Mode) -> load::report::Report {
    let mut spec = LoadSpec::new(pattern, 10, Duration::from_millis(400));
    spec.payload = payload;
    spec.mode = mode;
    spec.requesters = 8;
    load::run(spec).await.expect("load run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pattern_delivers_everything() {
    for pattern in [
        Pattern::Direct,
        Pattern::Broadcast,
        Pattern::Topic,
        Pattern::Request,
        Pattern::Task,
        Pattern::Mixed,
    ] {
        for mode in [Mode::Optimized, Mode::Baseline] {
            let r = run(pattern, PayloadSpec::Fixed(64), mode).await;
            assert_eq!(r.messages_lost, 0, "{pattern:?} {mode:?}");
            assert_eq!(
                r.messages_sent, r.messages_delivered,
                "{pattern:?} {mode:?}"
            );
            if pattern == Pattern::Task {
                assert!(r.tasks.completed > 0);
            } else {
                assert!(
                    r.messages_delivered > 0,
                    "{pattern:?} {mode:?} moved nothing"
                );
                assert!(
                    r.latency_us.samples > 0,
                    "{pattern:?} {mode:?} has no latency"
                );
            }
        }
    }
}

/// Regression: request/reply echoing mixed payloads once panicked inside zlib-rs. Local
/// delivery compresses only into a backlog, so every local payload over 1 KiB is compressed
/// here (`compress_backlog: 0`), as it would be for another hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_payloads_compress_and_round_trip() {
    for pattern in [Pattern::Request, Pattern::Mixed, Pattern::Direct] {
        let mut spec = LoadSpec::new(pattern, 10, Duration::from_millis(400));
        spec.payload = PayloadSpec::Mixed;
        spec.mode = Mode::Optimized;
        spec.requesters = 8;
        spec.hub.compress_backlog = 0;
        let r = load::run(spec).await.expect("load run");
        assert_eq!(r.messages_lost, 0);
        assert!(r.compression.compressed_messages > 0, "{pattern:?}");
        assert!(r.compression.ratio > 1.0, "{pattern:?}");
    }
}

/// Local delivery to recipients that keep up shares the payload's bytes: with the default
/// configuration, mixed payloads travel uncompressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mixed_payloads_are_not_compressed_without_a_backlog() {
    let r = run(Pattern::Request, PayloadSpec::Mixed, Mode::Optimized).await;
    assert_eq!(r.messages_lost, 0);
    assert_eq!(r.compression.compressed_messages, 0);
}
