//! Durable delivery between hubs over a real `nats-server` with JetStream (`-js`, a
//! temporary store), started on a free loopback port and stopped by its PID.
//!
//! In-process tests: exactly once and in order between two hubs, the typed errors at
//! start, `max_deliver` ending in the dead letters (and the dead-letter stream) and a
//! replay delivering them. The crash tests (a hub SIGKILLed, the server SIGKILLed, a hub
//! SIGSTOPped past `ack_wait`) are in `tests/durable_faults.rs`. When `nats-server` is
//! missing the tests fail under `CI=true` and are skipped elsewhere.

use std::time::{Duration, Instant};
use swarmbus::nats::{DurableConfig, NatsConfig};
use swarmbus::{Error, Hub, HubConfig};

mod nats_server;

use nats_server::NatsServer;

fn durable() -> DurableConfig {
    let mut d = DurableConfig::default();
    d.ack_wait = Duration::from_secs(1);
    d.retry_delay = Duration::from_millis(50);
    d.max_deliver = 3;
    d
}

fn config(url: &str, node: &str, swarm: &str, durable: Option<DurableConfig>) -> HubConfig {
    let mut nats = NatsConfig::new(url, node);
    nats.swarm = swarm.into();
    nats.heartbeat = Duration::from_millis(100);
    nats.node_timeout = Duration::from_secs(1);
    nats.durable = durable;
    let mut c = HubConfig::default();
    c.nats = Some(nats);
    c
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The error a hub that must not start gives (its `Debug` is too long to print).
async fn refused(config: HubConfig) -> Error {
    match Hub::connect(config).await {
        Ok(_) => panic!("the hub started"),
        Err(e) => e,
    }
}

fn durable_stats(hub: &Hub) -> swarmbus::nats::DurableStats {
    hub.metrics()
        .nats
        .and_then(|n| n.durable)
        .expect("a durable hub")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_delivery_is_exactly_once_and_in_order_between_hubs() {
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let url = server.url();
    let a = Hub::connect(config(&url, "a", "once", Some(durable())))
        .await
        .unwrap();
    let b = Hub::connect(config(&url, "b", "once", Some(durable())))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut rx = b.register("rx").unwrap();
    until("a to learn rx", || a.knows(rx.id())).await;
    const N: u64 = 5_000;
    for i in 0..N {
        tx.send(rx.id(), i.to_le_bytes().to_vec()).await.unwrap();
    }
    a.flush();
    let mut next = 0u64;
    while next < N {
        let env = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a message within 10 s")
            .unwrap();
        let bytes = env.payload().bytes().unwrap();
        let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(seq, next, "in order, each once");
        assert!(!env.redelivered());
        next += 1;
    }
    // Nothing more: no duplicate follows.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "a message arrived twice"
    );
    until("every frame acknowledged", || {
        let s = durable_stats(&b);
        s.acks > 0 && s.stream_lag == 0
    })
    .await;
    let sent = durable_stats(&a);
    assert_eq!(sent.stream, "SWARMBUS_once");
    assert_eq!(a.metrics().nats.unwrap().messages_out, N);
    let got = durable_stats(&b);
    assert_eq!(got.naks, 0);
    assert_eq!(got.frames_terminated, 0);
    assert_eq!(b.metrics().messages_dropped.values().sum::<u64>(), 0);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unusable_stream_is_a_typed_error_at_start() {
    // JetStream not enabled.
    let Some(plain) = NatsServer::start() else {
        return;
    };
    let err = refused(config(&plain.url(), "a", "s", Some(durable()))).await;
    assert!(
        matches!(&err, Error::Stream { stream, problem } if stream == "SWARMBUS_s" && problem.contains("-js")),
        "{err}"
    );
    drop(plain);
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let url = server.url();
    // Missing, and creating it is not allowed.
    let mut no_create = durable();
    no_create.create = false;
    let err = refused(config(&url, "a", "s", Some(no_create))).await;
    assert!(
        matches!(&err, Error::Stream { problem, .. } if problem.contains("does not exist")),
        "{err}"
    );
    // A stream of that name that does not carry the swarm's subjects.
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SWARMBUS_s".into(),
        subjects: vec!["elsewhere.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let err = refused(config(&url, "a", "s", Some(durable()))).await;
    assert!(
        matches!(&err, Error::Stream { problem, .. } if problem.contains("do not cover")),
        "{err}"
    );
    // A full stream that refuses new messages.
    let mut small = durable();
    small.stream = Some("TINY".into());
    small.max_bytes = 8192;
    let hub = Hub::connect(config(&url, "a", "t", Some(small.clone())))
        .await
        .unwrap();
    hub.shutdown().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("filler", "x".repeat(100).as_str());
    // Fill it until it refuses.
    let mut filled = false;
    for _ in 0..100 {
        let stored = match js
            .publish_with_headers("swarmbus.t.node.a", headers.clone(), vec![0u8; 300].into())
            .await
        {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if !stored {
            filled = true;
            break;
        }
    }
    assert!(filled, "the stream never filled");
    let err = refused(config(&url, "a", "t", Some(small))).await;
    assert!(
        matches!(&err, Error::Stream { problem, .. } if problem.contains("full")),
        "{err}"
    );
    // A directory bucket whose entries would expire between two rewrites.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KV_SWARMBUS_k_DIR".into(),
        subjects: vec!["$KV.SWARMBUS_k_DIR.>".into()],
        max_messages_per_subject: 1,
        max_age: Duration::from_millis(200),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let err = refused(config(&url, "a", "k", Some(durable()))).await;
    assert!(
        matches!(&err, Error::Stream { stream, problem } if stream == "KV_SWARMBUS_k_DIR" && problem.contains("max_age")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_hub_knows_the_swarm_at_start_from_the_directory_bucket() {
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let url = server.url();
    let a = Hub::connect(config(&url, "a", "kv", Some(durable())))
        .await
        .unwrap();
    let b = Hub::connect(config(&url, "b", "kv", Some(durable())))
        .await
        .unwrap();
    // More than one part of a's list (4,096 agents per part).
    let on_a: Vec<_> = (0..5_000)
        .map(|i| a.register(format!("a{i}")).unwrap())
        .collect();
    let on_b: Vec<_> = (0..10)
        .map(|i| b.register(format!("b{i}")).unwrap())
        .collect();
    // A forged entry and a corrupt one: refused and counted, never fatal.
    let client = async_nats::connect(&url).await.unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value("SWARMBUS_kv_DIR")
        .await
        .unwrap();
    kv.put("evil", "{not json".into()).await.unwrap();
    kv.put("evil.0", r#"{"epoch":1,"part":7,"agents":[]}"#.into())
        .await
        .unwrap();
    until("a and b to write their entries", || {
        durable_stats(&a).directory_writes >= 4 && durable_stats(&b).directory_writes >= 3
    })
    .await;
    let c = Hub::connect(config(&url, "c", "kv", Some(durable())))
        .await
        .unwrap();
    // At once: no announcement was needed.
    let loaded = durable_stats(&c);
    assert_eq!(loaded.directory_agents_loaded, 5_010);
    assert_eq!(loaded.directory_entries_refused, 2);
    assert!(on_a.iter().all(|x| c.knows(x.id())), "c knows a's agents");
    assert!(on_b.iter().all(|x| c.knows(x.id())), "c knows b's agents");
    // And a message sent at once arrives, once.
    let tx = c.register("tx").unwrap();
    tx.send(on_b[0].id(), b"first".to_vec()).await.unwrap();
    c.flush();
    let mut first = on_b.into_iter().next().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), first.recv())
        .await
        .expect("delivered")
        .unwrap();
    assert_eq!(got.payload().bytes().unwrap().as_ref(), b"first");
    // A goodbye removes a hub's entries: a hub started after it does not learn its agents.
    b.shutdown().await.unwrap();
    let d = Hub::connect(config(&url, "d", "kv", Some(durable())))
        .await
        .unwrap();
    assert!(!d.knows(first.id()), "b said goodbye");
    assert!(on_a.iter().all(|x| d.knows(x.id())));
    // c's one agent may or may not have been written yet; a's are all there.
    assert!(durable_stats(&d).directory_agents_loaded >= 5_000);
    for hub in [a, c, d] {
        hub.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_messages_become_dead_letters_after_max_deliver_and_replay_delivers_them() {
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let url = server.url();
    let a = Hub::connect(config(&url, "a", "dlq", Some(durable())))
        .await
        .unwrap();
    let mut b_config = config(&url, "b", "dlq", Some(durable()));
    // One message fits; the rest find the mailbox full on every delivery.
    b_config.mailbox_capacity = 1;
    b_config.overflow = swarmbus::OverflowPolicy::Reject;
    let b = Hub::connect(b_config).await.unwrap();
    let tx = a.register("tx").unwrap();
    let mut rx = b.register("rx").unwrap();
    until("a to learn rx", || a.knows(rx.id())).await;
    for i in 0..5u8 {
        tx.send(rx.id(), vec![i]).await.unwrap();
    }
    a.flush();
    until("four dead letters", || b.dead_letters().len() == 4).await;
    let letters = b.dead_letters();
    assert!(
        letters.iter().all(|l| l.reason() == "mailbox_full"),
        "{letters:?}"
    );
    until(
        "the dead letters published to the dead-letter stream",
        || durable_stats(&b).dead_letters_published == 4,
    )
    .await;
    // Each undeliverable frame came max_deliver (3) times, handed back before the last.
    let stats = durable_stats(&b);
    assert!(stats.redelivered >= 2 && stats.naks >= 2, "{stats:?}");
    // The dead-letter stream has them, with their reason.
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut dlq = js.get_stream("SWARMBUS_dlq_DLQ").await.unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, 4);
    let last = dlq
        .get_last_raw_message_by_subject("swarmbus.dlq.dlq.b")
        .await
        .unwrap();
    let reason = last
        .headers
        .get("Swarmbus-Reason")
        .map(|v| v.as_str().to_string());
    assert_eq!(reason.as_deref(), Some("mailbox_full"));
    // The agent reads; a replay delivers the four, once each, in order.
    let first = rx.recv().await.unwrap();
    assert_eq!(&*first.payload().bytes().unwrap(), &[0]);
    drop(first);
    let mut got = Vec::new();
    for _ in 0..4 {
        // Room for one at a time: replay what fits, read it.
        let replayed = b.replay_dead_letters(None, None);
        assert!(replayed.sent >= 1, "{replayed:?}");
        let env = rx.recv().await.unwrap();
        got.push(env.payload().bytes().unwrap()[0]);
    }
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert!(b.dead_letters().is_empty());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_in_a_slow_agents_mailbox_are_not_delivered_again() {
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let url = server.url();
    let a = Hub::connect(config(&url, "a", "slow", Some(durable())))
        .await
        .unwrap();
    let b = Hub::connect(config(&url, "b", "slow", Some(durable())))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut rx = b.register("rx").unwrap();
    until("a to learn rx", || a.knows(rx.id())).await;
    for i in 0..10u8 {
        tx.send(rx.id(), vec![i]).await.unwrap();
    }
    a.flush();
    until("the messages in rx's mailbox", || {
        b.metrics().messages_delivered == 10
    })
    .await;
    // Three times ack_wait (1 s) unread: reported in progress, never delivered again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = durable_stats(&b);
    assert_eq!(waiting.redelivered, 0, "{waiting:?}");
    assert!(waiting.in_progress >= 2, "{waiting:?}");
    assert_eq!(
        waiting.acks, 0,
        "acknowledged before the agent took them: {waiting:?}"
    );
    for i in 0..10u8 {
        let env = rx.recv().await.unwrap();
        assert_eq!(&*env.payload().bytes().unwrap(), &[i]);
    }
    until("acknowledged once taken", || durable_stats(&b).acks > 0).await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_gone_without_goodbye_drops_out_of_the_directory_bucket_after_its_ttl() {
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let url = server.url();
    let mut short = durable();
    short.directory_ttl = Duration::from_millis(400);
    let e = Hub::connect(config(&url, "e", "ttl", Some(short.clone())))
        .await
        .unwrap();
    let agent = e.register("x").unwrap();
    let id = agent.id();
    until("e to write its entries", || {
        durable_stats(&e).directory_writes >= 4
    })
    .await;
    // While e runs, its entries outlive the ttl (rewritten within half of it).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let f = Hub::connect(config(&url, "f", "ttl", Some(short.clone())))
        .await
        .unwrap();
    assert!(f.knows(id), "e's entry is kept fresh while it runs");
    f.shutdown().await.unwrap();
    // Gone without a goodbye (dropped, as after a crash): nothing rewrites its entries.
    drop(agent);
    drop(e);
    let client = async_nats::connect(&url).await.unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value("SWARMBUS_ttl_DIR")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while kv.get("e").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "e's entry never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let g = Hub::connect(config(&url, "g", "ttl", Some(short)))
        .await
        .unwrap();
    assert!(!g.knows(id), "an expired hub is not learned");
    assert_eq!(durable_stats(&g).directory_agents_loaded, 0);
    g.shutdown().await.unwrap();
}
