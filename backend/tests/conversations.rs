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

use futures_util::StreamExt;
use swarmbus::{Agent, Envelope};

/// The request `agent` receives next, failing after 5 s.
async fn next_request(agent: &mut Agent) -> Envelope {
    let env = tokio::time::timeout(Duration::from_secs(5), agent.recv())
        .await
        .expect("a request within 5 s")
        .expect("open");
    assert!(env.is_request());
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_1000_chunks_arrives_complete_and_in_order() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    let callee = tokio::spawn(async move {
        let req = next_request(&mut bob).await;
        let mut out = bob.respond(&req).unwrap();
        for i in 0..999u32 {
            out.send(i.to_le_bytes().to_vec()).await.unwrap();
        }
        out.finish(999u32.to_le_bytes().to_vec()).await.unwrap();
        req.correlation_id()
    });
    let mut stream = alice
        .request_stream(bob_id, "count", Duration::from_secs(30))
        .await
        .unwrap();
    let id = stream.request_id();
    let mut seen = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.in_reply_to(), Some(id));
        assert_eq!(chunk.correlation_id(), id);
        let bytes = chunk.payload().bytes().unwrap();
        seen.push(u32::from_le_bytes(bytes[..4].try_into().unwrap()));
        assert_eq!(chunk.is_final(), seen.len() == 1000);
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    assert_eq!(callee.await.unwrap(), id);
    let m = hub.metrics();
    assert_eq!(m.chunks, 999);
    assert_eq!(m.open_streams, 0);
    assert_eq!(
        m.cancellations["caller"], 0,
        "a finished stream cancels nothing"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_or_cancelling_the_stream_stops_the_callee() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    let callee = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let req = next_request(&mut bob).await;
            let mut out = bob.respond(&req).unwrap();
            out.send("first").await.unwrap();
            // Busy work that checks for cancellation.
            tokio::time::timeout(Duration::from_secs(5), req.cancelled())
                .await
                .expect("cancelled within 5 s");
            assert!(req.is_cancelled() && out.is_cancelled());
            outcomes.push(out.send("too late").await);
        }
        outcomes
    });
    let mut dropped = alice
        .request_stream(bob_id, "one", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        dropped
            .next()
            .await
            .unwrap()
            .unwrap()
            .payload()
            .to_text()
            .unwrap(),
        "first"
    );
    drop(dropped);
    let mut cancelled = alice
        .request_stream(bob_id, "two", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(cancelled.next().await.unwrap().is_ok());
    cancelled.cancel();
    assert!(cancelled.next().await.is_none(), "a cancelled stream ends");
    let outcomes = callee.await.unwrap();
    assert!(
        outcomes.iter().all(|o| matches!(o, Err(Error::Cancelled))),
        "{outcomes:?}"
    );
    let m = hub.metrics();
    assert_eq!(m.cancellations["caller"], 2);
    assert_eq!(m.open_streams, 0);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_cancels_a_callee_that_ignores_it() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    let callee = tokio::spawn(async move {
        let req = next_request(&mut bob).await;
        let mut out = bob.respond(&req).unwrap();
        // Ignores `cancelled()`: keeps sending until a send fails (bounded: 10 s).
        for _ in 0..1000 {
            if let Err(e) = out.send("tick").await {
                return Some(e);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    });
    let mut stream = alice
        .request_stream(bob_id, "slow", Duration::from_millis(300))
        .await
        .unwrap();
    let mut ticks = 0;
    let end = loop {
        match stream.next().await.expect("ends with an error") {
            Ok(_) => ticks += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(end, Error::RequestTimeout { .. }), "{end:?}");
    assert!(stream.next().await.is_none());
    assert!(ticks > 0);
    let err = callee.await.unwrap().expect("the callee was stopped");
    assert!(matches!(err, Error::DeadlineExceeded), "{err:?}");
    assert_eq!(hub.metrics().cancellations["deadline"], 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_that_fails_or_goes_away_ends_the_stream_with_an_error() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    let callee = tokio::spawn(async move {
        let req = next_request(&mut bob).await;
        let mut out = bob.respond(&req).unwrap();
        out.send("partial").await.unwrap();
        out.fail("model overloaded").await.unwrap();
        let req = next_request(&mut bob).await;
        let mut out = bob.respond(&req).unwrap();
        out.send("partial").await.unwrap();
        drop(out); // a panic, an early return
                   // A plain request answered through a responder gets the final chunk only.
        let req = next_request(&mut bob).await;
        let mut out = bob.respond(&req).unwrap();
        out.send("ignored").await.unwrap();
        out.finish("final").await.unwrap();
        let req = next_request(&mut bob).await;
        drop(bob.respond(&req).unwrap());
        bob
    });
    for expected in ["model overloaded", "went away"] {
        let mut stream = alice
            .request_stream(bob_id, "go", Duration::from_secs(30))
            .await
            .unwrap();
        assert!(stream.next().await.unwrap().is_ok());
        match stream.next().await.unwrap() {
            Err(Error::StreamFailed(why)) => assert!(why.contains(expected), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(stream.next().await.is_none(), "then the stream ends");
    }
    let reply = alice
        .request(bob_id, "plain", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.payload().to_text().unwrap(), "final");
    match alice
        .request(bob_id, "plain", Duration::from_secs(30))
        .await
    {
        Err(Error::StreamFailed(_)) => {}
        other => panic!("{other:?}"),
    }
    let _bob = callee.await.unwrap();
    assert!(matches!(alice.respond(&reply), Err(Error::NotARequest(_))));
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_and_loses_no_accepted_chunk() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let bob_id = bob.id();
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let callee = tokio::spawn(async move {
        let req = next_request(&mut bob).await;
        let mut out = bob.respond(&req).unwrap();
        for i in 0..10 {
            out.send(format!("chunk {i}")).await.unwrap();
        }
        sent_tx.send(()).unwrap();
        // Keeps the responder open: shutdown must end the stream anyway.
        tokio::time::timeout(Duration::from_secs(5), req.cancelled())
            .await
            .expect("shutdown cancels the request");
        out.send("after shutdown").await
    });
    let mut stream = alice
        .request_stream(bob_id, "go", Duration::from_secs(30))
        .await
        .unwrap();
    sent_rx.await.unwrap();
    hub.shutdown().await.unwrap();
    let mut got = Vec::new();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the stream ends")
        {
            Some(Ok(chunk)) => got.push(chunk.payload().to_text().unwrap()),
            Some(Err(e)) => break e,
            None => panic!("ended without an error"),
        }
    };
    assert_eq!(
        got,
        (0..10).map(|i| format!("chunk {i}")).collect::<Vec<_>>()
    );
    assert!(matches!(end, Error::ShuttingDown), "{end:?}");
    assert!(matches!(callee.await.unwrap(), Err(Error::ShuttingDown)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_within_inherits_and_cancels_with_its_parent_three_levels_deep() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let mut carol = hub.register("carol").unwrap();
    let mut dave = hub.register("dave").unwrap();
    let (bob_id, carol_id, dave_id) = (bob.id(), carol.id(), dave.id());
    // dave: the third level, working until cancelled.
    let deepest = tokio::spawn(async move {
        let req = next_request(&mut dave).await;
        tokio::time::timeout(Duration::from_secs(5), req.cancelled())
            .await
            .expect("the cancel reached the third level");
        (req.correlation_id(), req.deadline())
    });
    let middle = tokio::spawn(async move {
        let req = next_request(&mut carol).await;
        let nested = carol.request_within(&req, dave_id, "level 3").await;
        (req.correlation_id(), nested)
    });
    let top = tokio::spawn(async move {
        let req = next_request(&mut bob).await;
        let mut out = bob.respond(&req).unwrap();
        out.send("working").await.unwrap();
        let nested = bob.request_within(&req, carol_id, "level 2").await;
        (req.deadline(), nested, out.send("after").await)
    });
    let mut stream = alice
        .request_stream(bob_id, "level 1", Duration::from_secs(20))
        .await
        .unwrap();
    let root = stream.request_id();
    assert!(stream.next().await.unwrap().is_ok());
    // Give the chain time to reach dave, then cancel the root.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.cancel();
    let (dave_correlation, dave_deadline) = deepest.await.unwrap();
    let (carol_correlation, carol_nested) = middle.await.unwrap();
    let (bob_deadline, bob_nested, bob_after) = top.await.unwrap();
    assert_eq!((dave_correlation, carol_correlation), (root, root));
    assert!(
        matches!(carol_nested, Err(Error::Cancelled)),
        "{carol_nested:?}"
    );
    assert!(
        matches!(bob_nested, Err(Error::Cancelled)),
        "{bob_nested:?}"
    );
    assert!(matches!(bob_after, Err(Error::Cancelled)), "{bob_after:?}");
    // The remaining deadline is inherited, never extended.
    let (top_deadline, deep_deadline) = (bob_deadline.unwrap(), dave_deadline.unwrap());
    assert!(deep_deadline <= top_deadline + Duration::from_millis(5));
    assert!(deep_deadline + Duration::from_secs(1) > top_deadline);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_request_of_a_cancelled_or_plain_parent_is_refused() {
    let hub = Hub::start(HubConfig::default()).unwrap();
    let alice = hub.register("alice").unwrap();
    let mut bob = hub.register("bob").unwrap();
    let carol = hub.register("carol").unwrap();
    alice.send(bob.id(), "not a request").await.unwrap();
    hub.flush();
    let plain = bob.recv().await.unwrap();
    assert!(matches!(
        bob.request_within(&plain, carol.id(), "x").await,
        Err(Error::NotARequest(_))
    ));
    let stream = alice
        .request_stream(bob.id(), "go", Duration::from_secs(20))
        .await
        .unwrap();
    let req = next_request(&mut bob).await;
    drop(stream);
    assert!(matches!(
        bob.request_within(&req, carol.id(), "x").await,
        Err(Error::Cancelled)
    ));
    hub.shutdown().await.unwrap();
}
