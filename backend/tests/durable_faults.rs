//! Durable delivery under crashes, over a real `nats-server` with JetStream (a temporary
//! store), each process stopped by its PID:
//!
//! - `sigkill_of_the_receiving_hub_mid_stream`: hub A streams 50,000 messages to an agent
//!   on hub B (a child process); B is SIGKILLed mid-stream and started again with the same
//!   node name, its agent registered again under its old id (`Hub::register_with_id`);
//! - `sigkill_of_nats_server_mid_stream`: the server dies (SIGKILL) while A streams to B and
//!   comes back on the same store;
//! - `sigstop_of_the_receiving_hub_past_ack_wait`: B (a child) is frozen for longer than
//!   `ack_wait` and thawed; the server delivers again what B had not acknowledged.
//!
//! The receiving agent records every message it handles in a file (its own state, which
//! survives its process) and skips a message it finds there, which it only needs to check
//! for messages flagged `Envelope::redelivered` (the hub drops the duplicates it knows of
//! itself). Each test checks: every accepted message is in the record exactly once and in
//! the order sent (accepted = delivered, nothing unaccounted), every message the agent had
//! to skip was flagged, and no message reached the agent twice while its hub was alive.
//! Each prints one line: `fault=<name> accepted=N delivered=N skipped_by_agent=N
//! deduplicated_by_hub=N redelivered_frames=N`. Run:
//! `cargo test -p swarmbus --test durable_faults -- --nocapture`.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use swarmbus::nats::{DurableConfig, NatsConfig};
use swarmbus::{AgentId, Hub, HubConfig};
use tokio::sync::mpsc;

mod nats_server;

use nats_server::NatsServer;

const CHILD: &str = "SWARMBUS_DURABLE_CHILD";
const CHILD_NATS: &str = "SWARMBUS_DURABLE_NATS";
const CHILD_SWARM: &str = "SWARMBUS_DURABLE_SWARM";
const CHILD_AGENT: &str = "SWARMBUS_DURABLE_AGENT";
const CHILD_RECORD: &str = "SWARMBUS_DURABLE_RECORD";

fn config(url: &str, node: &str, swarm: &str) -> HubConfig {
    let mut durable = DurableConfig::default();
    durable.ack_wait = Duration::from_secs(1);
    durable.retry_delay = Duration::from_millis(100);
    let mut nats = NatsConfig::new(url, node);
    nats.swarm = swarm.into();
    nats.heartbeat = Duration::from_millis(100);
    nats.node_timeout = Duration::from_secs(1);
    nats.shutdown_drain = Duration::from_secs(2);
    nats.durable = Some(durable);
    let mut c = HubConfig::default();
    c.nats = Some(nats);
    c
}

async fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The record of an agent: one sequence number per line, in the order handled.
fn read_record(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Checks the record against `accepted` messages numbered 0..accepted: each once, in order.
fn check_record(fault: &str, record: &[u64], accepted: u64) {
    assert_eq!(
        record.len() as u64,
        accepted,
        "{fault}: the agent handled {} messages of {accepted} accepted",
        record.len()
    );
    for (i, seq) in record.iter().enumerate() {
        assert_eq!(*seq, i as u64, "{fault}: out of order or duplicated at {i}");
    }
}

/// A durable receiving hub in a child process: this test binary again, with `CHILD` set.
struct ReceiverChild {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    lines: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl ReceiverChild {
    fn spawn(url: &str, swarm: &str, agent: AgentId, record: &Path) -> ReceiverChild {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "durable_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "receiver")
            .env(CHILD_NATS, url)
            .env(CHILD_SWARM, swarm)
            .env(CHILD_AGENT, agent.to_string())
            .env(CHILD_RECORD, record)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the receiving hub");
        let stdout = child.stdout.take().expect("child stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        ReceiverChild {
            child,
            stdin: Mutex::new(stdin),
            lines: tokio::sync::Mutex::new(lines),
        }
    }

    /// What follows `prefix` in the next line holding it, within 20 s.
    async fn line(&self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut lines = self.lines.lock().await;
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some((_, rest)) = line.split_once(prefix) {
                        return rest.to_string();
                    }
                }
                Ok(None) => panic!("the child exited before printing {prefix:?}"),
                Err(_) => panic!("the child printed no {prefix:?} within 20 s"),
            }
        }
    }

    /// Its figures (`report` on stdin).
    async fn report(&self) -> Value {
        {
            let mut stdin = self.stdin.lock().expect("stdin lock");
            let stdin = stdin.as_mut().expect("child stdin");
            writeln!(stdin, "report").expect("write to the child");
            stdin.flush().expect("flush to the child");
        }
        serde_json::from_str(&self.line("REPORT ").await).expect("JSON report")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILL, and waits for the process to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ReceiverChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs as the child process (see `ReceiverChild`); does nothing in a normal test run.
#[test]
fn durable_child() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("child: {k}"));
    let (url, swarm, record) = (var(CHILD_NATS), var(CHILD_SWARM), var(CHILD_RECORD));
    let agent: AgentId = var(CHILD_AGENT).parse().expect("child: agent id");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("child runtime");
    rt.block_on(receiver(&url, &swarm, agent, PathBuf::from(record)));
}

