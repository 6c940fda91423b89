//! Scale-out over a real `nats-server`: hubs on one server form one swarm.
//!
//! Each test starts its own server on a free loopback port and stops it by its PID. When
//! `nats-server` is missing the tests fail under `CI=true` and are skipped elsewhere.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use swarmbus::nats::NatsConfig;
use swarmbus::{AgentId, Error, Hub, HubConfig};

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

/// The next message for `rx`, failing the test after 5 s.
async fn next(rx: &mut swarmbus::Agent) -> swarmbus::Envelope {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a message within 5 s")
        .expect("the mailbox is open")
}

/// Two hubs from `a` and `b`, a sender `tx` on the first and a receiver `rx` on the second,
/// once the first knows the receiver.
async fn pair(a: HubConfig, b: HubConfig) -> (Hub, Hub, swarmbus::Agent, swarmbus::Agent) {
    let a = Hub::connect(a).await.unwrap();
    let b = Hub::connect(b).await.unwrap();
    let tx = a.register("tx").unwrap();
    let rx = b.register("rx").unwrap();
    until("a to learn rx", || a.knows(rx.id())).await;
    (a, b, tx, rx)
}

fn text(env: &swarmbus::Envelope) -> String {
    env.payload().to_text().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_hub_direct_broadcast_topic_and_request() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "t1"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "t1"))
        .await
        .unwrap();
    let a1 = a.register("a1").unwrap();
    let mut a2 = a.register("a2").unwrap();
    let mut b1 = b.register("b1").unwrap();
    let mut b2 = b.register("b2").unwrap();
    b2.subscribe("plans.step").unwrap();
    let (b1_id, b2_id) = (b1.id(), b2.id());
    until("a to learn b's agents", || a.knows(b1_id) && a.knows(b2_id)).await;
    until("b to learn a's agents", || b.knows(a1.id())).await;

    // Direct, with compression on the wire.
    a1.send(b1_id, "hello b1").await.unwrap();
    let big = "{\"k\":1}".repeat(400);
    a1.send(b1_id, big.clone()).await.unwrap();
    let e = b1.recv().await.unwrap();
    assert_eq!((text(&e), e.from()), ("hello b1".to_string(), a1.id()));
    let e = b1.recv().await.unwrap();
    assert!(
        e.payload().is_compressed(),
        "compressed payloads travel compressed"
    );
    assert_eq!(text(&e), big);

    // Broadcast reaches every agent on every hub but the sender.
    a1.broadcast("all hands").await.unwrap();
    a.flush();
    for agent in [&mut a2, &mut b1, &mut b2] {
        let e = next(agent).await;
        assert_eq!(text(&e), "all hands");
    }

    // Topics: only the subscriber on b.
    a1.publish("plans.step", "step 1").await.unwrap();
    let e = next(&mut b2).await;
    assert_eq!(
        (text(&e), e.topic()),
        ("step 1".to_string(), Some("plans.step"))
    );
    assert!(matches!(
        a1.publish("bad.*", "x").await,
        Err(Error::InvalidTopic(_))
    ));

    // Request/reply across hubs.
    let responder = tokio::spawn(async move {
        while let Some(env) = b1.recv().await {
            if env.is_request() {
                b1.reply(&env, format!("re: {}", text(&env))).await.unwrap();
            }
        }
    });
    let reply = a1
        .request(b1_id, "ping", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(text(&reply), "re: ping");
    assert_eq!(reply.from(), b1_id);

    // An id no hub registered.
    assert!(matches!(
        a1.send(AgentId::new_v4(), "x").await,
        Err(Error::UnknownAgent(_))
    ));
    let stats = a.metrics().nats.unwrap();
    assert!(stats.frames_sent > 0 && stats.directory_agents == 2 && stats.connected);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    responder.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_pair_order_and_nothing_lost_across_hubs() {
    const N: u32 = 20_000;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "t2"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "t2"))
        .await
        .unwrap();
    let senders: Vec<_> = (0..3)
        .map(|i| a.register(format!("s{i}")).unwrap())
        .collect();
    let mut rx = b.register("rx").unwrap();
    let to = rx.id();
    until("a to learn rx", || a.knows(to)).await;
    let mut tasks = Vec::new();
    for s in senders {
        tasks.push(tokio::spawn(async move {
            for i in 0..N {
                s.send(to, i.to_le_bytes().to_vec()).await.unwrap();
            }
            s
        }));
    }
    let mut next = std::collections::HashMap::new();
    for _ in 0..3 * N {
        let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("messages stopped arriving")
            .unwrap();
        let i = u32::from_le_bytes(e.payload().bytes().unwrap()[..4].try_into().unwrap());
        let expected = next.entry(e.from()).or_insert(0u32);
        assert_eq!(i, *expected, "out of order from {}", e.from());
        *expected += 1;
    }
    for t in tasks {
        drop(t.await.unwrap());
    }
    let stats = b.metrics().nats.unwrap();
    assert_eq!(stats.frames_lost, 0);
    assert_eq!(stats.messages_in, 3 * N as u64);
    // Batching on the wire: far fewer frames than messages.
    assert!(
        stats.frames_received < (3 * N as u64) / 5,
        "{} frames",
        stats.frames_received
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_mid_stream_delivers_what_was_sent_during_the_outage() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "t3"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "t3"))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut rx = b.register("rx").unwrap();
    let to = rx.id();
    until("a to learn rx", || a.knows(to)).await;
    for i in 0..1000u32 {
        tx.send(to, i.to_le_bytes().to_vec()).await.unwrap();
    }
    for _ in 0..1000 {
        next(&mut rx).await;
    }
    server.stop();
    until("a to notice the outage", || {
        !a.metrics().nats.unwrap().connected
    })
    .await;
    for i in 1000..3000u32 {
        tx.send(to, i.to_le_bytes().to_vec()).await.unwrap();
    }
    a.flush();
    assert!(a.metrics().nats.unwrap().buffered > 0 || a.metrics().nats.unwrap().frames_sent > 0);
    server.spawn();
    for want in 1000..3000u32 {
        let e = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("buffered messages did not arrive after reconnection")
            .unwrap();
        let i = u32::from_le_bytes(e.payload().bytes().unwrap()[..4].try_into().unwrap());
        assert_eq!(i, want);
    }
    let stats = a.metrics().nats.unwrap();
    assert!(stats.reconnects >= 1 && stats.disconnects >= 1);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_are_counted_and_dropped() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let b = Hub::connect(config(&server.url(), "b", "t4"))
        .await
        .unwrap();
    let a = Hub::connect(config(&server.url(), "a", "t4"))
        .await
        .unwrap();
    let mut rx = b.register("rx").unwrap();
    let tx = a.register("tx").unwrap();
    until("a to learn rx", || a.knows(rx.id())).await;
    let raw = async_nats::connect(server.url()).await.unwrap();
    let subject = "swarmbus.t4.node.b";
    raw.publish(subject, "garbage".into()).await.unwrap();
    raw.publish(subject, b"SWB\x09rest-of-a-future-version".to_vec().into())
        .await
        .unwrap();
    raw.publish(subject, b"SWB\x02\x01".to_vec().into())
        .await
        .unwrap();
    raw.publish("swarmbus.t4.dir", "{not json".into())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    until("b to reject 3 frames", || {
        let s = b.metrics().nats.unwrap();
        s.frames_rejected.values().sum::<u64>() >= 4
    })
    .await;
    let s = b.metrics().nats.unwrap();
    assert_eq!(s.frames_rejected["bad_magic"], 1);
    assert_eq!(s.frames_rejected["unknown_version"], 1);
    assert_eq!(s.frames_rejected["truncated"], 1);
    // Still working.
    tx.send(rx.id(), "after").await.unwrap();
    let e = next(&mut rx).await;
    assert_eq!(text(&e), "after");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_swarms_on_one_server_stay_apart() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "blue"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "red"))
        .await
        .unwrap();
    let c = Hub::connect(config(&server.url(), "c", "blue"))
        .await
        .unwrap();
    let x = a.register("x").unwrap();
    let mut y = b.register("y").unwrap();
    let z = c.register("z").unwrap();
    until("a to learn z", || a.knows(z.id())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !a.knows(y.id()),
        "a red agent leaked into the blue directory"
    );
    x.broadcast("blue only").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(y.try_recv().is_none());
    for h in [a, b, c] {
        h.shutdown().await.unwrap();
    }
}

