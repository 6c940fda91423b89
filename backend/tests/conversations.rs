//! Conversations on one hub: headers (correlation id, content type, deadline) and JSON
//! payloads. The same headers across two hubs are tested in `tests/nats.rs`.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};
use swarmbus::{Error, Hub, HubConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Task {
    id: u32,
    text: String,
    tags: Vec<String>,
}

fn task() -> Task {
    Task {
        id: 7,
        text: "summarize the thread".into(),
        tags: vec!["llm".into(), "short".into()],
    }
}

#[tokio::test]
async fn json_payloads_round_trip_and_a_mismatch_is_a_typed_error() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();

    alice.send_json(bob.id(), &task()).await.unwrap();
    alice.send(bob.id(), "plain text, not JSON").await.unwrap();
    hub.flush();
    let json = bob.recv().await.unwrap();
    assert_eq!(json.content_type(), Some("application/json"));
    assert_eq!(json.json::<Task>().unwrap(), task());
    // The right JSON, the wrong shape.
    assert!(matches!(json.json::<Vec<u32>>(), Err(Error::Decode(_))));
    let plain = bob.recv().await.unwrap();
    assert_eq!(plain.content_type(), None, "raw bytes stay the default");
    match plain.json::<Task>() {
        Err(Error::Decode(e)) => assert!(e.is_syntax(), "{e}"),
        other => panic!("{other:?}"),
    }

    // A value that cannot be JSON is refused before anything is sent.
    let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1u8], 1u8)].into();
    assert!(matches!(
        alice.send_json(bob.id(), &bad).await,
        Err(Error::Encode(_))
    ));
    assert_eq!(hub.metrics().messages_sent, 2);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_carries_its_deadline_and_its_reply_the_conversation_id() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    let callee = tokio::spawn(async move {
        let req = bob.recv().await.unwrap();
        let seen = (
            req.deadline(),
            req.correlation_id(),
            req.id(),
            req.content_type().map(str::to_owned),
        );
        let asked: Task = req.json().unwrap();
        bob.reply(&req, format!("done {}", asked.id)).await.unwrap();
        seen
    });
    let before = SystemTime::now();
    let reply = alice
        .request_json(bob_id, &task(), Duration::from_secs(30))
        .await
        .unwrap();
    let after = SystemTime::now();
    let (deadline, correlation, request_id, content_type) = callee.await.unwrap();
    let deadline = deadline.expect("a request has a deadline");
    assert!(deadline >= before + Duration::from_secs(30), "{deadline:?}");
    assert!(deadline <= after + Duration::from_secs(30), "{deadline:?}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(correlation, request_id, "a request starts its conversation");
    assert_eq!(reply.in_reply_to(), Some(request_id));
    assert_eq!(
        reply.correlation_id(),
        request_id,
        "the reply belongs to it"
    );
    assert!(reply.is_final(), "a reply is the final chunk");
    assert_eq!(reply.deadline(), None);
    assert_eq!(reply.payload().to_text().unwrap(), "done 7");

    // A plain message has none of it.
    let mut carol = hub.register("carol").unwrap();
    let id = alice.send(carol.id(), "hi").await.unwrap();
    hub.flush();
    let env = carol.recv().await.unwrap();
    assert_eq!(env.correlation_id(), id);
    assert_eq!(
        (env.deadline(), env.trace_parent(), env.content_type()),
        (None, None, None)
    );
    assert!(!env.is_final());
    hub.shutdown().await.unwrap();
}
