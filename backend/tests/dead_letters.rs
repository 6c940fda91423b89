//! Dead letters on one hub: every message the hub drops while holding it is kept once, with
//! the reason it is counted under, within the store's bounds; a replay sends them again.
//! The HTTP route and the `swarmbus dlq` commands are tested in `tests/http.rs`.

use std::time::Duration;
use swarmbus::{Agent, Hub, HubConfig, MetricsSnapshot, OverflowPolicy, Payload, Priority};

/// A hub whose mailboxes hold `capacity` messages and evict the oldest (`tweak` sets the
/// rest), with alice and bob.
fn evicting(capacity: usize, tweak: impl FnOnce(&mut HubConfig)) -> (Hub, Agent, Agent) {
    let mut config = HubConfig::default();
    config.mailbox_capacity = capacity;
    config.overflow = OverflowPolicy::DropOldest;
    tweak(&mut config);
    let hub = Hub::start(config).unwrap();
    let alice = hub.register("alice").unwrap();
    let bob = hub.register("bob").unwrap();
    (hub, alice, bob)
}

/// Sends each payload from alice to bob in a batch of its own, so each one past the
/// mailbox's capacity evicts one.
async fn send_each(
    hub: &Hub,
    alice: &Agent,
    bob: &Agent,
    payloads: impl IntoIterator<Item = Payload>,
) {
    for p in payloads {
        alice.send(bob.id(), p).await.unwrap();
        hub.flush();
    }
}

fn drops(s: &MetricsSnapshot, reason: &str) -> u64 {
    s.messages_dropped[reason]
}

