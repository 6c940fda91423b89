//! Spawned agents (`Hub::spawn`): handlers that fail restart per their policy without
//! losing what is queued, the restart limit stops an agent, `stop` and shutdown finish or
//! report what is queued. Time is tokio's paused clock: backoffs pass at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use swarmbus::{Context, Envelope, Error, Hub, HubConfig, Restart};

fn number(env: &Envelope) -> u64 {
    let bytes = env.payload().bytes().unwrap();
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_panics_on_every_tenth_message_loses_nothing_else() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = handled.clone();
    let patient = Restart {
        max_restarts: 1_000,
        within: Duration::from_secs(60),
        backoff: Duration::from_millis(1),
    };
    let worker = hub
        .spawn(
            "worker",
            move |_ctx: Context, env: Envelope| {
                let log = log.clone();
                async move {
                    let n = number(&env);
                    if n % 10 == 9 {
                        panic!("message {n}");
                    }
                    log.lock().unwrap().push(n);
                    Ok::<(), Error>(())
                }
            },
            patient,
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    const N: u64 = 1_000;
    for n in 0..N {
        boss.send(worker.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    hub.flush();
    until("every message handled", || {
        handled.lock().unwrap().len() == 900
    })
    .await;
    let want: Vec<u64> = (0..N).filter(|n| n % 10 != 9).collect();
    assert_eq!(*handled.lock().unwrap(), want, "in order, each once");
    assert_eq!(worker.restarts(), 100);
    assert!(worker.is_running());
    let m = hub.metrics();
    assert_eq!(m.supervision.handler_panics, 100);
    assert_eq!(m.supervision.restarts, 100);
    assert_eq!(m.supervision.gave_up, 0);
    assert_eq!(m.messages_dropped["handler_failed"], 100);
    let failed: Vec<u64> = hub
        .dead_letters()
        .iter()
        .filter(|d| d.reason() == "handler_failed")
        .map(|d| number(d.envelope()))
        .collect();
    assert_eq!(failed.len(), 100);
    assert!(failed.iter().all(|n| n % 10 == 9));
    let recent = &m.supervision.recent[0];
    assert_eq!((recent.id, recent.restarts), (worker.id(), 100));
    assert!(
        recent.last_failure.contains("message 999"),
        "{}",
        recent.last_failure
    );
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
    assert_eq!((report.agents_aborted, report.unhandled), (0, 0));
}

/// A handler owns its state (`FnMut`, called once at a time): a count kept without a lock,
/// which a restart does not reset.
#[tokio::test(start_paused = true)]
async fn a_handler_keeps_state_of_its_own_across_messages_and_restarts() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let mut handled = 0u64;
    let counter = hub
        .spawn(
            "counter",
            move |ctx: Context, env: Envelope| {
                handled += 1;
                let so_far = handled;
                async move {
                    if env.is_request() {
                        ctx.reply(&env, so_far.to_le_bytes().to_vec()).await?;
                    } else if number(&env) == 4 {
                        return Err(Error::Config("message 4 fails".into()));
                    }
                    Ok::<(), Error>(())
                }
            },
            Restart::default(),
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    for n in 0..10u64 {
        boss.send(counter.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    // Handled before the request is sent (a request may overtake queued messages).
    hub.flush();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = boss
        .request(
            counter.id(),
            0u64.to_le_bytes().to_vec(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(number(&answer), 11, "ten messages, then the request");
    assert_eq!(counter.restarts(), 1);
    hub.shutdown().await.unwrap();
}

/// A handler that panics while building its future (before any `async` block runs) is
/// caught the same way: a restart, the message in the dead letters, the rest handled.
#[tokio::test(start_paused = true)]
async fn a_handler_that_panics_before_it_returns_a_future_is_caught_too() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = handled.clone();
    let worker = hub
        .spawn(
            "eager",
            move |_ctx: Context, env: Envelope| {
                let n = number(&env);
                assert!(n % 3 != 2, "message {n} refused before any await");
                log.lock().unwrap().push(n);
                std::future::ready(Ok::<(), Error>(()))
            },
            Restart {
                max_restarts: 100,
                within: Duration::from_secs(60),
                backoff: Duration::from_millis(1),
            },
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    for n in 0..30u64 {
        boss.send(worker.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    hub.flush();
    until("twenty handled", || handled.lock().unwrap().len() == 20).await;
    let want: Vec<u64> = (0..30).filter(|n| n % 3 != 2).collect();
    assert_eq!(*handled.lock().unwrap(), want);
    assert_eq!(worker.restarts(), 10);
    assert_eq!(hub.metrics().supervision.handler_panics, 10);
    assert_eq!(hub.metrics().messages_dropped["handler_failed"], 10);
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
}

#[tokio::test(start_paused = true)]
async fn the_restart_limit_stops_the_agent_and_the_hub_keeps_working() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let strict = Restart {
        max_restarts: 3,
        within: Duration::from_secs(60),
        backoff: Duration::from_millis(10),
    };
    let broken = hub
        .spawn(
            "broken",
            move |_ctx: Context, _env: Envelope| {
                seen.fetch_add(1, Ordering::Relaxed);
                async move { Err::<(), _>("cannot do it") }
            },
            strict,
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    for n in 0..10u64 {
        boss.send(broken.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    hub.flush();
    until("the agent to stop", || !broken.is_running()).await;
    // Three restarts, then the fourth failure stops it.
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    assert_eq!(broken.restarts(), 3);
    let m = hub.metrics();
    assert_eq!(m.supervision.handler_errors, 4);
    assert_eq!((m.supervision.gave_up, m.supervision.running), (1, 0));
    assert!(m.supervision.recent[0].gave_up);
    assert_eq!(m.messages_dropped["handler_failed"], 4);
    // What was queued behind it is accounted for, not lost.
    assert_eq!(m.messages_dropped["recipient_gone"], 6);
    assert!(matches!(
        boss.send(broken.id(), "anyone?").await,
        Err(Error::UnknownAgent(_))
    ));
    // The hub keeps working.
    let mut other = hub.register("other").unwrap();
    boss.send(other.id(), "still here").await.unwrap();
    assert_eq!(
        other.recv().await.unwrap().payload().to_text().unwrap(),
        "still here"
    );
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
}

/// A spawned agent taking 10 ms a message, 100 messages queued for it by `boss`, the
/// first in its handler: the agent, its count of handled messages, and `boss`.
async fn slow_agent_with_100_queued(
    hub: &Hub,
) -> (swarmbus::AgentHandle, Arc<AtomicU64>, swarmbus::Agent) {
    let handled = Arc::new(AtomicU64::new(0));
    let count = handled.clone();
    let slow = hub
        .spawn(
            "slow",
            move |_ctx: Context, _env: Envelope| {
                let count = count.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    Ok::<(), Error>(())
                }
            },
            Restart::default(),
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    for n in 0..100u64 {
        boss.send(slow.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    hub.flush();
    until("the first message in hand", || {
        handled.load(Ordering::Relaxed) >= 1
    })
    .await;
    (slow, handled, boss)
}

#[tokio::test(start_paused = true)]
async fn stop_handles_what_is_queued_then_deregisters() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let (slow, handled, boss) = slow_agent_with_100_queued(&hub).await;
    let id = slow.id();
    slow.clone().stop().await.unwrap();
    assert_eq!(
        handled.load(Ordering::Relaxed),
        100,
        "what was queued is handled"
    );
    assert!(!slow.is_running());
    assert!(matches!(
        boss.send(id, "late").await,
        Err(Error::UnknownAgent(_))
    ));
    assert_eq!(hub.metrics().messages_dropped_total(), 0);
    hub.shutdown().await.unwrap();
}

/// Sends that race a stop: each is handled, counted as a drop (`recipient_gone`), or
/// refused (`UnknownAgent`). None is unaccounted.
#[tokio::test(start_paused = true)]
async fn sends_racing_a_stop_are_handled_counted_or_refused() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let (slow, handled, boss) = slow_agent_with_100_queued(&hub).await;
    let id = slow.id();
    let stopping = tokio::spawn(slow.clone().stop());
    let mut refused = 0u64;
    // Four seconds of sends: the stop ends the agent well before.
    for n in 100..900u64 {
        match boss.send(id, n.to_le_bytes().to_vec()).await {
            Ok(_) => {}
            Err(Error::UnknownAgent(_)) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stopping.await.unwrap().unwrap();
    hub.flush();
    let m = hub.metrics();
    let gone = m.messages_dropped["recipient_gone"];
    let done = handled.load(Ordering::Relaxed);
    assert!(
        done >= 100,
        "what was queued at the stop is handled: {done}"
    );
    assert!(refused > 0, "sends after the agent left are refused");
    assert_eq!(
        done + gone + refused,
        900,
        "handled {done}, dropped {gone}, refused {refused}"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_agents_finish_and_reports_a_handler_that_never_returns() {
    let mut config = HubConfig::default();
    config.agent_shutdown_timeout = Duration::from_millis(500);
    let hub = Hub::start(config).unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let count = handled.clone();
    let fine = hub
        .spawn(
            "fine",
            move |_ctx: Context, _env: Envelope| {
                let count = count.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    Ok::<(), Error>(())
                }
            },
            Restart::default(),
        )
        .unwrap();
    let stuck = hub
        .spawn(
            "stuck",
            |_ctx: Context, _env: Envelope| async move {
                std::future::pending::<()>().await;
                Ok::<(), Error>(())
            },
            Restart::default(),
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    for n in 0..50u64 {
        boss.send(fine.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    for n in 0..5u64 {
        boss.send(stuck.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    let started = tokio::time::Instant::now();
    let report = hub.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        handled.load(Ordering::Relaxed),
        50,
        "queued messages handled"
    );
    assert_eq!((report.agents_aborted, report.unhandled), (1, 1));
    // The four queued behind the stuck one are counted, not lost.
    assert_eq!(hub.metrics().messages_dropped["recipient_gone"], 4);
    assert_eq!(report.undelivered, 0);
    assert!(!fine.is_running() && !stuck.is_running());
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_handler_fails_fails_at_once_not_at_its_timeout() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let flaky = hub
        .spawn(
            "flaky",
            |ctx: Context, env: Envelope| async move {
                match env.payload().to_text()?.as_str() {
                    "panic" => panic!("out of tokens"),
                    "error" => Err(Error::Config("the model is down".into())),
                    _ => ctx.reply(&env, "ok").await.map(|_| ()),
                }
            },
            Restart::default(),
        )
        .unwrap();
    let caller = hub.register("caller").unwrap();
    let started = tokio::time::Instant::now();
    for (ask, says) in [("panic", "out of tokens"), ("error", "the model is down")] {
        match caller
            .request(flaky.id(), ask, Duration::from_secs(600))
            .await
        {
            Err(Error::StreamFailed(why)) => {
                assert!(
                    why.contains("the handler failed") && why.contains(says),
                    "{why}"
                )
            }
            other => panic!("{ask}: expected a failure, got {:?}", other.map(|e| e.id())),
        }
    }
    // Well within the first backoffs, nowhere near the 600 s timeout.
    assert!(started.elapsed() < Duration::from_secs(5));
    let reply = caller
        .request(flaky.id(), "work", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.payload().to_text().unwrap(), "ok");
    assert_eq!(flaky.restarts(), 2);
    let m = hub.metrics();
    assert_eq!(m.dead_letters_recorded.get("handler_failed"), Some(&2));
    assert_eq!(
        m.messages_dropped
            .get("reply_orphaned")
            .copied()
            .unwrap_or(0),
        0
    );
    hub.shutdown().await.unwrap();
}

/// How a test handler fails with the message it was given.
#[derive(Clone, Copy, Debug)]
enum Fails {
    /// Panics before it returns a future.
    AtCall,
    /// Panics in its first poll.
    AtOnce,
    /// Returns an error after waiting (its future was polled again).
    ErrAfterWaiting,
    /// Panics after waiting.
    PanicAfterWaiting,
}

#[tokio::test(start_paused = true)]
async fn a_failed_message_reaches_the_dead_letters_whole_however_its_handler_fails() {
    for how in [
        Fails::AtCall,
        Fails::AtOnce,
        Fails::ErrAfterWaiting,
        Fails::PanicAfterWaiting,
    ] {
        let hub = Hub::start(HubConfig::default()).unwrap();
        let worker = hub
            .spawn(
                "worker",
                move |_ctx: Context, env: Envelope| {
                    if matches!(how, Fails::AtCall) {
                        panic!("at the call");
                    }
                    async move {
                        if matches!(how, Fails::ErrAfterWaiting | Fails::PanicAfterWaiting) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if matches!(how, Fails::PanicAfterWaiting | Fails::AtOnce) {
                            panic!("failing with {} bytes", env.payload().len());
                        }
                        Err::<(), _>(format!("failing with {} bytes", env.payload().len()))
                    }
                },
                Restart::default(),
            )
            .unwrap();
        let boss = hub.register("boss").unwrap();
        // Small (one cache line), large (past any copy limit) and one byte.
        let bodies: Vec<Vec<u8>> = vec![
            (0..64u8).collect(),
            (0..5_000u32).map(|i| (i % 251) as u8).collect(),
            vec![7],
        ];
        let mut ids = Vec::new();
        for body in &bodies {
            ids.push(boss.send(worker.id(), body.clone()).await.unwrap());
        }
        hub.flush();
        until("every message failed", || {
            hub.metrics().supervision.handler_panics + hub.metrics().supervision.handler_errors == 3
        })
        .await;
        let mut dead = hub.dead_letters();
        dead.reverse();
        assert_eq!(dead.len(), 3, "{how:?}");
        for ((d, body), id) in dead.iter().zip(&bodies).zip(&ids) {
            assert_eq!(d.reason(), "handler_failed");
            assert!(!d.payload_dropped(), "{how:?}");
            assert_eq!(d.envelope().id(), *id);
            assert_eq!(d.envelope().from(), boss.id());
            assert_eq!(
                &*d.envelope().payload().bytes().unwrap(),
                &body[..],
                "{how:?}"
            );
        }
        assert_eq!(hub.metrics().dead_letter_payloads_dropped, 0);
        hub.shutdown().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_keeps_its_message_and_fails_leaves_it_counted_without_its_payload() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let mut hoard: Vec<Envelope> = Vec::new();
    let kept = Arc::new(AtomicU64::new(0));
    let seen = kept.clone();
    let worker = hub
        .spawn(
            "hoarder",
            move |_ctx: Context, env: Envelope| {
                // Its own state takes the message; then it fails.
                hoard.push(env);
                seen.store(hoard.len() as u64, Ordering::SeqCst);
                std::future::ready(Err::<(), _>("kept it, then failed"))
            },
            Restart::default(),
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    let id = boss.send(worker.id(), vec![1u8; 100]).await.unwrap();
    hub.flush();
    until("the message failed", || {
        hub.metrics().supervision.handler_errors == 1
    })
    .await;
    assert_eq!(kept.load(Ordering::SeqCst), 1, "the handler holds it");
    let dead = hub.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason(), "handler_failed");
    assert_eq!(dead[0].envelope().id(), id);
    assert!(dead[0].payload_dropped());
    assert!(dead[0].envelope().payload().is_empty());
    let m = hub.metrics();
    assert_eq!(m.dead_letter_payloads_dropped, 1);
    assert_eq!(m.messages_dropped["handler_failed"], 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_context_kept_past_its_message_or_moved_to_a_task_still_sends() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let mut sink = hub.register("sink").unwrap();
    let to = sink.id();
    let mut first: Option<Context> = None;
    let worker = hub
        .spawn(
            "worker",
            move |ctx: Context, env: Envelope| {
                let n = number(&env);
                // The context of message 0 is kept and used for every later message; each
                // context also goes to a task of its own that sends after a while.
                let kept = first.get_or_insert_with(|| ctx.clone()).clone();
                let later = ctx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    let _ = later.send(to, (1_000 + n).to_le_bytes().to_vec()).await;
                });
                async move {
                    kept.send(to, n.to_le_bytes().to_vec()).await?;
                    drop(ctx);
                    Ok::<(), Error>(())
                }
            },
            Restart::default(),
        )
        .unwrap();
    let boss = hub.register("boss").unwrap();
    for n in 0..50u64 {
        boss.send(worker.id(), n.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..100 {
        hub.flush();
        let env = tokio::time::timeout(Duration::from_secs(5), sink.recv())
            .await
            .expect("a send from a kept or moved context")
            .unwrap();
        assert_eq!(env.from(), worker.id());
        got.push(number(&env));
    }
    got.sort_unstable();
    let want: Vec<u64> = (0..50).chain(1_000..1_050).collect();
    assert_eq!(got, want, "each once");
    hub.shutdown().await.unwrap();
}