/// Runs as a child process (see `killed_hub_leaves_the_directory`): a hub with three
/// agents that prints their ids and waits to be killed.
#[test]
fn child_hub_process() {
    let Ok(url) = std::env::var("SWARMBUS_CHILD_NATS") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let hub = Hub::connect(config(&url, "doomed", "t5")).await.unwrap();
        let agents: Vec<_> = (0..3)
            .map(|i| hub.register(format!("d{i}")).unwrap())
            .collect();
        let ids: Vec<String> = agents.iter().map(|a| a.id().to_string()).collect();
        println!("READY {}", ids.join(" "));
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_hub_leaves_the_directory() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "t5"))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_hub_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SWARMBUS_CHILD_NATS", server.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split_once("READY ").map(|(_, ids)| ids.to_string()))
    })
    .await
    .unwrap()
    .expect("child hub did not start");
    let ids: Vec<AgentId> = line
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    until("a to learn the child's agents", || {
        ids.iter().all(|id| a.knows(*id))
    })
    .await;
    tx.send(ids[0], "before").await.unwrap();
    child.kill().unwrap(); // SIGKILL: no goodbye
    child.wait().unwrap();
    let killed = Instant::now();
    until("the killed hub to leave the directory", || {
        ids.iter().all(|id| !a.knows(*id))
    })
    .await;
    assert!(killed.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        tx.send(ids[1], "after").await,
        Err(Error::UnknownAgent(_))
    ));
    assert_eq!(a.metrics().nats.unwrap().directory_nodes, 0);
    a.shutdown().await.unwrap();
}

