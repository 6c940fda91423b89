//! The bus as a user relies on it: ordering, counts, flush rules, errors.

use std::collections::HashSet;
use std::time::Duration;
use swarmbus::{
    Agent, AgentId, AgentSender, BudgetPolicy, Envelope, Error, Hub, HubConfig, OverflowPolicy,
    Payload, Priority,
};

fn config() -> HubConfig {
    HubConfig::default()
}

/// Bytes gzip cannot shrink (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn text(env: &Envelope) -> String {
    env.payload().to_text().unwrap()
}

#[test]
fn public_types_are_send_and_sync() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Agent>();
    send::<AgentSender>();
    sync::<AgentSender>();
    send::<Hub>();
    sync::<Hub>();
    send::<Envelope>();
    sync::<Envelope>();
    send::<Error>();
}

#[tokio::test(start_paused = true)]
async fn size_flush_at_exactly_max_messages() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    // b is busy (not receiving): the batch forms.
    for i in 0..49 {
        a.send(b.id(), format!("{i}")).await.unwrap();
    }
    assert_eq!(b.pending(), 0, "49 messages must still wait in the batch");
    assert_eq!(hub.metrics().messages_sent, 0);
    a.send(b.id(), "49").await.unwrap();
    assert_eq!(b.pending(), 50, "the 50th flushes the batch");
    for i in 0..50 {
        assert_eq!(
            text(&b.try_recv().expect("the 50th flushes the batch")),
            i.to_string()
        );
    }
    assert!(b.try_recv().is_none());
    let m = hub.metrics();
    assert_eq!(m.batches_flushed["size"], 1);
    assert_eq!(m.batches_flushed["linger"], 0);
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn linger_flush_after_exactly_linger() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    // b is busy (not receiving): "x" waits in the open batch for at most the linger.
    a.send(b.id(), "x").await.unwrap();
    tokio::time::sleep(Duration::from_micros(9_900)).await;
    assert_eq!(b.pending(), 0, "flushed before the linger elapsed");
    tokio::time::sleep(Duration::from_micros(200)).await;
    assert_eq!(b.pending(), 1, "flushed by linger");
    let env = b.try_recv().expect("flushed by linger");
    assert_eq!(text(&env), "x");
    assert_eq!(hub.metrics().batches_flushed["linger"], 1);
    // A recipient that asks for messages takes the open batch at once: the linger is an
    // upper bound, never the wait of a recipient that is ready.
    a.send(b.id(), "y").await.unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(text(&b.recv().await.unwrap()), "y");
    assert_eq!(started.elapsed(), Duration::ZERO);
    let m = hub.metrics();
    assert_eq!(m.batches_flushed["waiting"], 1);
    assert_eq!(m.batches_flushed["linger"], 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn critical_skips_the_linger_and_overtakes() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let c = hub.register("c").unwrap();
    let mut b = hub.register("b").unwrap();
    // c's normal message is already queued in b's mailbox.
    c.send(b.id(), "queued-normal").await.unwrap();
    hub.flush();
    a.send(b.id(), "first").await.unwrap();
    a.send_with(b.id(), "urgent", Priority::Critical)
        .await
        .unwrap();
    // No time has passed: the critical message flushed a's batch.
    assert_eq!(text(&b.try_recv().unwrap()), "urgent");
    assert_eq!(text(&b.try_recv().unwrap()), "queued-normal");
    assert_eq!(text(&b.try_recv().unwrap()), "first");
    assert_eq!(hub.metrics().batches_flushed["priority"], 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_per_pair_with_many_concurrent_senders() {
    const SENDERS: usize = 16;
    const EACH: u32 = 5_000;
    let hub = Hub::start(config()).unwrap();
    let mut rx = hub.register("rx").unwrap();
    let to = rx.id();
    let mut tasks = Vec::new();
    let mut ids = Vec::new();
    for s in 0..SENDERS {
        let agent = hub.register(format!("s{s}")).unwrap();
        ids.push(agent.id());
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                // Mixed payload sizes so some are compressed; order must not care.
                let mut body = i.to_be_bytes().to_vec();
                if i % 97 == 0 {
                    body.extend(std::iter::repeat_n(b'z', 2000));
                }
                agent.send(to, body).await.unwrap();
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            agent
        }));
    }
    let mut next = std::collections::HashMap::<AgentId, u32>::new();
    let mut got = 0;
    while got < SENDERS * EACH as usize {
        let env = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("messages stopped arriving")
            .unwrap();
        let bytes = env.payload().bytes().unwrap();
        let i = u32::from_be_bytes(bytes[..4].try_into().unwrap());
        let expected = next.entry(env.from()).or_insert(0);
        assert_eq!(i, *expected, "out of order from {}", env.from());
        *expected += 1;
        got += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(next.values().all(|&n| n == EACH));
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
    assert_eq!(report.sent, (SENDERS * EACH as usize) as u64);
}