/// Hub B: its agent appends each message's sequence number to the record (and flushes it
/// to the file) before it lets go of the message; a redelivered message already in the
/// record is skipped. Prints `READY`, and `REPORT <json>` for each `report` on stdin.
async fn receiver(url: &str, swarm: &str, id: AgentId, record: PathBuf) {
    let hub = Hub::connect(config(url, "b", swarm))
        .await
        .expect("child: connect");
    let mut rx = hub.register_with_id("rx", id).expect("child: register");
    let mut seen: std::collections::HashSet<u64> = read_record(&record).into_iter().collect();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&record)
        .expect("child: record");
    let counts = std::sync::Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let agent_counts = counts.clone();
    tokio::spawn(async move {
        while let Some(env) = rx.recv().await {
            let Ok(bytes) = env.payload().bytes() else {
                continue;
            };
            let Ok(seq) = <[u8; 8]>::try_from(&bytes[..]).map(u64::from_le_bytes) else {
                continue;
            };
            let mut c = agent_counts.lock().expect("counts");
            if seen.contains(&seq) {
                // Handled by an earlier run of this hub, not acknowledged before it died.
                c.0 += 1;
                if !env.redelivered() {
                    c.1 += 1;
                }
                continue;
            }
            if env.redelivered() {
                c.2 += 1;
            }
            drop(c);
            seen.insert(seq);
            // One write per line: `writeln!` writes the number and the newline apart,
            // and a SIGKILL between the two would glue two lines into one.
            file.write_all(format!("{seq}\n").as_bytes())
                .expect("child: write the record");
        }
    });
    println!("READY");
    let (tx, mut commands) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let give_up = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            command = commands.recv() => match command.as_deref() {
                Some("report") => {
                    let (skipped, skipped_unflagged, redelivered_new) = *counts.lock().expect("counts");
                    let m = hub.metrics();
                    println!("REPORT {}", json!({
                        "skipped": skipped,
                        "skipped_unflagged": skipped_unflagged,
                        "redelivered_new": redelivered_new,
                        "dropped": m.messages_dropped.values().sum::<u64>(),
                        "durable": m.nats.and_then(|n| n.durable),
                    }));
                }
                None => return,
                Some(_) => {}
            },
            () = &mut give_up => panic!("child: still running after 120 s"),
        }
    }
}

fn field(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
}

/// A record file of its own in the temporary directory, removed on drop.
struct Record(PathBuf);