// ===== Hardening: outages, large swarms, shutdown, replays, name clashes =====

fn nats_stats(hub: &Hub) -> swarmbus::nats::NatsStats {
    hub.metrics().nats.expect("joined a swarm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_over_the_servers_max_payload_is_split_and_recovers_after_a_restart() {
    // 5,000 ids are ~195 KB of hello: three times what this server takes in one message.
    let Some(mut server) = NatsServer::start_with(Some("max_payload: 65536\n")) else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "h1"))
        .await
        .unwrap();
    let mut agents: Vec<_> = (0..5000)
        .map(|i| a.register(format!("x{i}")).unwrap())
        .collect();
    let b = Hub::connect(config(&server.url(), "b", "h1"))
        .await
        .unwrap();
    until("b to learn all 5,000 agents", || {
        nats_stats(&b).directory_agents == 5000
    })
    .await;
    server.stop(); // SIGKILL
    until("a to notice the outage", || !nats_stats(&a).connected).await;
    server.spawn();
    until("a to reconnect", || nats_stats(&a).connected).await;
    // A hub that joins now learns everyone from the hello parts sent in answer.
    let c = Hub::connect(config(&server.url(), "c", "h1"))
        .await
        .unwrap();
    until("c to learn all 5,000 agents", || {
        nats_stats(&c).directory_agents == 5000
    })
    .await;
    let tx = c.register("tx").unwrap();
    let last = agents.last_mut().unwrap();
    tx.send(last.id(), "hello").await.unwrap();
    let e = next(last).await;
    assert_eq!(text(&e), "hello");
    assert_eq!(nats_stats(&a).directory_publish_failures, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while nats_stats(&b).directory_agents != 5001 {
        assert!(
            Instant::now() < deadline,
            "b: {:#?}\na: {:#?}",
            nats_stats(&b),
            nats_stats(&a)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for hub in [a, b, c] {
        hub.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_agents_fit_a_default_server() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "h2"))
        .await
        .unwrap();
    let _agents: Vec<_> = (0..100_000)
        .map(|i| a.register(format!("x{i}")).unwrap())
        .collect();
    let b = Hub::connect(config(&server.url(), "b", "h2"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while nats_stats(&b).directory_agents != 100_000 {
        assert!(
            Instant::now() < deadline,
            "b knows {}",
            nats_stats(&b).directory_agents
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(nats_stats(&a).directory_publish_failures, 0);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_node_timeout_loses_nothing() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "o1"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "o1"))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut rx = b.register("rx").unwrap();
    let to = rx.id();
    until("a to learn rx", || a.knows(to)).await;
    server.stop();
    until("both to notice the outage", || {
        !nats_stats(&a).connected && !nats_stats(&b).connected
    })
    .await;
    for i in 0..2000u32 {
        tx.send(to, i.to_le_bytes().to_vec()).await.unwrap();
    }
    // Twice node_timeout (1 s) without a single heartbeat.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(a.knows(to), "a expired b while a itself was disconnected");
    server.spawn();
    for want in 0..2000u32 {
        let e = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("a buffered message did not arrive after reconnection")
            .unwrap();
        let i = u32::from_le_bytes(e.payload().bytes().unwrap()[..4].try_into().unwrap());
        assert_eq!(i, want);
    }
    let report = a.shutdown().await.unwrap();
    assert_eq!((report.undelivered, report.dropped), (0, 0), "{report:?}");
    assert_eq!(report.forwarded, 2000);
    let report = b.shutdown().await.unwrap();
    assert_eq!(report.dropped, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_an_outage_reports_what_it_could_not_send() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let mut cfg = config(&server.url(), "a", "o2");
    if let Some(n) = cfg.nats.as_mut() {
        n.shutdown_drain = Duration::from_millis(300);
    }
    let (a, b, tx, rx) = pair(cfg, config(&server.url(), "b", "o2")).await;
    server.stop();
    until("a to notice the outage", || !nats_stats(&a).connected).await;
    for i in 0..1000u32 {
        tx.send(rx.id(), i.to_le_bytes().to_vec()).await.unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(10), a.shutdown())
        .await
        .expect("shutdown hung during the outage")
        .unwrap();
    assert_eq!(report.sent, 1000, "{report:?}");
    assert_eq!(report.delivered, 0, "nothing reached a mailbox: {report:?}");
    assert_eq!(report.forwarded, 0, "{report:?}");
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.dropped, 1000, "{report:?}");
    assert_eq!(a.metrics().messages_dropped["unsent"], 1000);
    server.spawn();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hub_with_the_same_name_is_refused() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "n1"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "n1"))
        .await
        .unwrap();
    let rx = a.register("rx").unwrap();
    until("b to learn rx", || b.knows(rx.id())).await;
    let err = Hub::connect(config(&server.url(), "a", "n1"))
        .await
        .expect_err("a second hub named `a` joined");
    assert!(err.to_string().contains("unique"), "{err}");
    assert!(nats_stats(&a).node_clashes >= 1);
    // The first `a` keeps its agents in b's directory, all along (with two hubs named `a`,
    // b used to flip between them).
    for _ in 0..60 {
        assert!(b.knows(rx.id()), "b lost the first a's agent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_frame_is_delivered_once() {
    use futures_util::StreamExt;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (a, b, tx, mut rx) = pair(
        config(&server.url(), "a", "r1"),
        config(&server.url(), "b", "r1"),
    )
    .await;
    let spy = async_nats::connect(server.url()).await.unwrap();
    let mut captured = spy.subscribe("swarmbus.r1.node.b").await.unwrap();
    spy.flush().await.unwrap();
    tx.send(rx.id(), "once").await.unwrap();
    a.flush();
    let frame = tokio::time::timeout(Duration::from_secs(5), captured.next())
        .await
        .unwrap()
        .unwrap();
    for _ in 0..5 {
        spy.publish("swarmbus.r1.node.b", frame.payload.clone())
            .await
            .unwrap();
    }
    spy.flush().await.unwrap();
    let e = next(&mut rx).await;
    assert_eq!(text(&e), "once");
    until("b to refuse the replays", || {
        nats_stats(&b).frames_rejected["replayed"] == 5
    })
    .await;
    assert!(rx.try_recv().is_none(), "a replay was delivered");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_directory_messages_cannot_hijack_agents_or_flood() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (a, b, tx, mut rx) = pair(
        config(&server.url(), "a", "f1"),
        config(&server.url(), "b", "f1"),
    )
    .await;
    let evil = async_nats::connect(server.url()).await.unwrap();
    let id = rx.id().to_string();
    // A hello from another node claiming b's agent (in today's and in the old format).
    let forged = [
        format!(
            r#"{{"node":"evil","epoch":1,"seq":1,"body":{{"t":"hello","part":0,"parts":1,"total":1,"agents":["{id}"],"reply":false}}}}"#
        ),
        format!(r#"{{"t":"hello","node":"evil","epoch":1,"agents":["{id}"],"reply":false}}"#),
    ];
    for f in forged {
        evil.publish("swarmbus.f1.dir", f.into()).await.unwrap();
    }
    // 300 syncs asking a for its hello.
    let hellos_before = nats_stats(&a).hellos_sent;
    for seq in 2..302 {
        let f = format!(
            r#"{{"node":"evil","epoch":1,"seq":{seq},"body":{{"t":"sync","target":"a"}}}}"#
        );
        evil.publish("swarmbus.f1.dir", f.into()).await.unwrap();
        evil.publish("swarmbus.f1.dir", r#"{"t":"sync","node":"a"}"#.into())
            .await
            .unwrap();
    }
    evil.flush().await.unwrap();
    until("a to refuse the claim", || {
        nats_stats(&a).claim_conflicts >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hellos = nats_stats(&a).hellos_sent - hellos_before;
    assert!(hellos <= 8, "300 syncs made {hellos} hellos");
    tx.send(rx.id(), "still b's").await.unwrap();
    let e = next(&mut rx).await;
    assert_eq!(text(&e), "still b's");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

fn signed(url: &str, node: &str, swarm: &str, key: &str, previous: &[&str]) -> HubConfig {
    let mut c = config(url, node, swarm);
    if let Some(n) = c.nats.as_mut() {
        n.swarm_key = Some(key.to_string());
        n.previous_keys = previous.iter().map(|k| k.to_string()).collect();
    }
    c
}

const KEY_1: &str = "9d5c1f0e3a7b2c4d6e8f00112233445566778899aabbccddeeff0011223344ff";
const KEY_2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_swarm_refuses_what_the_key_did_not_sign() {
    use futures_util::StreamExt;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (a, b, tx, mut rx) = pair(
        signed(&server.url(), "a", "s1", KEY_1, &[]),
        signed(&server.url(), "b", "s1", KEY_1, &[]),
    )
    .await;
    // The attacker reads b's real announcements and forges a bye and a hijacking hello in
    // b's name with b's epoch and a later sequence number.
    let evil = async_nats::connect(server.url()).await.unwrap();
    let mut dir = evil.subscribe("swarmbus.s1.dir").await.unwrap();
    let seen: serde_json::Value = loop {
        let m = tokio::time::timeout(Duration::from_secs(5), dir.next())
            .await
            .unwrap()
            .unwrap();
        let body = &m.payload[..m.payload.len().saturating_sub(40)];
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
            if v["node"] == "b" {
                break v;
            }
        }
    };
    let epoch = seen["epoch"].as_u64().unwrap();
    let bye =
        format!(r#"{{"node":"b","epoch":{epoch},"seq":999999,"body":{{"t":"bye","sent":[]}}}}"#);
    let hello = format!(
        r#"{{"node":"mallory","epoch":1,"seq":1,"body":{{"t":"hello","part":0,"parts":1,"total":1,"agents":["{}"],"reply":false}}}}"#,
        rx.id()
    );
    let mut forged_tag = bye.clone().into_bytes();
    forged_tag.extend_from_slice(&seen_tag_like());
    for f in [bye.into_bytes(), hello.into_bytes(), forged_tag] {
        evil.publish("swarmbus.s1.dir", f.into()).await.unwrap();
    }
    evil.publish("swarmbus.s1.node.b", "SWB\x02 unsigned frame".into())
        .await
        .unwrap();
    evil.flush().await.unwrap();
    until("a to refuse the forgeries", || {
        let r = &nats_stats(&a).frames_rejected;
        r["unsigned"] + r["bad_tag"] + r["unknown_key"] >= 3
    })
    .await;
    until("b to refuse the unsigned frame", || {
        nats_stats(&b).frames_rejected["unsigned"] >= 1
    })
    .await;
    assert!(a.knows(rx.id()), "a forged bye or hello took effect");
    tx.send(rx.id(), "signed").await.unwrap();
    let e = next(&mut rx).await;
    assert_eq!(text(&e), "signed");
    // A hub with another key is not part of the swarm.
    let c = Hub::connect(signed(&server.url(), "c", "s1", KEY_2, &[]))
        .await
        .unwrap();
    let c_agent = c.register("c1").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!a.knows(c_agent.id()) && !c.knows(rx.id()));
    assert!(nats_stats(&a).frames_rejected["unknown_key"] >= 2);
    for hub in [a, b, c] {
        hub.shutdown().await.unwrap();
    }
}

/// 40 bytes shaped like a tag, made without the key.
fn seen_tag_like() -> Vec<u8> {
    let mut t = b"SWS\x01".to_vec();
    t.extend_from_slice(&[0u8; 36]);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_in_the_middle_of_a_key_rotation_still_talk() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // Step two of the documented rotation: one hub seals with the new key, one still with
    // the old one, each accepting both.
    let (a, b, tx, mut rx) = pair(
        signed(&server.url(), "a", "s2", KEY_2, &[KEY_1]),
        signed(&server.url(), "b", "s2", KEY_1, &[KEY_2]),
    )
    .await;
    tx.send(rx.id(), "rotating").await.unwrap();
    let e = next(&mut rx).await;
    assert_eq!(text(&e), "rotating");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_during_an_outage_buffer_instead_of_blocking() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "o3"))
        .await
        .unwrap();
    let b = Hub::connect(config(&server.url(), "b", "o3"))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut rx = b.register("rx").unwrap();
    rx.subscribe("news").unwrap();
    until("a to learn rx", || a.knows(rx.id())).await;
    server.stop();
    until("a to notice the outage", || !nats_stats(&a).connected).await;
    // More than the NATS client's 8,192 queued commands, which used to block the caller
    // for the length of the outage.
    let sending = async {
        for i in 0..5000u32 {
            tx.broadcast(i.to_le_bytes().to_vec()).await.unwrap();
            tx.publish("news", (5000 + i).to_le_bytes().to_vec())
                .await
                .unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), sending)
        .await
        .expect("fan-out blocked during the outage");
    server.spawn();
    let mut broadcasts = Vec::new();
    let mut topics = Vec::new();
    for _ in 0..10_000 {
        let e = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("a buffered fan-out did not arrive after reconnection")
            .unwrap();
        let i = u32::from_le_bytes(e.payload().bytes().unwrap()[..4].try_into().unwrap());
        if e.topic().is_some() {
            topics.push(i);
        } else {
            broadcasts.push(i);
        }
    }
    assert_eq!(broadcasts, (0..5000).collect::<Vec<_>>());
    assert_eq!(topics, (5000..10_000).collect::<Vec<_>>());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_too_big_for_one_frame_is_refused_before_any_delivery() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let mut cfg = config(&server.url(), "a", "p1");
    if let Some(n) = cfg.nats.as_mut() {
        n.max_frame_bytes = 64 * 1024;
    }
    let a = Hub::connect(cfg).await.unwrap();
    let b = Hub::connect(config(&server.url(), "b", "p1"))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut local = a.register("local").unwrap();
    let rx = b.register("rx").unwrap();
    until("a to learn rx", || a.knows(rx.id())).await;
    // 100 KB that gzip cannot shrink: under max_payload (16 MiB), over one 64 KiB frame.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let err = tx.send(rx.id(), big.clone()).await.unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
    let err = tx.broadcast(big.clone()).await.unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
    a.flush();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        local.try_recv().is_none(),
        "the broadcast reached a local agent first"
    );
    // A payload that fits still goes, to both.
    tx.broadcast(vec![7u8; 1000]).await.unwrap();
    a.flush();
    let e = next(&mut local).await;
    assert_eq!(e.payload().len(), 1000);
    let report = a.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0, "{report:?}");
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn connection_errors_do_not_show_credentials() {
    // Nothing listens on port 1: the connection fails, and its error names the server
    // without the password.
    let mut nats = NatsConfig::new("nats://admin:hunter2@127.0.0.1:1", "a");
    nats.password = None;
    let mut cfg = HubConfig::default();
    cfg.nats = Some(nats);
    let err = tokio::time::timeout(Duration::from_secs(20), Hub::connect(cfg))
        .await
        .expect("connect gave up")
        .expect_err("connected to port 1");
    let mut text = format!("{err} {err:?}");
    // Every error in the source chain is free of the password too.
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        text.push_str(&format!(" / {e} {e:?}"));
        source = e.source();
    }
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("admin:***@127.0.0.1:1"), "{text}");
    // The client's own error is kept, typed, for callers that inspect it.
    let Error::Nats(nats) = &err else {
        panic!("not Error::Nats: {err:?}")
    };
    assert!(nats
        .operation()
        .starts_with("NATS connect to nats://admin:***@"));
    let connect = nats.get_ref().downcast_ref::<async_nats::ConnectError>();
    assert!(connect.is_some(), "{:?}", nats.get_ref());
}

/// Headers cross hubs in the frame (version 3): a request's deadline and content type
/// reach the callee on the other hub, the reply carries the conversation's id back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_content_type_and_correlation_cross_hubs() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (a, b, tx, mut rx) = pair(
        config(&server.url(), "a", "conv"),
        config(&server.url(), "b", "conv"),
    )
    .await;
    let rx_id = rx.id();
    let callee = tokio::spawn(async move {
        // The request (High) may overtake the batched JSON message (Normal).
        let (first, second) = (next(&mut rx).await, next(&mut rx).await);
        let (req, json) = if first.is_request() {
            (first, second)
        } else {
            (second, first)
        };
        let value: serde_json::Value = json.json().unwrap();
        rx.reply(&req, "pong").await.unwrap();
        (
            value,
            json.content_type().map(str::to_owned),
            req.deadline(),
            req.id(),
            req.correlation_id(),
        )
    });
    tx.send_json(rx_id, &serde_json::json!({"task": "summarize", "n": 3}))
        .await
        .unwrap();
    let before = std::time::SystemTime::now();
    let reply = match tx.request(rx_id, "ping", Duration::from_secs(5)).await {
        Ok(r) => r,
        Err(e) => panic!(
            "{e:?}\nA {:?}\nA nats {:?}\nB {:?}\nB nats {:?}",
            a.metrics().messages_dropped,
            a.metrics().nats,
            b.metrics().messages_dropped,
            b.metrics().nats
        ),
    };
    let (value, content_type, deadline, request_id, correlation) = callee.await.unwrap();
    assert_eq!(value, serde_json::json!({"task": "summarize", "n": 3}));
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let deadline = deadline.expect("the deadline crossed the hubs");
    let lead = deadline.duration_since(before).unwrap();
    assert!(
        lead <= Duration::from_secs(6) && lead >= Duration::from_secs(4),
        "{lead:?}"
    );
    assert_eq!(correlation, request_id);
    assert_eq!(reply.correlation_id(), request_id);
    assert_eq!(reply.in_reply_to(), Some(request_id));
    assert!(reply.is_final());
    assert_eq!(text(&reply), "pong");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A streamed reply across two hubs: 1,000 chunks, complete and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_1000_chunks_crosses_hubs_in_order() {
    use futures_util::StreamExt;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (a, b, tx, mut rx) = pair(
        config(&server.url(), "a", "streams"),
        config(&server.url(), "b", "streams"),
    )
    .await;
    let rx_id = rx.id();
    let callee = tokio::spawn(async move {
        let req = next(&mut rx).await;
        let mut out = rx.respond(&req).unwrap();
        for i in 0..999u32 {
            out.send(i.to_string()).await.unwrap();
        }
        out.finish("999").await.unwrap();
        rx
    });
    let mut stream = tx
        .request_stream(rx_id, "count", Duration::from_secs(30))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("chunks keep coming")
    {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.correlation_id(), stream.request_id());
        seen.push(text(&chunk).parse::<u32>().unwrap());
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    let _rx = callee.await.unwrap();
    assert_eq!(a.metrics().chunks, 999);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// The caller's cancel reaches a callee on another hub ahead of 10,000 messages queued
/// for that hub, and the callee's next `send` fails; a request abandoned by its timeout
/// cancels its remote callee too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_crosses_hubs_ahead_of_queued_traffic() {
    use futures_util::StreamExt;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (a, b, tx, mut rx) = pair(
        config(&server.url(), "a", "cancel"),
        config(&server.url(), "b", "cancel"),
    )
    .await;
    let mut sink = b.register("sink").unwrap();
    let sink_id = sink.id();
    until("a to learn sink", || a.knows(sink_id)).await;
    let rx_id = rx.id();
    let (working_tx, working_rx) = tokio::sync::oneshot::channel();
    let callee = tokio::spawn(async move {
        let req = next(&mut rx).await;
        let mut out = rx.respond(&req).unwrap();
        out.send("started").await.unwrap();
        working_tx.send(()).unwrap();
        let waited = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), req.cancelled())
            .await
            .expect("the cancel arrived");
        let latency = waited.elapsed();
        let after = out.send("more").await;
        // A plain request that times out cancels its callee on this hub too.
        let plain = next(&mut rx).await;
        tokio::time::timeout(Duration::from_secs(5), plain.cancelled())
            .await
            .expect("the abandoned request was cancelled");
        (latency, after, rx)
    });
    let mut stream = tx
        .request_stream(rx_id, "long job", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    working_rx.await.unwrap();
    // 10,000 messages for hub b, queued in the link ahead of the cancel.
    let flooder = a.register("flooder").unwrap();
    for i in 0..10_000u32 {
        flooder
            .send(sink_id, i.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    stream.cancel();
    let plain = tx.request(rx_id, "quick", Duration::from_millis(200)).await;
    assert!(
        matches!(plain, Err(Error::RequestTimeout { .. })),
        "{plain:?}"
    );
    let (latency, after, _rx) = callee.await.unwrap();
    assert!(matches!(after, Err(Error::Cancelled)), "{after:?}");
    assert!(latency < Duration::from_secs(5), "{latency:?}");
    // Everything queued still arrives: the cancel overtook it, it did not replace it.
    for _ in 0..10_000 {
        next(&mut sink).await;
    }
    let m = a.metrics();
    assert_eq!(m.cancellations["caller"], 1);
    assert_eq!(m.cancellations["deadline"], 1);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// One correlation id along a three-agent chain that crosses hubs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correlation_id_is_the_same_at_every_hop_across_hubs() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (a, b, tx, mut rx) = pair(
        config(&server.url(), "a", "chain"),
        config(&server.url(), "b", "chain"),
    )
    .await;
    let mut third = a.register("third").unwrap();
    let third_id = third.id();
    until("b to learn the third agent", || b.knows(third_id)).await;
    let rx_id = rx.id();
    let last = tokio::spawn(async move {
        let req = next(&mut third).await;
        third.reply(&req, "from the third").await.unwrap();
        (req.correlation_id(), req.deadline())
    });
    let middle = tokio::spawn(async move {
        let req = next(&mut rx).await;
        let nested = match rx.request_within(&req, third_id, "on").await {
            Ok(n) => n,
            Err(e) => panic!(
                "{e:?}: deadline {:?} now {:?} cancelled {}",
                req.deadline(),
                std::time::SystemTime::now(),
                req.is_cancelled()
            ),
        };
        rx.reply(&req, text(&nested)).await.unwrap();
        (
            req.correlation_id(),
            nested.correlation_id(),
            req.deadline(),
        )
    });
    let reply = tx
        .request(rx_id, "start", Duration::from_secs(20))
        .await
        .unwrap();
    let root = reply.in_reply_to().unwrap();
    let (last_correlation, last_deadline) = last.await.unwrap();
    let (middle_correlation, nested_reply_correlation, middle_deadline) = middle.await.unwrap();
    assert_eq!(text(&reply), "from the third");
    for seen in [
        reply.correlation_id(),
        middle_correlation,
        nested_reply_correlation,
        last_correlation,
    ] {
        assert_eq!(seen, root);
    }
    assert!(last_deadline.unwrap() <= middle_deadline.unwrap() + Duration::from_millis(5));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