/// Every local payload over `compress_over` compressed (`compress_backlog: 0`), as for a
/// recipient with a backlog or a remote one.
fn compressing() -> HubConfig {
    let mut c = config();
    c.compress_backlog = 0;
    c
}

#[tokio::test]
async fn compression_threshold_is_strictly_over_1024() {
    let hub = Hub::start(compressing()).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    let at = vec![b'a'; 1024];
    let over = vec![b'a'; 1025];
    a.send(b.id(), at.clone()).await.unwrap();
    a.send(b.id(), over.clone()).await.unwrap();
    hub.flush();
    let e1 = b.recv().await.unwrap();
    let e2 = b.recv().await.unwrap();
    assert!(!e1.payload().is_compressed());
    assert!(e2.payload().is_compressed());
    assert!(e2.payload().wire_len() < 100);
    assert_eq!(e2.payload().len(), 1025);
    assert_eq!(&*e1.payload().bytes().unwrap(), &at[..]);
    assert_eq!(&*e2.payload().bytes().unwrap(), &over[..]);
    let m = hub.metrics();
    assert_eq!(m.compressed_messages, 1);
    assert!(m.compression_ratio > 1.5);
    hub.shutdown().await.unwrap();
}

/// Local delivery shares the payload's bytes: a recipient without a backlog gets them raw,
/// and nothing is spent on gzip.
#[tokio::test]
async fn a_local_send_without_a_backlog_is_not_compressed() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    let big = vec![b'a'; 64 * 1024];
    a.send(b.id(), big.clone()).await.unwrap();
    let env = b.recv().await.unwrap();
    assert!(!env.payload().is_compressed());
    assert_eq!(&*env.payload().bytes().unwrap(), &big[..]);
    let m = hub.metrics();
    assert_eq!((m.compressed_messages, m.incompressible_messages), (0, 0));
    hub.shutdown().await.unwrap();
}

