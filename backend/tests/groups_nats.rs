//! Groups and capabilities across hubs on a real `nats-server`: a group with members on two
//! hubs shares requests by load, a slowed remote member gets less, `find` sees agents of
//! another hub and forgets them when they or their hub leave.
//!
//! Each test starts its own server on a free loopback port and stops it by its PID. When
//! `nats-server` is missing the tests fail under `CI=true` and are skipped elsewhere.

use futures_util::stream::{self, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarmbus::nats::NatsConfig;
use swarmbus::{AgentHandle, Context, Envelope, Error, Hub, HubConfig, Restart};

mod nats_server;

use nats_server::NatsServer;

fn config(url: &str, node: &str, swarm: &str) -> HubConfig {
    let mut nats = NatsConfig::new(url, node);
    nats.swarm = swarm.into();
    nats.heartbeat = Duration::from_millis(100);
    nats.node_timeout = Duration::from_millis(1000);
    let mut c = HubConfig::default();
    c.nats = Some(nats);
    c
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A spawned member of `group` that takes `work` per request, counting what it answered.
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

/// Members of `group` that `hub` knows on other hubs.
fn remote_members(hub: &Hub, group: &str) -> u64 {
    hub.metrics()
        .groups
        .iter()
        .find(|g| g.name == group)
        .map_or(0, |g| g.remote_members)
}

/// Two hubs with two members each of `group`, taking `work[i]` per request (members 0 and
/// 1 on hub a, 2 and 3 on hub b); 10,000 requests from hub a, 16 at a time. Returns each
/// member's share.
async fn share(work: [u64; 4]) -> Vec<u64> {
    let Some(server) = NatsServer::start() else {
        return Vec::new();
    };
    let swarm = format!("g{}", work[0]);
    let a = Hub::connect(config(&server.url(), "a", &swarm))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", &swarm))
        .await
        .unwrap();
    let counts: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::default()).collect();
    let _members: Vec<AgentHandle> = (0..4)
        .map(|i| {
            let hub = if i < 2 { &a } else { &b };
            member(
                hub,
                "workers",
                Duration::from_millis(work[i]),
                counts[i].clone(),
            )
        })
        .collect();
    until("a to know b's members", || {
        remote_members(&a, "workers") == 2
    })
    .await;
    let boss = a.register("boss").unwrap();
    const N: usize = 10_000;
    let answered = stream::iter(0..N)
        .map(|i| {
            let boss = &boss;
            async move {
                boss.request_group("workers", format!("task {i}"), Duration::from_secs(30))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .count()
        .await;
    assert_eq!(answered, N, "every request answered");
    let counts: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        N as u64,
        "each request handled once"
    );
    eprintln!("work {work:?} ms: shares {counts:?}");
    drop(boss);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_four_on_two_hubs_shares_ten_thousand_requests() {
    let counts = share([1, 1, 1, 1]).await;
    for (i, &c) in counts.iter().enumerate() {
        assert!(
            (1_750..=3_250).contains(&c),
            "member {i} got {c} of 10,000 (even: 2,500 ± 30%): {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_member_on_the_other_hub_gets_less() {
    let counts = share([2, 2, 2, 10]).await;
    if counts.is_empty() {
        return;
    }
    let slow = counts[3];
    for &fast in &counts[..3] {
        assert!(
            fast > 2 * slow,
            "the slowed member got {slow}, a fast one {fast}: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_sees_agents_of_another_hub_and_forgets_them_when_they_leave() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "find"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "find"))
        .await
        .unwrap();
    let boss = a.register("boss").unwrap();
    let translator = b
        .spawn_with(
            "translator",
            ["translate", "fr"],
            |ctx: Context, env: Envelope| async move {
                ctx.reply(&env, "traduit").await.map(|_| ())
            },
            Restart::default(),
        )
        .unwrap();
    let plain = b.register_with("plain", ["translate"]).unwrap();
    translator.join_group("translators").unwrap();
    until("a to find b's translators", || {
        a.find("translate").len() == 2
    })
    .await;
    assert_eq!(a.find("fr"), vec![translator.id()]);
    assert!(a.find("summarize").is_empty());

    // Hub a has no translator: the request crosses to hub b, to the idle one.
    let reply = boss
        .request_capability("fr", "hello", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.payload().to_text().unwrap(), "traduit");
    let reply = boss
        .request_group("translators", "hello", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.from(), translator.id());

    // An agent that leaves its hub leaves its capabilities there too.
    drop(plain);
    until("a to forget the plain agent", || {
        a.find("translate").len() == 1
    })
    .await;
    assert!(translator.leave_group("translators"));
    until("a to see the group empty", || {
        matches!(
            futures_util::FutureExt::now_or_never(boss.send_group("translators", "x")),
            Some(Err(Error::UnknownGroup(_)))
        )
    })
    .await;

    // A hub that leaves takes its agents' capabilities with it.
    b.shutdown().await.unwrap();
    until("a to forget hub b", || a.find("translate").is_empty()).await;
    assert!(matches!(
        boss.request_capability("fr", "x", Duration::from_secs(1))
            .await,
        Err(Error::NoCapableAgent(_))
    ));
    a.shutdown().await.unwrap();
}
