//! Groups and capabilities on one hub: a group's members share the work by load, a slow
//! member gets less, bad names and empty groups are errors, members leave with their
//! agents, `find` and `request_capability` reach agents registered with a capability.
//! Time is tokio's paused clock: handlers "work" by sleeping, and the clock advances when
//! every task waits.

use futures_util::stream::{self, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use swarmbus::{AgentHandle, Context, Envelope, Error, Hub, HubConfig, Restart};

/// A spawned member that takes `work` per request, counting what it answered.
fn member(hub: &Hub, group: &str, work: Duration, count: Arc<AtomicU64>) -> AgentHandle {
    let handle = hub
        .spawn(
            "member",
            move |ctx: Context, env: Envelope| {
                let count = count.clone();
                async move {
                    tokio::time::sleep(work).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    ctx.reply(&env, "done").await.map(|_| ())
                }
            },
            Restart::default(),
        )
        .unwrap();
    handle.join_group(group).unwrap();
    handle
}

/// Sends `n` requests to `group`, `in_flight` at a time, and returns how many each of
/// `counts` answered.
async fn share(
    hub: &Hub,
    group: &str,
    n: usize,
    in_flight: usize,
    counts: &[Arc<AtomicU64>],
) -> Vec<u64> {
    let boss = hub.register("boss").unwrap();
    let answered = stream::iter(0..n)
        .map(|i| {
            let boss = &boss;
            async move {
                boss.request_group(group, format!("task {i}"), Duration::from_secs(60))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(in_flight)
        .count()
        .await;
    assert_eq!(answered, n, "every request answered");
    let counts: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        n as u64,
        "each request handled once"
    );
    eprintln!("{group}: shares {counts:?}");
    counts
}

#[tokio::test(start_paused = true)]
async fn four_equal_members_share_ten_thousand_requests_evenly() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let counts: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::default()).collect();
    let _members: Vec<AgentHandle> = counts
        .iter()
        .map(|c| member(&hub, "workers", Duration::from_millis(1), c.clone()))
        .collect();
    let counts = share(&hub, "workers", 10_000, 16, &counts).await;
    for (i, &c) in counts.iter().enumerate() {
        assert!(
            (1_750..=3_250).contains(&c),
            "member {i} got {c} of 10,000 (even: 2,500 ± 30%): {counts:?}"
        );
    }
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slowed_member_gets_less_and_the_fast_ones_more() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let counts: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::default()).collect();
    let _members: Vec<AgentHandle> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let work = if i == 0 { 8 } else { 1 };
            member(&hub, "workers", Duration::from_millis(work), c.clone())
        })
        .collect();
    let counts = share(&hub, "workers", 10_000, 16, &counts).await;
    let slow = counts[0];
    for &fast in &counts[1..] {
        assert!(
            fast > 2 * slow && fast > 2_500,
            "the slowed member got {slow}, a fast one {fast}: {counts:?}"
        );
    }
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn empty_groups_bad_names_and_members_that_leave() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let boss = hub.register("boss").unwrap();
    let mut a = hub.register("a").unwrap();
    let b = hub.register("b").unwrap();
    assert!(matches!(
        boss.send_group("translators", "x").await,
        Err(Error::UnknownGroup(g)) if g == "translators"
    ));
    for bad in ["", "a b", &"x".repeat(300)] {
        assert!(
            matches!(
                a.join_group(bad),
                Err(Error::InvalidName { what: "group", .. })
            ),
            "{bad:?} is refused"
        );
    }
    a.join_group("translators").unwrap();
    a.join_group("translators").unwrap(); // idempotent: still one member
    b.join_group("translators").unwrap();
    let snapshot = hub.metrics();
    assert_eq!(snapshot.groups.len(), 1);
    assert_eq!(snapshot.groups[0].name, "translators");
    assert_eq!(snapshot.groups[0].members.len(), 2);
    assert!(b.leave_group("translators"));
    assert!(!b.leave_group("translators"), "not a member any more");
    // Only `a` is left: it gets every message, and nothing is lost.
    for i in 0..10 {
        boss.send_group("translators", format!("{i}"))
            .await
            .unwrap();
    }
    hub.flush();
    for i in 0..10 {
        let env = a.recv().await.unwrap();
        assert_eq!(env.payload().to_text().unwrap(), format!("{i}"), "in order");
    }
    assert_eq!(hub.metrics().groups[0].members[0].queued, 0);
    drop(a);
    assert!(matches!(
        boss.send_group("translators", "x").await,
        Err(Error::UnknownGroup(_))
    ));
    assert!(
        hub.metrics().groups.is_empty(),
        "a group without members is gone"
    );
    let errors = hub.metrics().send_errors;
    assert_eq!(errors.get("unknown_group"), Some(&2));
    assert_eq!(errors.get("invalid_name"), Some(&3));
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn capabilities_are_found_and_requested() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let boss = hub.register("boss").unwrap();
    assert!(matches!(
        hub.register_with("x", ["ok", "not ok"]),
        Err(Error::InvalidName {
            what: "capability",
            ..
        })
    ));
    assert_eq!(
        hub.agent_count(),
        1,
        "an invalid capability registers nothing"
    );
    let fr = hub.register_with("fr", ["translate", "fr"]).unwrap();
    let de = hub
        .spawn_with(
            "de",
            ["translate", "de"],
            |ctx: Context, env: Envelope| async move {
                ctx.reply(&env, "übersetzt").await.map(|_| ())
            },
            Restart::default(),
        )
        .unwrap();
    assert_eq!(hub.find("translate"), vec![fr.id(), de.id()]);
    assert_eq!(hub.find("de"), vec![de.id()]);
    assert!(hub.find("summarize").is_empty());
    // The French translator is busy (a message waits in its mailbox): the German one
    // gets the request.
    boss.send(fr.id(), "busy").await.unwrap();
    hub.flush();
    let reply = boss
        .request_capability("translate", "hello", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.payload().to_text().unwrap(), "übersetzt");
    assert!(matches!(
        boss.request_capability("summarize", "x", Duration::from_secs(1)).await,
        Err(Error::NoCapableAgent(c)) if c == "summarize"
    ));
    drop(fr);
    assert_eq!(hub.find("translate"), vec![de.id()]);
    de.stop().await.unwrap();
    assert!(hub.find("translate").is_empty());
    hub.shutdown().await.unwrap();
}

