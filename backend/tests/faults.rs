//! The fault suite: hubs meeting over a real `nats-server`, under the faults production
//! sees, with every message accounted for.
//!
//! - `kill_9_of_nats_server_mid_stream`: the server dies (SIGKILL) while hub A streams to
//!   an agent on hub B, and comes back after 2 s (longer than `node_timeout`);
//! - `sigstop_of_a_hub`: the receiving hub (a child process) is frozen for 2.5 s (SIGSTOP)
//!   and thawed (SIGCONT) while A keeps sending;
//! - `sigterm_during_an_outage`: the sending hub (a child process) is told to stop
//!   (SIGTERM) while NATS is down, shuts down and reports what it could not send.
//!
//! The accounting, for messages sent from hub A to an agent on hub B: accepted (sends on A
//! that returned `Ok`) = received by B's agent (unique sequence numbers in the payloads) +
//! drops counted on A + drops counted on B (`lost_in_transit` among them, from gaps in the
//! frame numbers), except that A's unconfirmed messages (handed to the NATS client, no
//! server round trip confirmed them) may or may not have arrived. So `unaccounted =
//! accepted - received - dropped` must be 0, or between 0 and A's `unconfirmed` when A shut
//! down during an outage; and no message may arrive twice. Refused sends (`MailboxFull`
//! when the outage buffer is full, `UnknownAgent` while B is expired) are not accepted.
//!
//! Each test prints one line: `fault=<name> accepted=N delivered=N dropped=N (by reason: …)
//! unconfirmed=N unaccounted=N duplicated=N`, followed by what was refused and a few
//! figures of the fault. Run: `cargo test -p swarmbus --test faults -- --nocapture`. When
//! `nats-server` is missing the tests fail under `CI=true` and are skipped elsewhere.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use swarmbus::nats::{NatsConfig, NatsStats};
use swarmbus::{Agent, AgentId, Error, Hub, HubConfig, MessageId};
use tokio::sync::mpsc;

// ===== nats-server =====

mod nats_server;

use nats_server::NatsServer;

// ===== hubs and counting =====

/// Fast failure detection: heartbeat 100 ms, node timeout 1 s, shutdown drain 300 ms.
fn config(url: &str, node: &str, swarm: &str) -> HubConfig {
    let mut nats = NatsConfig::new(url, node);
    nats.swarm = swarm.into();
    nats.heartbeat = Duration::from_millis(100);
    nats.node_timeout = Duration::from_secs(1);
    nats.shutdown_drain = Duration::from_millis(300);
    let mut c = HubConfig::default();
    c.nats = Some(nats);
    c
}

fn nats_stats(hub: &Hub) -> NatsStats {
    hub.metrics().nats.expect("joined a swarm")
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The stream's messages: a sequence number, 8 bytes little-endian.
fn message(seq: u64) -> Vec<u8> {
    seq.to_le_bytes().to_vec()
}

/// What the receiving agent got.
#[derive(Debug, Default)]
struct Tally {
    seen: HashSet<u64>,
    duplicated: u64,
    /// Messages that are not the stream's (never expected).
    foreign: u64,
}

type Counts = Arc<Mutex<Tally>>;

fn received(tally: &Counts) -> u64 {
    tally.lock().map_or(0, |t| t.seen.len() as u64)
}

/// Counts what `agent` receives, until its hub shuts down.
fn count_into(mut agent: Agent) -> (Counts, tokio::task::JoinHandle<()>) {
    let tally = Counts::default();
    let counts = tally.clone();
    let task = tokio::spawn(async move {
        while let Some(env) = agent.recv().await {
            let seq = env
                .payload()
                .bytes()
                .ok()
                .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
                .map(u64::from_le_bytes);
            let mut t = counts.lock().expect("tally lock");
            match seq {
                Some(seq) => {
                    if !t.seen.insert(seq) {
                        t.duplicated += 1;
                    }
                }
                None => t.foreign += 1,
            }
        }
    });
    (tally, task)
}

/// Sends accepted, and refused by kind.
#[derive(Debug, Default)]
struct Sent {
    accepted: u64,
    refused: BTreeMap<String, u64>,
}

impl Sent {
    /// Counts one send's outcome; true when accepted.
    fn record(&mut self, result: swarmbus::Result<MessageId>) -> bool {
        let kind = match result {
            Ok(_) => {
                self.accepted += 1;
                return true;
            }
            Err(Error::MailboxFull(_)) => "mailbox_full".to_string(),
            Err(Error::UnknownAgent(_)) => "unknown_agent".to_string(),
            Err(other) => format!("other: {other}"),
        };
        *self.refused.entry(kind).or_default() += 1;
        false
    }

    fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Panics when a send was refused for a reason outside `allowed`.
    fn assert_refused_only(&self, fault: &str, allowed: &[&str]) {
        for kind in self.refused.keys() {
            assert!(
                allowed.contains(&kind.as_str()),
                "fault={fault}: a send was refused with {kind} ({:?})",
                self.refused
            );
        }
    }

    fn to_json(&self) -> Value {
        json!({ "accepted": self.accepted, "refused": self.refused })
    }
}

/// The non-zero counters of a `messages_dropped` map.
fn nonzero<'a>(map: impl IntoIterator<Item = (&'a str, u64)>) -> BTreeMap<String, u64> {
    map.into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect()
}