/// A payload that joins a backlog of `compress_backlog` messages is compressed: it waits,
/// and gzip saves the memory it waits in.
#[tokio::test]
async fn a_payload_joining_a_backlog_is_compressed() {
    let mut cfg = config();
    cfg.compress_backlog = 100;
    let hub = Hub::start(cfg).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    for i in 0..100u32 {
        a.send(b.id(), i.to_be_bytes().to_vec()).await.unwrap();
    }
    hub.flush();
    assert_eq!(b.pending(), 100);
    let big = vec![b'z'; 4096];
    a.send(b.id(), big.clone()).await.unwrap();
    for _ in 0..100 {
        b.recv().await.unwrap();
    }
    let env = b.recv().await.unwrap();
    assert!(env.payload().is_compressed());
    assert_eq!(&*env.payload().bytes().unwrap(), &big[..]);
    assert_eq!(hub.metrics().compressed_messages, 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn incompressible_data_stays_raw() {
    let hub = Hub::start(compressing()).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    let noise = noise(8192);
    a.send(b.id(), noise.clone()).await.unwrap();
    hub.flush();
    let env = b.recv().await.unwrap();
    assert!(!env.payload().is_compressed());
    assert_eq!(&*env.payload().bytes().unwrap(), &noise[..]);
    assert_eq!(hub.metrics().incompressible_messages, 1);
    hub.shutdown().await.unwrap();
}

#[test]
fn corrupt_compressed_payload_is_an_error() {
    let p = Payload::from_compressed(vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 100);
    assert!(matches!(p.bytes(), Err(Error::CorruptPayload(_))));
    // A "zip bomb" claiming a huge size is refused by the declared-length bound.
    let p = Payload::from_compressed(vec![0u8; 32], usize::MAX);
    assert!(matches!(p.bytes(), Err(Error::CorruptPayload(_))));
}

#[tokio::test]
async fn broadcast_and_topics_reach_exactly_the_right_set() {
    let hub = Hub::start(config()).unwrap();
    let sender = hub.register("sender").unwrap();
    let mut agents: Vec<Agent> = (0..20)
        .map(|i| hub.register(format!("a{i}")).unwrap())
        .collect();
    for a in agents.iter().step_by(3) {
        a.subscribe("plans").unwrap();
        a.subscribe("plans").unwrap(); // idempotent
    }
    agents[3].unsubscribe("plans");
    sender.subscribe("plans").unwrap(); // a sender does not hear itself
    let subscribers: HashSet<AgentId> = agents
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0 && *i != 3)
        .map(|(_, a)| a.id())
        .collect();

    assert_eq!(sender.broadcast("all").await.unwrap(), 20);
    assert_eq!(
        sender.publish("plans", "step 1").await.unwrap(),
        subscribers.len()
    );
    assert_eq!(sender.publish("nobody-listens", "x").await.unwrap(), 0);
    hub.flush();

    let mut got_topic = HashSet::new();
    for a in agents.iter_mut() {
        let first = a.recv().await.unwrap();
        assert_eq!(text(&first), "all");
        assert_eq!(first.topic(), None);
        if let Some(env) = a.try_recv() {
            assert_eq!(env.topic(), Some("plans"));
            assert_eq!(text(&env), "step 1");
            got_topic.insert(a.id());
        }
        assert!(a.try_recv().is_none());
    }
    assert_eq!(got_topic, subscribers);
    assert!(matches!(
        sender.publish("", "x").await,
        Err(Error::InvalidTopic(_))
    ));
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn topic_names_follow_one_rule_with_or_without_nats() {
    // The same names NATS refuses are refused by a hub alone, so a topic that works here
    // keeps working once the hub joins a swarm.
    let hub = Hub::start(config()).unwrap();
    let agent = hub.register("a").unwrap();
    for bad in ["a.*", ">", "a.>", "a..b", ".a", "a.", "x y"] {
        assert!(
            matches!(agent.subscribe(bad), Err(Error::InvalidTopic(_))),
            "subscribe {bad:?}"
        );
        assert!(
            matches!(agent.publish(bad, "x").await, Err(Error::InvalidTopic(_))),
            "publish {bad:?}"
        );
    }
    agent.subscribe("plans.step-1").unwrap();
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn fan_out_shares_one_payload() {
    let hub = Hub::start(config()).unwrap();
    let sender = hub.register("s").unwrap();
    let mut a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    sender.broadcast(vec![7u8; 100]).await.unwrap();
    hub.flush();
    let ea = a.recv().await.unwrap();
    let eb = b.recv().await.unwrap();
    let pa = ea.payload().wire_bytes();
    let pb = eb.payload().wire_bytes();
    assert_eq!(pa.as_ptr(), pb.as_ptr(), "each recipient got a copy");
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn request_reply_and_timeout() {
    let hub = Hub::start(config()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    let server = tokio::spawn(async move {
        let mut answered = 0;
        while let Some(env) = bob.recv().await {
            if text(&env) == "ignore me" {
                continue;
            }
            assert!(env.is_request());
            bob.reply(&env, format!("re: {}", text(&env)))
                .await
                .unwrap();
            answered += 1;
        }
        answered
    });
    let started = tokio::time::Instant::now();
    let reply = alice
        .request(bob_id, "ping", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(text(&reply), "re: ping");
    assert_eq!(reply.from(), bob_id);
    assert!(reply.in_reply_to().is_some());
    // Neither leg waited out the 10 ms linger.
    assert!(started.elapsed() < Duration::from_millis(10));

    let err = alice
        .request(bob_id, "ignore me", Duration::from_millis(50))
        .await;
    assert!(matches!(err, Err(Error::RequestTimeout { .. })), "{err:?}");
    assert_eq!(hub.metrics().send_errors["request_timeout"], 1);

    let unknown = alice
        .request(AgentId::new_v4(), "x", Duration::from_secs(1))
        .await;
    assert!(matches!(unknown, Err(Error::UnknownAgent(_))));
    hub.shutdown().await.unwrap();
    assert_eq!(server.await.unwrap(), 1);
}

#[tokio::test]
async fn reply_to_a_non_request_is_an_error() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    a.send_with(b.id(), "x", Priority::Critical).await.unwrap();
    let env = b.recv().await.unwrap();
    assert!(matches!(
        b.reply(&env, "y").await,
        Err(Error::NotARequest(_))
    ));
    hub.shutdown().await.unwrap();
}

fn small_mailbox(policy: OverflowPolicy) -> HubConfig {
    let mut c = config();
    c.mailbox_capacity = 10;
    c.overflow = policy;
    c
}

#[tokio::test]
async fn overflow_reject() {
    let hub = Hub::start(small_mailbox(OverflowPolicy::Reject)).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    for i in 0..10 {
        a.send(b.id(), format!("{i}")).await.unwrap();
    }
    assert!(matches!(a.send(b.id(), "11th").await, Err(Error::MailboxFull(id)) if id == b.id()));
    assert!(matches!(
        a.try_send(b.id(), "11th"),
        Err(Error::MailboxFull(_))
    ));
    // Receiving makes room again.
    assert_eq!(text(&b.recv().await.unwrap()), "0");
    a.send(b.id(), "10").await.unwrap();
    assert_eq!(hub.metrics().send_errors["mailbox_full"], 2);
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn overflow_block_waits_then_times_out() {
    let timeout = Duration::from_millis(100);
    let hub = Hub::start(small_mailbox(OverflowPolicy::Block { timeout })).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    for i in 0..10 {
        a.send(b.id(), format!("{i}")).await.unwrap();
    }
    // Nobody drains: the 11th waits the whole timeout, then fails.
    let started = tokio::time::Instant::now();
    assert!(matches!(
        a.send(b.id(), "x").await,
        Err(Error::MailboxFull(_))
    ));
    assert_eq!(started.elapsed(), timeout);
    // try_send never waits.
    assert!(matches!(
        a.try_send(b.id(), "x"),
        Err(Error::MailboxFull(_))
    ));

    // A receiver that drains later unblocks the sender.
    let to = b.id();
    let sender = tokio::spawn(async move {
        a.send(to, "late").await.unwrap();
        a
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!sender.is_finished(), "sender should be blocked");
    let mut seen = Vec::new();
    for _ in 0..11 {
        seen.push(text(&b.recv().await.unwrap()));
    }
    assert_eq!(seen.last().unwrap(), "late");
    sender.await.unwrap();
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn overflow_drop_oldest_counts_every_eviction() {
    let hub = Hub::start(small_mailbox(OverflowPolicy::DropOldest)).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    for i in 0..25 {
        a.send(b.id(), format!("{i}")).await.unwrap();
        hub.flush();
    }
    a.send_with(b.id(), "low", Priority::Low).await.unwrap();
    a.send_with(b.id(), "crit", Priority::Critical)
        .await
        .unwrap();
    // 27 in, capacity 10: the lowest priority goes first, then the oldest normals.
    let mut got = Vec::new();
    while let Some(env) = b.try_recv() {
        got.push(text(&env));
    }
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], "crit");
    assert!(!got.contains(&"low".to_string()));
    assert_eq!(
        got[1..],
        (16..25).map(|i| i.to_string()).collect::<Vec<_>>()[..]
    );
    assert_eq!(hub.metrics().messages_dropped["drop_oldest"], 17);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn errors_are_typed_and_counted() {
    let mut c = config();
    c.max_payload = 1000;
    let hub = Hub::start(c).unwrap();
    let a = hub.register("a").unwrap();
    let b = hub.register("b").unwrap();
    let nobody = AgentId::new_v4();
    assert!(matches!(a.send(nobody, "x").await, Err(Error::UnknownAgent(id)) if id == nobody));
    assert!(matches!(
        a.send(b.id(), vec![0u8; 1001]).await,
        Err(Error::PayloadTooLarge {
            size: 1001,
            max: 1000
        })
    ));
    let b_id = b.id();
    drop(b);
    assert!(matches!(
        a.send(b_id, "x").await,
        Err(Error::UnknownAgent(_))
    ));
    hub.shutdown().await.unwrap();
    assert!(matches!(
        a.send(a.id(), "x").await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(hub.register("late"), Err(Error::ShuttingDown)));
    let m = hub.metrics();
    assert_eq!(m.send_errors["unknown_agent"], 2);
    assert_eq!(m.send_errors["payload_too_large"], 1);
    assert_eq!(m.send_errors["shutting_down"], 2);
}

#[tokio::test]
async fn leaving_agent_drops_are_counted() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let b = hub.register("b").unwrap();
    for _ in 0..5 {
        a.send(b.id(), "x").await.unwrap();
    }
    hub.flush();
    for _ in 0..3 {
        a.send(b.id(), "y").await.unwrap();
    }
    drop(b); // 5 queued in its mailbox; 3 still in a's batch
    hub.flush();
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
    assert_eq!(hub.metrics().messages_dropped["recipient_gone"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_100k_in_flight_loses_none() {
    const N: usize = 100_000;
    let hub = Hub::start(config()).unwrap();
    let mut receivers: Vec<Agent> = (0..4)
        .map(|i| hub.register(format!("r{i}")).unwrap())
        .collect();
    let targets: Vec<AgentId> = receivers.iter().map(|r| r.id()).collect();
    let mut senders = Vec::new();
    for s in 0..4 {
        let agent = hub.register(format!("s{s}")).unwrap();
        let targets = targets.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..N / 4 {
                agent.send(targets[i % 4], "m").await.unwrap();
            }
            agent
        }));
    }
    let mut keep = Vec::new();
    for s in senders {
        keep.push(s.await.unwrap());
    }
    // Most of the last messages still sit in batches: shutdown must flush them all.
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.sent, N as u64);
    assert_eq!(report.delivered, N as u64);
    assert_eq!(report.undelivered, 0);
    assert_eq!(report.dropped, 0);
    let mut got = 0;
    for r in receivers.iter_mut() {
        while let Some(_env) = r.recv().await {
            got += 1;
        }
    }
    assert_eq!(got, N);
    assert!(matches!(
        keep[0].send(targets[0], "x").await,
        Err(Error::ShuttingDown)
    ));
}

#[tokio::test]
async fn recv_returns_none_after_shutdown_and_drain() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    let waiting = tokio::spawn(async move {
        let mut n = 0;
        while b.recv().await.is_some() {
            n += 1;
        }
        n
    });
    a.send(a.id(), "self").await.unwrap();
    let to = hub.register("c").unwrap();
    a.send(to.id(), "c").await.unwrap();
    hub.shutdown().await.unwrap();
    assert_eq!(waiting.await.unwrap(), 0);
    let again = hub.shutdown().await.unwrap();
    assert_eq!(again.delivered, 2);
}

#[tokio::test]
async fn sender_handles_share_ordering() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let tx = a.sender();
    let mut b = hub.register("b").unwrap();
    a.send(b.id(), "1").await.unwrap();
    tx.send(b.id(), "2").await.unwrap();
    a.send(b.id(), "3").await.unwrap();
    hub.flush();
    let got: Vec<String> = (0..3).map(|_| text(&b.try_recv().unwrap())).collect();
    assert_eq!(got, ["1", "2", "3"]);
    assert_eq!(tx.id(), a.id());
    hub.shutdown().await.unwrap();
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    assert!(matches!(Hub::start(config()), Err(Error::NoRuntime)));
}

/// Echoing mixed payloads (compressible JSON and incompressible bytes) through request/reply
/// on many tasks: every reply is the request's bytes. (The zlib-rs panic this workload once
/// hit shows only in release builds; `scripts/smoke.sh` runs it there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_echo_of_mixed_payloads() {
    let hub = Hub::start(config()).unwrap();
    let noise = noise(4096);
    let json = "{\"task\":1,\"agent\":\"planner-3\",\"status\":\"ok\"},".repeat(48);
    let payloads: Vec<Vec<u8>> = vec![
        vec![b'x'; 64],
        json[..512].into(),
        json.clone().into(),
        noise,
    ];
    let mut responders = Vec::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut agent = hub.register(format!("r{i}")).unwrap();
        ids.push(agent.id());
        responders.push(tokio::spawn(async move {
            while let Some(env) = agent.recv().await {
                if env.is_request() {
                    let _ = agent.reply(&env, env.payload().clone()).await;
                }
            }
        }));
    }
    let mut requesters = Vec::new();
    for r in 0..8 {
        let agent = hub.register(format!("q{r}")).unwrap();
        let ids = ids.clone();
        let payloads = payloads.clone();
        requesters.push(tokio::spawn(async move {
            for i in 0..300usize {
                let body = payloads[(i + r) % payloads.len()].clone();
                let reply = agent
                    .request(ids[i % ids.len()], body.clone(), Duration::from_secs(5))
                    .await
                    .unwrap();
                assert_eq!(&*reply.payload().bytes().unwrap(), &body[..]);
            }
        }));
    }
    for r in requesters {
        r.await.unwrap();
    }
    // Local requests and replies share their bytes: nothing was worth compressing.
    assert_eq!(hub.metrics().compressed_messages, 0);
    hub.shutdown().await.unwrap();
    for r in responders {
        r.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shutdowns_agree() {
    let mut c = config();
    c.linger = Duration::from_secs(60); // only shutdown flushes the open batch
    let hub = Hub::start(c).unwrap();
    let a = hub.register("a").unwrap();
    let b = hub.register("b").unwrap();
    // 1,010 messages: 20 full batches plus one open batch for shutdown to flush.
    for _ in 0..1010 {
        a.send(b.id(), "x").await.unwrap();
    }
    // A unit that holds the worker pool keeps the first shutdown in progress.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let unit = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.submit(Priority::Low, move || held.recv()).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let h1 = hub.clone();
    let first = tokio::spawn(async move { h1.shutdown().await.unwrap() });
    while !hub.is_shutting_down() {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let h2 = hub.clone();
    let second = tokio::spawn(async move { h2.shutdown().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    release.send(()).unwrap();
    let (r1, r2) = (first.await.unwrap(), second.await.unwrap());
    assert!(unit.await.unwrap().is_ok());
    assert_eq!(r1.flushed_at_shutdown, 1);
    assert_eq!(
        r1, r2,
        "the second shutdown must wait for and return the first's report"
    );
    assert_eq!((r1.delivered, r1.undelivered), (1010, 0));
}

/// A compressed payload is bounded by its stored size too, not only by the size it declares:
/// 20 MiB of "gzip" that claims to expand to 10 bytes is refused before it is queued.
#[tokio::test]
async fn compressed_payload_is_bounded_by_its_stored_size() {
    let hub = Hub::start(config()).unwrap();
    let a = hub.register("a").unwrap();
    let b = hub.register("b").unwrap();
    let max = hub.config().max_payload;
    let huge = Payload::from_compressed(vec![0u8; 20 * 1024 * 1024], 10);
    let err = a.send(b.id(), huge.clone()).await;
    assert!(
        matches!(err, Err(Error::PayloadTooLarge { size, max: m }) if size == 20 * 1024 * 1024 && m == max),
        "{err:?}"
    );
    assert!(matches!(
        a.try_send(b.id(), huge.clone()),
        Err(Error::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        a.broadcast(huge).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    // Under max_payload but far beyond what 1,000 bytes can compress to: a lie, refused.
    let padded = Payload::from_compressed(vec![0u8; 64 * 1024], 1000);
    assert!(matches!(
        a.send(b.id(), padded).await,
        Err(Error::PayloadTooLarge { size: 65_536, .. })
    ));
    assert_eq!(hub.metrics().send_errors["payload_too_large"], 4);
    assert_eq!(hub.metrics().messages_sent, 0);
    hub.shutdown().await.unwrap();
}

/// A linger or Block timeout of 10^19 s used to pass `validate` and then panic on the first
/// send (`Instant + Duration` overflow); now `Hub::start` refuses it by name.
#[tokio::test]
async fn absurd_durations_are_refused_at_start() {
    let huge = Duration::from_secs(10_000_000_000_000_000_000);
    let mut linger = config();
    linger.linger = huge;
    let mut block = small_mailbox(OverflowPolicy::Block { timeout: huge });
    block.mailbox_capacity = 1;
    for (field, c) in [("linger", linger), ("overflow.timeout", block)] {
        match Hub::start(c) {
            Err(Error::Config(m)) => assert!(m.contains(field), "{m}"),
            Err(e) => panic!("{field}: {e}"),
            Ok(hub) => {
                let a = hub.register("a").unwrap();
                let b = hub.register("b").unwrap();
                let _ = a.send(b.id(), "1").await;
                let _ = a.send(b.id(), "2").await;
                panic!("{field}: a hub started and sent with it");
            }
        }
    }
}

/// A `request` future dropped before its reply (a `select!` whose other branch won) leaves
/// nothing behind: 3,000,000 of them used to keep 702 MB of pending entries.
#[tokio::test(start_paused = true)]
async fn dropped_requests_leave_no_pending_entry() {
    let hub = Hub::start(config()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap(); // never replies
    for _ in 0..1_000 {
        let abandoned = tokio::time::timeout(
            Duration::from_millis(2),
            alice.request(bob.id(), "ping", Duration::from_secs(3600)),
        )
        .await;
        assert!(abandoned.is_err(), "bob never answers");
    }
    assert_eq!(hub.metrics().pending_requests, 0);
    // Answered and timed-out requests leave no entry either.
    let to = bob.id();
    let answered = tokio::spawn(async move {
        let env = bob.recv().await.unwrap();
        bob.reply(&env, "late").await.unwrap(); // an abandoned one: orphaned
        loop {
            let env = bob.recv().await.unwrap();
            if env.payload().to_text().unwrap() == "answer me" {
                bob.reply(&env, "pong").await.unwrap();
                return bob;
            }
        }
    });
    let reply = alice
        .request(to, "answer me", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(text(&reply), "pong");
    let _bob = answered.await.unwrap();
    assert!(matches!(
        alice.request(to, "ignored", Duration::from_millis(5)).await,
        Err(Error::RequestTimeout { .. })
    ));
    let m = hub.metrics();
    assert_eq!(m.pending_requests, 0);
    assert_eq!(m.messages_dropped["reply_orphaned"], 1);
    hub.shutdown().await.unwrap();
}

/// A broadcast to 100 full mailboxes under `Block { 100 ms }` waits 100 ms in all, not
/// 100 ms per full recipient one after another (10.1 s before).
#[tokio::test(start_paused = true)]
async fn a_fan_out_waits_one_timeout_for_all_full_recipients() {
    let timeout = Duration::from_millis(100);
    let mut c = small_mailbox(OverflowPolicy::Block { timeout });
    c.mailbox_capacity = 1;
    let hub = Hub::start(c).unwrap();
    let sender = hub.register("sender").unwrap();
    let idle: Vec<Agent> = (0..100)
        .map(|i| hub.register(format!("idle{i}")).unwrap())
        .collect();
    for agent in &idle {
        sender.send(agent.id(), "fills it").await.unwrap();
    }
    let started = tokio::time::Instant::now();
    assert_eq!(sender.broadcast("to everyone").await.unwrap(), 0);
    let waited = started.elapsed();
    assert!(waited >= timeout, "gave up before the timeout: {waited:?}");
    assert!(
        waited < Duration::from_millis(200),
        "one deadline for the whole fan-out, waited {waited:?}"
    );
    let m = hub.metrics();
    assert_eq!(m.messages_dropped["mailbox_full"], 100);
    // The broadcast itself succeeded: its drops are not also call errors.
    assert_eq!(m.send_errors["mailbox_full"], 0);
    drop(idle);
    hub.shutdown().await.unwrap();
}

/// A saturated `DropOldest` mailbox keeps the newest messages, in order, in full batches:
/// saturation used to turn every send into its own flushed batch.
#[tokio::test(start_paused = true)]
async fn drop_oldest_under_saturation_keeps_the_newest_in_full_batches() {
    const SENT: u32 = 10_000;
    let mut c = small_mailbox(OverflowPolicy::DropOldest);
    c.mailbox_capacity = 100;
    let hub = Hub::start(c).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    for i in 0..SENT {
        a.send(b.id(), format!("{i}")).await.unwrap();
    }
    hub.flush();
    let m = hub.metrics();
    assert_eq!(m.messages_dropped["drop_oldest"], u64::from(SENT) - 100);
    assert!(
        m.batches_total() <= u64::from(SENT) / 50 + 2,
        "{} batches for {SENT} messages",
        m.batches_total()
    );
    let mut got = Vec::new();
    while let Some(env) = b.try_recv() {
        got.push(text(&env));
    }
    let newest: Vec<String> = (SENT - 100..SENT).map(|i| i.to_string()).collect();
    assert_eq!(got, newest);
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
    assert_eq!(report.sent, u64::from(SENT));
}

fn small_budget(policy: BudgetPolicy) -> HubConfig {
    let mut c = config();
    c.max_payload = 16 * 1024;
    c.max_queued_bytes = 64 * 1024;
    c.budget_policy = policy;
    c
}

/// The hub-wide budget bounds a local broadcast to 1,000 idle agents: recipients over it
/// are dropped (`memory_budget`), and later sends fail with `Overloaded` until agents
/// receive.
#[tokio::test(start_paused = true)]
async fn a_broadcast_to_idle_agents_stays_within_the_budget() {
    let hub = Hub::start(small_budget(BudgetPolicy::Reject)).unwrap();
    let sender = hub.register("sender").unwrap();
    let mut idle: Vec<Agent> = (0..1_000)
        .map(|i| hub.register(format!("idle{i}")).unwrap())
        .collect();
    let accepted = sender.broadcast(noise(10_000)).await.unwrap();
    assert!(accepted > 0 && accepted < 1_000, "{accepted}");
    let m = hub.metrics();
    assert!(
        m.queued_bytes <= 64 * 1024,
        "{} queued bytes",
        m.queued_bytes
    );
    assert_eq!(m.messages_dropped["memory_budget"], 1_000 - accepted as u64);
    assert_eq!(
        m.send_errors["overloaded"], 0,
        "the broadcast itself succeeded"
    );
    // A direct send of the same size does not fit either.
    let to = idle[0].id();
    assert!(matches!(
        sender.send(to, noise(10_000)).await,
        Err(Error::Overloaded {
            max_queued_bytes: 65_536
        })
    ));
    assert!(matches!(
        sender.try_send(to, noise(10_000)),
        Err(Error::Overloaded { .. })
    ));
    assert_eq!(hub.metrics().send_errors["overloaded"], 2);
    // Receiving makes room again.
    hub.flush();
    let mut drained = 0;
    for agent in idle.iter_mut() {
        while agent.try_recv().is_some() {
            drained += 1;
        }
    }
    assert_eq!(drained, accepted);
    assert_eq!(hub.metrics().queued_bytes, 0);
    sender.send(to, noise(10_000)).await.unwrap();
    let report = hub.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0);
    assert_eq!(report.sent, accepted as u64 + 1);
}

/// Under `BudgetPolicy::Block` a local send waits for queued bytes to be received, up to
/// the timeout, like a send to a full mailbox.
#[tokio::test(start_paused = true)]
async fn a_send_over_the_budget_blocks_until_received_or_timeout() {
    let timeout = Duration::from_millis(100);
    let hub = Hub::start(small_budget(BudgetPolicy::Block { timeout })).unwrap();
    let a = hub.register("a").unwrap();
    let mut b = hub.register("b").unwrap();
    // 6 × (10,000 + 128) bytes fit in 64 KiB; the 7th does not.
    for _ in 0..6 {
        a.send(b.id(), noise(10_000)).await.unwrap();
    }
    let started = tokio::time::Instant::now();
    assert!(matches!(
        a.send(b.id(), noise(10_000)).await,
        Err(Error::Overloaded { .. })
    ));
    assert_eq!(started.elapsed(), timeout);
    let to = b.id();
    let blocked = tokio::spawn(async move {
        a.send(to, noise(10_000)).await.unwrap();
        a
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!blocked.is_finished(), "the sender should wait for room");
    b.recv().await.unwrap(); // one received: its 10,128 bytes are released
    let _a = blocked.await.unwrap();
    assert!(hub.metrics().queued_bytes <= 64 * 1024);
    hub.shutdown().await.unwrap();
}
