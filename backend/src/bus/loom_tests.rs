//! Loom models of the mailbox: every interleaving of its lock and atomics, for admission,
//! `next_batch` (no lost wake-up, nothing lost, per-sender order) and waiting for room.
//!
//! Run with `RUSTFLAGS="--cfg swarmbus_loom" cargo test -p swarmbus --lib loom`
//! (`scripts/test.sh` does, in its own target directory).

use super::batch::BatchRules;
use super::mailbox::{Admission, Mailbox, Refused};
use crate::envelope::Kind;
use crate::metrics::Metrics;
use crate::pool::BufferPool;
use crate::pool::PoolSizing;
use crate::{AgentId, Envelope, MessageId, OverflowPolicy, Payload, Priority};
use loom::future::block_on;
use loom::thread;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn mailbox(capacity: usize, max_messages: usize) -> Arc<Mailbox> {
    let sizing = PoolSizing {
        initial: 0,
        max: 0,
        item_capacity: 4,
    };
    let rules = BatchRules {
        max_messages,
        linger: Duration::from_secs(60),
        flush_priority: Priority::Critical,
    };
    Arc::new(Mailbox::new(
        capacity,
        OverflowPolicy::Reject,
        rules,
        Arc::new(Metrics::default()),
        Arc::new(BufferPool::new("batches", sizing, false, Duration::ZERO)),
    ))
}

/// Debug builds need more than the 32 KiB stack a loom thread gets by default.
const STACK: usize = 4 << 20;

fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .expect("spawn a loom thread")
}

/// Runs `body` as a model, on a thread with room for debug frames.
fn model(body: impl Fn() + Sync + Send + 'static) {
    let body = std::sync::Arc::new(body);
    loom::model(move || {
        let body = body.clone();
        spawn(move || body()).join().expect("model thread");
    });
}

fn env(from: u8, seq: u8) -> Envelope {
    Envelope {
        id: MessageId::new_v4(),
        from: AgentId::from(uuid::Uuid::from_bytes([from; 16])),
        to: AgentId::from(uuid::Uuid::nil()),
        kind: Kind::Message,
        priority: Priority::Normal,
        payload: Payload::from(vec![from, seq]),
        sent_at: 0,
        headers: None,
        redelivered: false,
    }
}

static OPEN: AtomicBool = AtomicBool::new(false);

fn admit(mb: &Mailbox, e: Envelope) -> Result<(), Refused> {
    let how = Admission {
        closing: &OPEN,
        flush_now: false,
        recipients: 1,
    };
    mb.admit(e, how).map(|_| ())
}

fn key(e: &Envelope) -> (u8, u8) {
    let b = e.payload.wire_bytes();
    (b[0], b[1])
}

/// Two senders, one waiting receiver: every message arrives once, each sender's in order,
/// and the receiver is never left asleep with a message waiting.
#[test]
fn loom_two_senders_one_waiting_receiver() {
    model(|| {
        let mb = mailbox(16, 50);
        let senders: Vec<_> = (1..=2u8)
            .map(|from| {
                let mb = mb.clone();
                spawn(move || {
                    for seq in 0..2 {
                        assert!(admit(&mb, env(from, seq)).is_ok());
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 4 {
            let batch = block_on(mb.next_batch()).expect("open");
            got.extend(batch.iter().map(key));
        }
        for s in senders {
            s.join().unwrap();
        }
        for from in 1..=2u8 {
            let mine: Vec<_> = got.iter().filter(|k| k.0 == from).map(|k| k.1).collect();
            assert_eq!(mine, vec![0, 1], "sender {from}: {got:?}");
        }
        assert!(mb.pop().is_none());
    });
}

/// A full mailbox: a sender waiting for room is woken when the owner takes a batch out,
/// and its message then fits.
#[test]
fn loom_a_sender_waiting_for_room_is_woken() {
    model(|| {
        let mb = mailbox(1, 50);
        assert!(admit(&mb, env(1, 0)).is_ok());
        let sender = {
            let mb = mb.clone();
            spawn(move || {
                let mut e = env(2, 0);
                loop {
                    match admit(&mb, e) {
                        Ok(()) => return,
                        Err(Refused::Full(back)) => {
                            e = *back;
                            block_on(mb.room());
                        }
                        Err(other) => panic!("{other:?}"),
                    }
                }
            })
        };
        let first = block_on(mb.next_batch()).expect("open");
        assert_eq!(first.iter().map(key).collect::<Vec<_>>(), vec![(1, 0)]);
        let second = block_on(mb.next_batch()).expect("open");
        assert_eq!(second.iter().map(key).collect::<Vec<_>>(), vec![(2, 0)]);
        sender.join().unwrap();
    });
}

/// The owner leaves while a sender admits: the message is either refused or admitted and
/// then dropped by `close` (and so counted); never both, never neither.
#[test]
fn loom_close_races_admission() {
    model(|| {
        let mb = mailbox(16, 50);
        let sender = {
            let mb = mb.clone();
            spawn(move || admit(&mb, env(1, 0)).is_ok())
        };
        let dropped = mb.close().len();
        let admitted = sender.join().unwrap();
        let late = mb.close().len();
        assert_eq!(usize::from(admitted), dropped + late, "admitted {admitted}");
        assert!(block_on(mb.next_batch()).is_none());
    });
}

/// Seal while the owner waits: it wakes and sees the end once the queue is empty.
#[test]
fn loom_seal_wakes_a_waiting_owner() {
    model(|| {
        let mb = mailbox(16, 50);
        let sealer = {
            let mb = mb.clone();
            spawn(move || {
                assert!(admit(&mb, env(1, 0)).is_ok());
                mb.seal();
            })
        };
        let mut got = 0;
        while let Some(batch) = block_on(mb.next_batch()) {
            got += batch.len();
        }
        sealer.join().unwrap();
        assert_eq!(got, 1);
    });
}