fn text(letter: &swarmbus::DeadLetter) -> String {
    String::from_utf8(letter.envelope().payload().bytes().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn drop_oldest_evictions_are_dead_letters_newest_first() {
    let (hub, alice, mut bob) = evicting(2, |_| {});
    send_each(
        &hub,
        &alice,
        &bob,
        (0..5).map(|i| Payload::from(format!("m{i}"))),
    )
    .await;
    let dead = hub.dead_letters();
    let words: Vec<String> = dead.iter().map(text).collect();
    assert_eq!(
        words,
        ["m2", "m1", "m0"],
        "each eviction once, newest first"
    );
    for d in &dead {
        assert_eq!(d.reason(), "drop_oldest");
        assert_eq!(d.envelope().from(), alice.id());
        assert_eq!(d.envelope().to(), bob.id());
        assert!(!d.payload_dropped());
    }
    assert!(dead[0].at() >= dead[2].at());
    let s = hub.metrics();
    assert_eq!(drops(&s, "drop_oldest"), 3);
    assert_eq!(s.dead_letters, 3);
    assert_eq!(s.dead_letters_recorded["drop_oldest"], 3);
    // What was kept is what is received: nothing is both delivered and dead.
    assert_eq!(text_of(bob.recv().await.unwrap()), "m3");
    assert_eq!(text_of(bob.recv().await.unwrap()), "m4");
    hub.shutdown().await.unwrap();
}

fn text_of(env: swarmbus::Envelope) -> String {
    String::from_utf8(env.payload().bytes().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn a_recipient_that_leaves_with_unread_messages_leaves_them_as_dead_letters() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    for i in 0..10 {
        alice.send(bob_id, format!("m{i}")).await.unwrap();
    }
    hub.flush();
    // One taken into the agent's hand and read, the rest queued; two more in an open batch.
    assert_eq!(text_of(bob.recv().await.unwrap()), "m0");
    alice.send(bob_id, "late-1").await.unwrap();
    alice.send(bob_id, "late-2").await.unwrap();
    drop(bob);
    let dead = hub.dead_letters();
    let mut words: Vec<String> = dead.iter().map(text).collect();
    words.sort();
    let mut expected: Vec<String> = (1..10).map(|i| format!("m{i}")).collect();
    expected.extend(["late-1".to_string(), "late-2".to_string()]);
    expected.sort();
    assert_eq!(words, expected, "every unread message once");
    assert!(dead.iter().all(|d| d.reason() == "recipient_gone"));
    assert_eq!(drops(&hub.metrics(), "recipient_gone"), 11);
    hub.shutdown().await.unwrap();
}

/// A request `bob` takes in time and that times out for `alice` before he answers.
async fn taken_then_timed_out(
    alice: &swarmbus::Agent,
    bob: &mut swarmbus::Agent,
) -> swarmbus::Envelope {
    let ask = alice.request(bob.id(), "question", Duration::from_millis(200));
    let (asked, req) = tokio::join!(ask, async { bob.recv().await.unwrap() });
    assert!(
        matches!(asked, Err(swarmbus::Error::RequestTimeout { .. })),
        "{asked:?}"
    );
    req
}

#[tokio::test]
async fn an_orphaned_reply_is_a_dead_letter() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let req = taken_then_timed_out(&alice, &mut bob).await;
    bob.reply(&req, "too late").await.unwrap();
    let dead = hub.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason(), "reply_orphaned");
    assert_eq!(text(&dead[0]), "too late");
    assert_eq!(dead[0].envelope().in_reply_to(), Some(req.id()));
    assert_eq!(drops(&hub.metrics(), "reply_orphaned"), 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_past_its_deadline_in_the_mailbox_is_a_dead_letter() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let to = bob.id();
    let _ = alice.request(to, "hurry", Duration::from_millis(10)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    alice.send(to, "after").await.unwrap();
    hub.flush();
    assert_eq!(text_of(bob.recv().await.unwrap()), "after");
    let dead = hub.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason(), "deadline_expired");
    assert!(dead[0].envelope().is_request());
    assert!(dead[0].envelope().deadline().is_some());
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_store_keeps_the_newest_and_counts_what_it_pushes_out() {
    let (hub, alice, bob) = evicting(1, |c| c.dead_letters = 5);
    send_each(
        &hub,
        &alice,
        &bob,
        (0..21).map(|i| Payload::from(format!("m{i:02}"))),
    )
    .await;
    let dead = hub.dead_letters();
    let words: Vec<String> = dead.iter().map(text).collect();
    assert_eq!(words, ["m19", "m18", "m17", "m16", "m15"]);
    let s = hub.metrics();
    assert_eq!(s.dead_letters_recorded["drop_oldest"], 20);
    assert_eq!(s.dead_letters_evicted, 15);
    assert_eq!(s.dead_letters, 5);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn beyond_the_payload_budget_only_the_metadata_is_kept() {
    let (hub, alice, bob) = evicting(1, |c| {
        c.dead_letter_payload_bytes = 100;
        c.compress_over = usize::MAX;
    });
    send_each(
        &hub,
        &alice,
        &bob,
        (0..4u8).map(|i| Payload::from(vec![i; 60])),
    )
    .await;
    let dead = hub.dead_letters();
    assert_eq!(dead.len(), 3);
    // Oldest first: the first kept its 60 bytes; the next two did not fit the 100.
    let oldest = &dead[2];
    assert!(!oldest.payload_dropped());
    assert_eq!(
        &*oldest.envelope().payload().bytes().unwrap(),
        &[0u8; 60][..]
    );
    for d in &dead[..2] {
        assert!(d.payload_dropped());
        assert!(d.envelope().payload().is_empty());
        assert_eq!(d.envelope().from(), alice.id(), "the metadata stays");
    }
    assert_eq!(hub.metrics().dead_letter_payloads_dropped, 2);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn replay_sends_them_again_once_and_keeps_what_fails_again() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    alice
        .send_with(bob_id, "for bob", Priority::High)
        .await
        .unwrap();
    hub.flush();
    drop(bob); // leaves it unread: recipient_gone
    let dead = hub.dead_letters();
    assert_eq!(dead.len(), 1);
    let original = dead[0].envelope().id();

    // The recipient is still gone: refused again, kept.
    let r = hub.replay_dead_letters(None, None);
    assert_eq!((r.sent, r.failed, r.skipped), (0, 1, 0));
    assert_eq!(hub.dead_letters().len(), 1);

    // A reason that matches nothing replays nothing.
    let r = hub.replay_dead_letters(Some("drop_oldest"), None);
    assert_eq!((r.sent, r.failed, r.skipped), (0, 0, 0));

    // To another agent: delivered once, with its id, sender and priority; out of the store.
    let mut carol = hub.register("carol").unwrap();
    let r = hub.replay_dead_letters(Some("recipient_gone"), Some(carol.id()));
    assert_eq!((r.sent, r.failed, r.skipped), (1, 0, 0));
    hub.flush();
    let env = carol.recv().await.unwrap();
    assert_eq!(text_of(env.clone()), "for bob");
    assert_eq!(env.id(), original);
    assert_eq!(env.from(), alice.id());
    assert_eq!(env.priority(), Priority::High);
    assert!(hub.dead_letters().is_empty());
    let again = hub.replay_dead_letters(None, Some(carol.id()));
    assert_eq!(again.sent, 0, "replayed once, not twice");
    assert!(carol.try_recv().is_none());
    let s = hub.metrics();
    assert_eq!(s.dead_letters_replayed["sent"], 1);
    assert_eq!(s.dead_letters_replayed["failed"], 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn replies_are_not_replayed() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let req = taken_then_timed_out(&alice, &mut bob).await;
    bob.reply(&req, "late").await.unwrap();
    let r = hub.replay_dead_letters(None, Some(alice.id()));
    assert_eq!((r.sent, r.failed, r.skipped), (0, 0, 1));
    assert_eq!(hub.dead_letters().len(), 1, "kept for the operator");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_store_still_counts() {
    let (hub, alice, bob) = evicting(1, |c| c.dead_letters = 0);
    send_each(&hub, &alice, &bob, (0..3).map(|_| Payload::from("x"))).await;
    assert!(hub.dead_letters().is_empty());
    let s = hub.metrics();
    assert_eq!(s.dead_letters_recorded["drop_oldest"], 2);
    assert_eq!(drops(&s, "drop_oldest"), 2);
    hub.shutdown().await.unwrap();
}