fn drops_of(hub: &Hub) -> BTreeMap<String, u64> {
    nonzero(hub.metrics().messages_dropped)
}

/// The books of one fault, A sending to B.
#[derive(Debug, Default)]
struct Books {
    accepted: u64,
    received: u64,
    duplicated: u64,
    dropped_a: BTreeMap<String, u64>,
    dropped_b: BTreeMap<String, u64>,
    unconfirmed: u64,
}

impl Books {
    fn dropped(&self) -> u64 {
        self.dropped_a.values().sum::<u64>() + self.dropped_b.values().sum::<u64>()
    }

    /// accepted - received - dropped, signed: below 0 means something was counted twice.
    fn unaccounted(&self) -> i128 {
        i128::from(self.accepted) - i128::from(self.received) - i128::from(self.dropped())
    }

    fn line(&self, fault: &str) -> String {
        let reasons: Vec<String> = self
            .dropped_a
            .iter()
            .map(|(k, n)| format!("a.{k}={n}"))
            .chain(self.dropped_b.iter().map(|(k, n)| format!("b.{k}={n}")))
            .collect();
        let reasons = if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons.join(", ")
        };
        format!(
            "fault={fault} accepted={} delivered={} dropped={} (by reason: {reasons}) \
             unconfirmed={} unaccounted={} duplicated={}",
            self.accepted,
            self.received,
            self.dropped(),
            self.unconfirmed,
            self.unaccounted(),
            self.duplicated
        )
    }

    /// Prints the report line and checks the books: nothing twice, and nothing unexplained
    /// beyond `ambiguity` messages (A's unconfirmed ones, when A shut down in an outage).
    fn check(&self, fault: &str, ambiguity: u64, extra: &str) {
        let line = self.line(fault);
        eprintln!("{line} {extra}");
        assert_eq!(self.duplicated, 0, "messages arrived twice: {line}");
        let unaccounted = self.unaccounted();
        assert!(
            (0..=i128::from(ambiguity)).contains(&unaccounted),
            "unaccounted must be within 0..={ambiguity}: {line} {extra}"
        );
    }

    /// Whether the books balance exactly now.
    fn balanced(&self) -> bool {
        self.unaccounted() == 0
    }
}