/// Each new thread reads the groups through a copy of its own (taken round-robin): joins
/// and leaves reach every copy, so no thread sends to a member that left or misses one
/// that joined.
#[tokio::test]
async fn every_thread_sees_joins_and_leaves() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let (a, b) = (hub.register("a").unwrap(), hub.register("b").unwrap());
    a.join_group("crew").unwrap();
    b.join_group("crew").unwrap();
    let sender = hub.register("sender").unwrap().sender();
    let sends_from_new_threads = |n: usize| {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut got = Vec::new();
                for _ in 0..n {
                    got.push(sender.send_group("crew", "x").await);
                }
                got
            })
        })
    };
    // 32 threads: more than there are copies on any machine (at most 16).
    let before: Vec<_> = (0..32).map(|_| sends_from_new_threads(4)).collect();
    for t in before {
        assert!(t.join().unwrap().iter().all(Result::is_ok));
    }
    hub.flush();
    assert_eq!(a.pending() + b.pending(), 32 * 4);

    assert!(a.leave_group("crew"));
    let a_had = a.pending();
    let after: Vec<_> = (0..32).map(|_| sends_from_new_threads(4)).collect();
    for t in after {
        assert!(t.join().unwrap().iter().all(Result::is_ok));
    }
    hub.flush();
    assert_eq!(a.pending(), a_had, "no thread sent to the member that left");
    assert_eq!(a.pending() + b.pending(), 64 * 4);

    assert!(b.leave_group("crew"));
    let empty: Vec<_> = (0..32).map(|_| sends_from_new_threads(1)).collect();
    for t in empty {
        assert!(matches!(t.join().unwrap()[0], Err(Error::UnknownGroup(_))));
    }
    hub.shutdown().await.unwrap();
}