impl Record {
    fn new(name: &str) -> Record {
        let path =
            std::env::temp_dir().join(format!("swarmbus-{name}-{}.record", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Record(path)
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const STREAM: u64 = 50_000;

/// Hub A in this process with a sender, and hub B in a child with its agent under a new
/// id, once A knows that agent.
async fn sender_and_receiver(
    url: &str,
    swarm: &str,
    record: &Path,
) -> (Hub, swarmbus::Agent, ReceiverChild, AgentId) {
    let id = AgentId::new_v4();
    let a = Hub::connect(config(url, "a", swarm)).await.unwrap();
    let tx = a.register("tx").unwrap();
    let b = ReceiverChild::spawn(url, swarm, id, record);
    b.line("READY").await;
    until("a to learn the agent on b", Duration::from_secs(10), || {
        a.knows(id)
    })
    .await;
    (a, tx, b, id)
}

/// Waits until B's agent has handled `accepted` messages (and a little longer, for any
/// that would come twice); B's report and the agent's record.
async fn handled(a: &Hub, b: &ReceiverChild, record: &Path, accepted: u64) -> (Value, Vec<u64>) {
    a.flush();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (read_record(record).len() as u64) < accepted {
        if Instant::now() > deadline {
            let got = read_record(record).len();
            panic!(
                "timed out waiting for every message handled: {got} of {accepted}; b: {}; a: {:?}",
                b.report().await,
                a.metrics().nats
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    (b.report().await, read_record(record))
}

/// Streams 0..STREAM to `to` (8-byte sequence numbers) in a task, 500 at a time with a
/// 5 ms pause, so that the stream spans the fault; returns how many were accepted (every
/// send must be).
fn stream_to(tx: swarmbus::AgentSender, to: AgentId) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut accepted = 0u64;
        for seq in 0..STREAM {
            tx.send(to, seq.to_le_bytes().to_vec())
                .await
                .unwrap_or_else(|e| panic!("send {seq} refused: {e}"));
            accepted += 1;
            if seq % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        accepted
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_receiving_hub_mid_stream() {
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let (url, swarm) = (server.url(), "kill-b");
    let record = Record::new("kill-b");
    let (a, tx, mut b, id) = sender_and_receiver(&url, swarm, &record.0).await;
    let sender = stream_to(tx.sender(), id);
    until("b to be mid-stream", Duration::from_secs(20), || {
        read_record(&record.0).len() as u64 > STREAM / 5
    })
    .await;
    b.kill();
    let handled_before = read_record(&record.0).len();
    // While b is down its messages wait in the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = ReceiverChild::spawn(&url, swarm, id, &record.0);
    b.line("READY").await;
    let accepted = sender.await.unwrap();
    let (report, record) = handled(&a, &b, &record.0, accepted).await;
    check_record("sigkill_of_the_receiving_hub", &record, accepted);
    assert_eq!(field(&report, "/skipped_unflagged"), 0, "{report}");
    assert_eq!(field(&report, "/dropped"), 0, "{report}");
    println!(
        "fault=sigkill_of_the_receiving_hub accepted={accepted} delivered={} handled_before_kill={handled_before} \
         skipped_by_agent={} deduplicated_by_hub={} redelivered_frames={}",
        record.len(),
        field(&report, "/skipped"),
        field(&report, "/durable/messages_deduplicated"),
        field(&report, "/durable/redelivered"),
    );
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_the_receiving_hub_past_ack_wait() {
    let Some(server) = NatsServer::start_jetstream() else {
        return;
    };
    let (url, swarm) = (server.url(), "stop-b");
    let record = Record::new("stop-b");
    let (a, tx, b, id) = sender_and_receiver(&url, swarm, &record.0).await;
    let sender = stream_to(tx.sender(), id);
    until("b to be mid-stream", Duration::from_secs(20), || {
        read_record(&record.0).len() as u64 > STREAM / 10
    })
    .await;
    b.signal("STOP");
    // Longer than ack_wait (1 s): the server delivers again what b had not acknowledged.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    b.signal("CONT");
    let accepted = sender.await.unwrap();
    let (report, record) = handled(&a, &b, &record.0, accepted).await;
    check_record("sigstop_of_the_receiving_hub", &record, accepted);
    // The hub lived through it: it dropped every duplicate itself.
    assert_eq!(field(&report, "/skipped"), 0, "{report}");
    assert!(field(&report, "/durable/redelivered") > 0, "{report}");
    assert_eq!(field(&report, "/dropped"), 0, "{report}");
    println!(
        "fault=sigstop_of_the_receiving_hub accepted={accepted} delivered={} skipped_by_agent=0 \
         deduplicated_by_hub={} redelivered_frames={}",
        record.len(),
        field(&report, "/durable/messages_deduplicated"),
        field(&report, "/durable/redelivered"),
    );
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_nats_server_mid_stream() {
    let Some(mut server) = NatsServer::start_jetstream() else {
        return;
    };
    let (url, swarm) = (server.url(), "kill-nats");
    let a = Hub::connect(config(&url, "a", swarm)).await.unwrap();
    let b = Hub::connect(config(&url, "b", swarm)).await.unwrap();
    let tx = a.register("tx").unwrap();
    let mut rx = b.register("rx").unwrap();
    let to = rx.id();
    until("a to learn rx", Duration::from_secs(10), || a.knows(to)).await;
    let got = std::sync::Arc::new(Mutex::new(Vec::<u64>::new()));
    let sink = got.clone();
    let agent = tokio::spawn(async move {
        while let Some(env) = rx.recv().await {
            let bytes = env.payload().bytes().expect("payload");
            let seq = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
            sink.lock().expect("record").push(seq);
        }
    });
    let sender = stream_to(tx.sender(), to);
    until("b to be mid-stream", Duration::from_secs(20), || {
        got.lock().expect("record").len() as u64 > STREAM / 5
    })
    .await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.spawn();
    let accepted = sender.await.unwrap();
    a.flush();
    until("every message delivered", Duration::from_secs(60), || {
        got.lock().expect("record").len() as u64 >= accepted
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = got.lock().expect("record").clone();
    // Nothing lost, nothing twice (the frames in flight when the server died may arrive
    // out of their order: retried publishes go after what the client had buffered).
    let mut sorted = record.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        record.len(),
        "a message reached the agent twice"
    );
    assert_eq!(sorted.len() as u64, accepted, "messages lost");
    let out_of_order = record.windows(2).filter(|w| w[1] < w[0]).count();
    let sent = a.metrics().nats.and_then(|n| n.durable).expect("durable");
    let recv = b.metrics().nats.and_then(|n| n.durable).expect("durable");
    println!(
        "fault=sigkill_of_nats_server accepted={accepted} delivered={} out_of_order_steps={out_of_order} \
         publish_retries={} publish_duplicates={} deduplicated_by_hub={} redelivered_frames={}",
        record.len(),
        sent.publish_retries,
        sent.publish_duplicates,
        recv.messages_deduplicated,
        recv.redelivered
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
}