/// Waits until `probe` reports the books balanced, or its progress figure stayed the same
/// for 2 s, or 30 s passed. `probe` returns (progress, balanced).
async fn settle<F, Fut>(mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (u64, bool)>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    let mut since = Instant::now();
    loop {
        let (progress, balanced) = probe().await;
        if balanced || Instant::now() >= deadline {
            return;
        }
        if last != Some(progress) {
            last = Some(progress);
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(2) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ===== child hubs =====

const CHILD_ROLE: &str = "SWARMBUS_FAULT_CHILD";
const CHILD_NATS: &str = "SWARMBUS_FAULT_NATS";
const CHILD_SWARM: &str = "SWARMBUS_FAULT_SWARM";
const CHILD_TO: &str = "SWARMBUS_FAULT_TO";

/// A hub in a child process: this test binary run again with `CHILD_ROLE` set, so that it
/// runs `fault_child` only. Killed (SIGKILL) on drop.
struct ChildHub {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    lines: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl ChildHub {
    fn spawn(role: &str, env: &[(&str, String)]) -> ChildHub {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args(["--exact", "fault_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn the child hub");
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
        ChildHub {
            child,
            stdin: Mutex::new(stdin),
            lines: tokio::sync::Mutex::new(lines),
        }
    }

    /// What follows `prefix` in the next line that holds it, within `within`.
    async fn line(&self, prefix: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        let mut lines = self.lines.lock().await;
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => {
                    // Anywhere in the line: libtest starts the first one with
                    // "test fault_child ... ".
                    if let Some((_, rest)) = line.split_once(prefix) {
                        return rest.to_string();
                    }
                }
                Ok(None) => panic!("the child hub exited before printing {prefix:?}"),
                Err(_) => panic!("the child hub printed no {prefix:?} within {within:?}"),
            }
        }
    }

    /// Sends `command` on the child's stdin and returns the JSON report it prints.
    async fn ask(&self, command: &str) -> Value {
        {
            let mut stdin = self.stdin.lock().expect("child stdin lock");
            let stdin = stdin.as_mut().expect("child stdin");
            writeln!(stdin, "{command}").expect("write to the child hub");
            stdin.flush().expect("flush to the child hub");
        }
        let report = self.line("REPORT ", Duration::from_secs(20)).await;
        serde_json::from_str(&report).expect("the child's report is JSON")
    }

    /// `kill -<signal> <pid>`.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (at most `within`) for the child to exit.
    async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the child hub did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A u64 at a JSON pointer of a child's report.
fn field(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {pointer} in the child's report: {v}"))
}

/// The non-zero counters of a JSON object of numbers.
fn counters(v: &Value, pointer: &str) -> BTreeMap<String, u64> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, n)| n.as_u64().filter(|n| *n > 0).map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs as a child process (see `ChildHub`); does nothing in a normal test run.
#[test]
fn fault_child() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    let url = std::env::var(CHILD_NATS).expect("child: NATS url");
    let swarm = std::env::var(CHILD_SWARM).expect("child: swarm");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("child runtime");
    rt.block_on(async {
        match role.as_str() {
            "receiver" => receiver_child(&url, &swarm).await,
            "sender" => {
                let to: AgentId = std::env::var(CHILD_TO)
                    .expect("child: recipient")
                    .parse()
                    .expect("child: recipient id");
                sender_child(&url, &swarm, to).await;
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

/// Hub B as a child: prints `READY <agent id>`, counts what its agent receives, and prints
/// `REPORT <json>` for every `report` line on stdin; on `shutdown` (or end of stdin) shuts
/// down and prints its last report. Gives up after 60 s.
async fn receiver_child(url: &str, swarm: &str) {
    let hub = Hub::connect(config(url, "b", swarm))
        .await
        .expect("child: connect");
    let rx = hub.register("rx").expect("child: register");
    println!("READY {}", rx.id());
    let (tally, counting) = count_into(rx);
    let (tx, mut commands) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let report = |hub: &Hub, shutdown: Option<swarmbus::ShutdownReport>| {
        let m = hub.metrics();
        let t = tally.lock().expect("tally lock");
        json!({
            "received": t.seen.len(),
            "duplicated": t.duplicated,
            "foreign": t.foreign,
            "dropped": m.messages_dropped,
            "nats": m.nats,
            "report": shutdown,
        })
    };
    let give_up = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            command = commands.recv() => match command.as_deref() {
                Some("report") => println!("REPORT {}", report(&hub, None)),
                Some("shutdown") | None => {
                    let shutdown = hub.shutdown().await.expect("child: shutdown");
                    let _ = tokio::time::timeout(Duration::from_secs(10), counting).await;
                    println!("REPORT {}", report(&hub, Some(shutdown)));
                    return;
                }
                Some(_) => {}
            },
            () = &mut give_up => panic!("child: no shutdown command within 60 s"),
        }
    }
}

/// Hub A as a child: streams to `to` (100 messages every 20 ms) until SIGTERM, then shuts
/// down and prints `REPORT <json>`: the sends, what was buffered for remote hubs just
/// before, the `ShutdownReport`, the drop counters and the NATS figures.
async fn sender_child(url: &str, swarm: &str, to: AgentId) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("child: SIGTERM handler");
    let hub = Hub::connect(config(url, "a", swarm))
        .await
        .expect("child: connect");
    let tx = hub.register("tx").expect("child: register");
    until("the sender to learn the receiver", || hub.knows(to)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let sending = tokio::spawn(async move {
        let mut sent = Sent::default();
        // Bounded: 200,000 messages is 40 s at this pace.
        for seq in 0..200_000u64 {
            if stopping.load(Ordering::Acquire) {
                break;
            }
            if seq.is_multiple_of(100) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent.record(tx.send(to, message(seq)).await);
        }
        (sent, tx)
    });
    println!("READY");
    tokio::select! {
        _ = term.recv() => {}
        () = tokio::time::sleep(Duration::from_secs(60)) => panic!("child: no SIGTERM within 60 s"),
    }
    // Stop between two sends, never in the middle of one: every send is counted.
    stop.store(true, Ordering::Release);
    let (sent, _tx) = sending.await.expect("child: the sending task");
    let buffered = nats_stats(&hub).buffered;
    let report = hub.shutdown().await.expect("child: shutdown");
    let m = hub.metrics();
    println!(
        "REPORT {}",
        json!({
            "sent": sent.to_json(),
            "buffered_before_shutdown": buffered,
            "report": report,
            "dropped": m.messages_dropped,
            "nats": m.nats,
        })
    );
}

// ===== the faults =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_nats_server_mid_stream() {
    const FAULT: &str = "kill_9_nats_server";
    const TOTAL: u64 = 20_000;
    // Mid-burst, so that the link holds an open batch when the server dies.
    const KILL_AT: u64 = 5_050;
    const OUTAGE_BUFFER: usize = 4_000;
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let mut config_a = config(&server.url(), "a", "k9");
    if let Some(n) = config_a.nats.as_mut() {
        n.outage_buffer = OUTAGE_BUFFER;
    }
    let a = Hub::connect(config_a).await.unwrap();
    let b = Hub::connect(config(&server.url(), "b", "k9"))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let rx = b.register("rx").unwrap();
    let to = rx.id();
    let (tally, counting) = count_into(rx);
    until("a to learn rx", || a.knows(to)).await;

    // 100 messages every 20 ms (at most 5,000/s); the server dies at message 5,050 and
    // comes back 2 s later while the stream goes on.
    let mut sent = Sent::default();
    let mut killed: Option<(Instant, u64, u64)> = None; // (when, accepted then, buffered then)
    let mut restarted = false;
    let mut first_refusal: Option<u64> = None; // accepted when the first send was refused
    for seq in 0..TOTAL {
        if seq.is_multiple_of(100) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if seq == KILL_AT {
            let buffered = nats_stats(&a).buffered;
            server.stop();
            // Hand the open batch to the client at once, before it notices the broken
            // connection: a frame in flight, lost and counted by B from the gap.
            a.flush();
            killed = Some((Instant::now(), sent.accepted, buffered));
        }
        if !restarted && killed.is_some_and(|(at, ..)| at.elapsed() >= Duration::from_secs(2)) {
            tokio::task::block_in_place(|| server.spawn());
            restarted = true;
        }
        if !sent.record(tx.send(to, message(seq)).await) && first_refusal.is_none() {
            first_refusal = Some(sent.accepted);
        }
    }
    if !restarted {
        tokio::task::block_in_place(|| server.spawn());
    }
    let (_, accepted_at_kill, buffered_at_kill) = killed.expect("the server was killed");
    sent.assert_refused_only(FAULT, &["mailbox_full"]);
    if let Some(accepted) = first_refusal {
        // Until the outage buffer is full, sends are accepted.
        let room = (OUTAGE_BUFFER as u64).saturating_sub(buffered_at_kill);
        assert!(
            accepted >= accepted_at_kill + room,
            "a send was refused with room left in the outage buffer: {} accepted after the \
             kill, {buffered_at_kill} buffered at the kill, buffer {OUTAGE_BUFFER}",
            accepted - accepted_at_kill
        );
    }

    let books = |a: &Hub, b: &Hub, unconfirmed: u64| Books {
        accepted: sent.accepted,
        received: received(&tally),
        dropped_a: drops_of(a),
        dropped_b: drops_of(b),
        unconfirmed,
        ..Books::default()
    };
    settle(|| {
        let now = books(&a, &b, 0);
        std::future::ready((now.received + now.dropped(), now.balanced()))
    })
    .await;
    let report_a = a.shutdown().await.unwrap();
    assert_eq!(report_a.undelivered, 0, "{report_a:?}");
    assert_eq!(report_a.sent, sent.accepted, "{report_a:?}");
    // Losses at the end of a stream are counted by B from A's bye, after a grace period.
    settle(|| {
        let now = books(&a, &b, 0);
        std::future::ready((now.received + now.dropped(), now.balanced()))
    })
    .await;
    let stats_a = nats_stats(&a);
    let stats_b = nats_stats(&b);
    b.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), counting)
        .await
        .expect("b's agent did not see the end of its mailbox")
        .unwrap();
    let mut final_books = books(&a, &b, report_a.unconfirmed);
    {
        let t = tally.lock().unwrap();
        final_books.duplicated = t.duplicated;
        assert_eq!(
            t.foreign, 0,
            "b received messages that are not the stream's"
        );
    }
    let extra = format!(
        "refused={} ({:?}) a.buffered_at_kill={buffered_at_kill} a.reconnects={} \
         a.nodes_expired={} b.nodes_expired={} b.frames_lost={} b.messages_lost={}",
        sent.refused_total(),
        sent.refused,
        stats_a.reconnects,
        stats_a.nodes_expired,
        stats_b.nodes_expired,
        stats_b.frames_lost,
        stats_b.messages_lost
    );
    assert!(stats_a.reconnects >= 1, "a never reconnected: {extra}");
    // A shut down connected: every message handed over was confirmed, so no ambiguity.
    final_books.check(FAULT, 0, &extra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_a_hub() {
    const FAULT: &str = "sigstop_hub";
    let Some(server) = NatsServer::start() else {
        return;
    };
    let a = Hub::connect(config(&server.url(), "a", "st"))
        .await
        .unwrap();
    let tx = a.register("tx").unwrap();
    let mut child = ChildHub::spawn(
        "receiver",
        &[(CHILD_NATS, server.url()), (CHILD_SWARM, "st".to_string())],
    );
    let to: AgentId = child
        .line("READY ", Duration::from_secs(20))
        .await
        .parse()
        .expect("the child's agent id");
    until("a to learn the child's agent", || a.knows(to)).await;

    // 100 messages every 20 ms: 1 s, then B frozen for 2.5 s (> node_timeout), then 1.5 s.
    let mut sent = Sent::default();
    let start = Instant::now();
    let mut stopped: Option<Instant> = None;
    let mut resumed: Option<Instant> = None;
    let mut seq = 0u64;
    while seq < 40_000 && start.elapsed() < Duration::from_secs(15) {
        if seq.is_multiple_of(100) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if stopped.is_none() && start.elapsed() >= Duration::from_secs(1) {
            child.signal("STOP");
            stopped = Some(Instant::now());
        }
        if resumed.is_none()
            && stopped.is_some_and(|at| at.elapsed() >= Duration::from_millis(2500))
        {
            child.signal("CONT");
            resumed = Some(Instant::now());
        }
        if resumed.is_some_and(|at| at.elapsed() >= Duration::from_millis(1500)) {
            break;
        }
        sent.record(tx.send(to, message(seq)).await);
        seq += 1;
    }
    if stopped.is_some() && resumed.is_none() {
        child.signal("CONT");
    }
    assert!(resumed.is_some(), "the stream ended before B was thawed");
    // While B is expired, sends to its agent fail with UnknownAgent.
    sent.assert_refused_only(FAULT, &["unknown_agent"]);

    let accepted = sent.accepted;
    settle(|| child_balance(&child, &a, accepted)).await;
    let report_a = a.shutdown().await.unwrap();
    assert_eq!(report_a.undelivered, 0, "{report_a:?}");
    assert_eq!(report_a.sent, accepted, "{report_a:?}");
    settle(|| child_balance(&child, &a, accepted)).await;
    let last = child.ask("shutdown").await;
    let status = child.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "the child hub failed: {status}");
    let stats_a = nats_stats(&a);
    let books = Books {
        accepted,
        received: field(&last, "/received"),
        duplicated: field(&last, "/duplicated"),
        dropped_a: drops_of(&a),
        dropped_b: counters(&last, "/dropped"),
        unconfirmed: report_a.unconfirmed,
    };
    let (frames_lost, messages_lost) = (
        field(&last, "/nats/frames_lost"),
        field(&last, "/nats/messages_lost"),
    );
    let b_expired = field(&last, "/nats/nodes_expired");
    let extra = format!(
        "refused={} ({:?}) a.nodes_expired={} a.nodes_revived={} b.nodes_expired={b_expired} \
         b.frames_lost={frames_lost} b.messages_lost={messages_lost}",
        sent.refused_total(),
        sent.refused,
        stats_a.nodes_expired,
        stats_a.nodes_revived,
    );
    assert_eq!(field(&last, "/foreign"), 0, "b received foreign messages");
    books.check(FAULT, 0, &extra);
    // A frozen process loses nothing (TCP holds its traffic): no false losses.
    assert_eq!(
        (frames_lost, messages_lost),
        (0, 0),
        "false losses: {extra}"
    );
    // B woke from a pause: it must not expire A for a silence it could not hear.
    assert_eq!(b_expired, 0, "b expired a just after a pause: {extra}");
    // 2.5 s of silence is more than node_timeout: A expired B, and revived it.
    assert!(stats_a.nodes_expired >= 1, "a never expired b: {extra}");
    assert!(
        stats_a.nodes_revived >= stats_a.nodes_expired,
        "a did not revive b: {extra}"
    );
}

/// For `settle`: the progress and balance of A's `accepted` messages to the child hub B.
async fn child_balance(child: &ChildHub, a: &Hub, accepted: u64) -> (u64, bool) {
    let dropped_a = drops_of(a);
    let r = child.ask("report").await;
    let books = Books {
        accepted,
        received: field(&r, "/received"),
        dropped_a,
        dropped_b: counters(&r, "/dropped"),
        ..Books::default()
    };
    (books.received + books.dropped(), books.balanced())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_outage() {
    const FAULT: &str = "sigterm_during_outage";
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let b = Hub::connect(config(&server.url(), "b", "tm"))
        .await
        .unwrap();
    let rx = b.register("rx").unwrap();
    let to = rx.id();
    let (tally, counting) = count_into(rx);
    let mut child = ChildHub::spawn(
        "sender",
        &[
            (CHILD_NATS, server.url()),
            (CHILD_SWARM, "tm".to_string()),
            (CHILD_TO, to.to_string()),
        ],
    );
    child.line("READY", Duration::from_secs(20)).await;
    until("the stream to flow", || received(&tally) >= 1_000).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.signal("TERM");
    let r = child.line("REPORT ", Duration::from_secs(30)).await;
    let r: Value = serde_json::from_str(&r).expect("the child's report is JSON");
    let status = child.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "the child hub failed: {status}");
    tokio::task::block_in_place(|| server.spawn());
    until("b to reconnect", || nats_stats(&b).connected).await;

    let accepted = field(&r, "/sent/accepted");
    let unconfirmed = field(&r, "/report/unconfirmed");
    let books = |b: &Hub| Books {
        accepted,
        received: received(&tally),
        dropped_a: counters(&r, "/dropped"),
        dropped_b: drops_of(b),
        unconfirmed,
        ..Books::default()
    };
    settle(|| {
        let now = books(&b);
        std::future::ready((now.received + now.dropped(), now.balanced()))
    })
    .await;
    let stats_b = nats_stats(&b);
    b.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), counting)
        .await
        .expect("b's agent did not see the end of its mailbox")
        .unwrap();
    let mut final_books = books(&b);
    {
        let t = tally.lock().unwrap();
        final_books.duplicated = t.duplicated;
        assert_eq!(
            t.foreign, 0,
            "b received messages that are not the stream's"
        );
    }
    let buffered = field(&r, "/buffered_before_shutdown");
    let unsent = final_books.dropped_a.get("unsent").copied().unwrap_or(0);
    let extra = format!(
        "refused={} ({}) a.buffered_before_shutdown={buffered} a.unsent={unsent} \
         a.report={} b.frames_lost={} b.messages_lost={}",
        counters(&r, "/sent/refused").values().sum::<u64>(),
        r["sent"]["refused"],
        r["report"],
        stats_b.frames_lost,
        stats_b.messages_lost,
    );
    assert!(
        counters(&r, "/sent/refused").is_empty(),
        "no send may be refused with a 100,000-message outage buffer: {extra}"
    );
    assert_eq!(field(&r, "/report/sent"), accepted, "{extra}");
    assert_eq!(field(&r, "/report/undelivered"), 0, "{extra}");
    // What waited in the link for B when shutdown gave up is dropped as `unsent`.
    assert!(
        buffered > 0,
        "nothing was buffered during the outage: {extra}"
    );
    assert_eq!(unsent, buffered, "{extra}");
    final_books.check(FAULT, unconfirmed, &extra);
}
