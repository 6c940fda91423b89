//! Forged, replayed and disordered frames against a real hub on a real `nats-server`:
//! frames are built here with the crate's own encoder, as a hostile publisher would.
//! Under `CI=true` a missing `nats-server` fails the test; elsewhere it is skipped.

use super::frame::{self, Numbers};
use crate::envelope::Kind;
use crate::nats::NatsConfig;
use crate::{AgentId, Envelope, Hub, HubConfig, MessageId, Payload, Priority};
use std::time::{Duration, Instant};

#[path = "../../tests/nats_server/mod.rs"]
mod nats_server;

use nats_server::NatsServer as Server;

fn envelope(from: AgentId, to: AgentId, kind: Kind, body: &str) -> Envelope {
    Envelope {
        id: MessageId::new_v4(),
        from,
        to,
        kind,
        priority: Priority::Normal,
        payload: Payload::from(body),
        sent_at: 0,
        headers: None,
        redelivered: false,
    }
}

fn numbers(link: u64, seq: u64, msg_seq: u64) -> Numbers {
    Numbers {
        epoch: 7,
        link,
        seq,
        msg_seq,
    }
}

/// Hub y announced itself with epoch 9.
fn y_numbers(seq: u64) -> Numbers {
    Numbers {
        epoch: 9,
        ..numbers(1, seq, seq)
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_disordered_frames_are_refused_and_counted() {
    let Some(server) = Server::start() else {
        return;
    };
    let mut nats = NatsConfig::new(server.url(), "b");
    nats.swarm = "w1".into();
    nats.heartbeat = Duration::from_millis(100);
    // Hub y is played by hand and never beats: a short timeout would expire it mid-test
    // on a loaded machine, and its link would then hold the request (expiry is tested
    // elsewhere).
    nats.node_timeout = Duration::from_secs(120);
    let config = HubConfig {
        nats: Some(nats),
        ..HubConfig::default()
    };
    let b = Hub::connect(config).await.unwrap();
    let mut rx = b.register("rx").unwrap();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let subject = "swarmbus.w1.node.b";
    let x_agent = AgentId::new_v4();
    let frame_from = |node: &str, n: Numbers, envs: &[Envelope]| frame::encode(node, n, envs);
    let msgs = |from: AgentId, to: AgentId, names: &[&str]| -> Vec<Envelope> {
        names
            .iter()
            .map(|n| envelope(from, to, Kind::Message, n))
            .collect()
    };
    let stats = || b.metrics().nats.unwrap();
    let rejected = |reason: &str| stats().frames_rejected[reason];
    async fn recv_text(rx: &mut crate::Agent) -> String {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a message within 5 s")
            .expect("open");
        e.payload().to_text().unwrap()
    }

    // Hub x's first frame: three messages, delivered.
    let first = frame_from(
        "x",
        numbers(3, 1, 0),
        &msgs(x_agent, rx.id(), &["m0", "m1", "m2"]),
    );
    raw.publish(subject, first.clone()).await.unwrap();
    for want in ["m0", "m1", "m2"] {
        assert_eq!(recv_text(&mut rx).await, want);
    }
    // Frames 2 and 3 (messages 3 to 9) never arrive; frame 4 says where the stream is.
    let fourth = frame_from(
        "x",
        numbers(3, 4, 10),
        &msgs(x_agent, rx.id(), &["m10", "m11"]),
    );
    raw.publish(subject, fourth.clone()).await.unwrap();
    for want in ["m10", "m11"] {
        assert_eq!(recv_text(&mut rx).await, want);
    }
    let s = stats();
    assert_eq!((s.frames_lost, s.messages_lost), (2, 7));
    assert_eq!(b.metrics().messages_dropped["lost_in_transit"], 7);

    // Replays, an older link instance, and numbers that would overflow: refused.
    raw.publish(subject, first).await.unwrap();
    raw.publish(subject, fourth).await.unwrap();
    raw.publish(
        subject,
        frame_from(
            "x",
            numbers(2, 9, 20),
            &msgs(x_agent, rx.id(), &["old link"]),
        ),
    )
    .await
    .unwrap();
    raw.publish(
        subject,
        frame_from(
            "x",
            numbers(3, 5, u64::MAX),
            &msgs(x_agent, rx.id(), &["wrap"]),
        ),
    )
    .await
    .unwrap();
    raw.flush().await.unwrap();
    until("4 refusals", || rejected("replayed") == 4).await;
    // The largest sequence number is taken once, without overflow; the hub keeps working.
    raw.publish(
        subject,
        frame_from(
            "x",
            numbers(3, u64::MAX, 12),
            &msgs(x_agent, rx.id(), &["last"]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(recv_text(&mut rx).await, "last");

    // A sender that is this hub's own agent, or another hub's, is refused.
    let y_agent = AgentId::new_v4();
    let join =
        format!(r#"{{"node":"y","epoch":9,"seq":1,"body":{{"t":"join","agents":["{y_agent}"]}}}}"#);
    raw.publish("swarmbus.w1.dir", join.into()).await.unwrap();
    raw.flush().await.unwrap();
    until("b to learn y's agent", || b.knows(y_agent)).await;
    let z = |from: AgentId, seq: u64| {
        frame_from("z", numbers(1, seq, seq), &msgs(from, rx.id(), &["spoof"]))
    };
    raw.publish(subject, z(rx.id(), 1)).await.unwrap();
    raw.publish(subject, z(y_agent, 2)).await.unwrap();
    raw.flush().await.unwrap();
    until("2 bad senders", || rejected("bad_sender") == 2).await;
    assert!(rx.try_recv().is_none(), "a spoofed frame was delivered");

    // A reply must come from the hub of the agent that was asked.
    let mut spy = raw.subscribe("swarmbus.w1.node.y").await.unwrap();
    raw.flush().await.unwrap();
    let requester = b.register("requester").unwrap();
    let asking = tokio::spawn({
        let requester = requester.sender();
        async move {
            requester
                .request(y_agent, "question", Duration::from_secs(10))
                .await
        }
    });
    let request = {
        use futures_util::StreamExt;
        let limits = frame::Limits {
            max_frame: 1 << 20,
            max_payload: 1 << 20,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let Ok(Some(m)) = tokio::time::timeout_at(deadline, spy.next()).await else {
                panic!("no request for y within 30 s: {:?}", stats());
            };
            let f = frame::decode(m.payload, limits, 0).unwrap();
            let kinds: Vec<_> = f.envelopes.iter().map(|e| e.kind_name()).collect();
            if let Some(r) = f.envelopes.into_iter().find(|e| e.is_request()) {
                break r;
            }
            // Seen on a loaded machine: a frame for y before the request (its link's first
            // frame, sent late). The request is what this part is about.
            eprintln!("skipped a frame for y without a request: {kinds:?}");
        }
    };
    let reply = |from_node: &str, n: Numbers, body: &str| {
        let mut e = envelope(y_agent, requester.id(), Kind::Reply(request.id), body);
        e.priority = Priority::High;
        frame_from(from_node, n, &[e])
    };
    raw.publish(subject, reply("z", numbers(1, 3, 3), "forged answer"))
        .await
        .unwrap();
    raw.flush().await.unwrap();
    until("the forged reply to be refused", || {
        rejected("bad_sender") == 3
    })
    .await;
    raw.publish(subject, reply("y", y_numbers(1), "real answer"))
        .await
        .unwrap();
    let answer = asking.await.unwrap().unwrap();
    assert_eq!(answer.payload().to_text().unwrap(), "real answer");

    // A reply for a requester that is not on this hub is dropped, never sent on.
    let elsewhere = AgentId::new_v4();
    let stray = envelope(
        y_agent,
        elsewhere,
        Kind::Reply(MessageId::new_v4()),
        "stray",
    );
    raw.publish(subject, frame_from("y", y_numbers(2), &[stray]))
        .await
        .unwrap();
    raw.flush().await.unwrap();
    until("the stray reply to be dropped", || {
        stats().replies_not_forwarded == 1
    })
    .await;
    let sent_before = stats().frames_sent;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stats().frames_sent, sent_before, "b forwarded a reply");

    // Chunks and cancels that no stream or request of this hub waits for are counted and
    // never reach a mailbox (no stranger gets another agent's stream).
    let gone = || b.metrics().messages_dropped["stream_gone"];
    let chunk = envelope(y_agent, rx.id(), Kind::Chunk(MessageId::new_v4()), "chunk");
    let last = envelope(y_agent, rx.id(), Kind::Failed(MessageId::new_v4()), "why");
    let cancel = envelope(y_agent, rx.id(), Kind::Cancel(MessageId::new_v4()), "");
    raw.publish(
        subject,
        frame_from("y", y_numbers(3), &[chunk, last, cancel]),
    )
    .await
    .unwrap();
    raw.flush().await.unwrap();
    until("3 stream_gone drops", || gone() == 3).await;
    assert!(rx.try_recv().is_none(), "a chunk reached a mailbox");

    let report = b.shutdown().await.unwrap();
    assert_eq!(report.undelivered, 0, "{report:?}");
}
