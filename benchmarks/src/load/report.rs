//! The run report: the JSON object of the contract, and the human table.

use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Samples the percentiles come from.
    pub samples: u64,
}

/// Batch figures, from the hub.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Batches {
    /// Batches flushed.
    pub count: u64,
    /// Mean messages per batch.
    pub mean_size: f64,
    /// Flushed because full.
    pub flushed_by_size: u64,
    /// Flushed because the linger elapsed.
    pub flushed_by_linger: u64,
    /// Taken at once because the recipient was waiting for messages (adaptive batching).
    pub flushed_waiting: u64,
    /// Flushed for priority, explicitly, or at shutdown.
    pub flushed_other: u64,
}

/// Compression figures, from the hub.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Compression {
    /// Payloads stored compressed.
    pub compressed_messages: u64,
    /// Payload bytes before compression.
    pub bytes_in: u64,
    /// Payload bytes after compression.
    pub bytes_out: u64,
    /// `bytes_in / bytes_out`.
    pub ratio: f64,
}

/// Pool figures, from the hub.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pools {
    /// Hits over all acquisitions, all pools.
    pub hit_rate: f64,
}

/// Worker pool tasks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tasks {
    /// Units completed.
    pub completed: u64,
    /// Units per second.
    pub per_sec: f64,
}

/// Worker counts seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Workers {
    /// Fewest.
    pub min_seen: u64,
    /// Most.
    pub max_seen: u64,
    /// At the end of the run.
    #[serde(rename = "final")]
    pub final_: u64,
}

/// Resident memory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rss {
    /// At the start, MiB.
    pub start: f64,
    /// At the end, MiB.
    pub end: f64,
    /// At the end of sending minus after warm-up, MiB (both before shutdown).
    pub growth: f64,
    /// Seconds of warm-up excluded from `growth`.
    pub warmup_s: f64,
}

/// `--pattern churn`: the short-lived agents.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnReport {
    /// `--churn-rate`: short-lived agents per second asked for (0: no churn).
    pub rate_target: u64,
    /// Short-lived agents registered.
    pub registered: u64,
    /// Registered per second of churning.
    pub registered_per_sec: f64,
    /// Registrations that failed.
    pub register_errors: u64,
    /// Messages the long-lived agents sent to short-lived ones (accepted by the hub).
    pub messages_sent: u64,
    /// Sends to short-lived agents that returned an error.
    pub send_errors: u64,
    /// Messages short-lived agents received before being dropped.
    pub messages_delivered: u64,
    /// Short-lived agents dropped without their message (timed out, or the hub shut down).
    pub messages_missed: u64,
    /// Most short-lived agents alive at once.
    pub max_in_flight: u64,
    /// `--churn-in-flight`.
    pub in_flight_limit: u64,
    /// Send call to the short-lived agent having the message (sampled).
    pub latency_us: Latency,
    /// With `--churn-compare`: the run without churn and the ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<ChurnCompare>,
}

/// The long-lived agents' throughput without churn and with it, from one invocation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnCompare {
    /// msgs/s of the long-lived agents in the run without churn.
    pub without_msgs_per_sec: f64,
    /// Messages the long-lived agents got in the run without churn.
    pub without_messages_delivered: u64,
    /// Seconds of sending of the run without churn.
    pub without_duration_s: f64,
    /// msgs/s of the long-lived agents in the run with churn (the report's `msgs_per_sec`).
    pub with_msgs_per_sec: f64,
    /// `with_msgs_per_sec / without_msgs_per_sec`.
    pub ratio: f64,
}

/// One checkpoint of `--pattern register`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegisterCheckpoint {
    /// Agents registered so far.
    pub agents: u64,
    /// Seconds since the first registration.
    pub elapsed_s: f64,
    /// Agents in the window timed just before this checkpoint.
    pub window_agents: u64,
    /// µs per registration in that window.
    pub window_us_per_agent: f64,
    /// Process RSS, MiB.
    pub rss_mb: f64,
    /// (RSS − RSS of the empty hub) / agents, KiB.
    pub kb_per_agent: f64,
    /// Time of one `hub.metrics()` call here, ms.
    pub metrics_snapshot_ms: f64,
    /// The hub's own `agents` figure here.
    pub hub_agents: u64,
}

/// `--pattern register`: registering idle agents.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegisterReport {
    /// `--agents`.
    pub target: u64,
    /// Agents registered before the end or the time limit.
    pub registered: u64,
    /// Whether all `target` were registered within the time limit.
    pub completed: bool,
    /// `--time-limit`, seconds.
    pub time_limit_s: f64,
    /// Seconds registering.
    pub total_s: f64,
    /// Registrations per second over the whole run.
    pub agents_per_sec: f64,
    /// Mean µs per registration.
    pub us_per_agent: f64,
    /// KiB of RSS per idle agent at the last checkpoint.
    pub kb_per_idle_agent: f64,
    /// Bytes per agent of the harness's own `Vec<Agent>` (included in the RSS figures).
    pub harness_bytes_per_agent: u64,
    /// At 10,000, 100,000, ... and the last count.
    pub checkpoints: Vec<RegisterCheckpoint>,
    /// Seconds to drop every agent.
    pub drop_s: f64,
    /// The hub's `agents` after dropping them all (0 when the counts add up).
    pub agents_after_drop: u64,
    /// The shutdown report's `undelivered`.
    pub shutdown_undelivered: u64,
}

/// One run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `direct`, `broadcast`, `topic`, `request`, `task` or `mixed`.
    pub pattern: String,
    /// `optimized` or `baseline`.
    pub mode: String,
    /// Agents registered.
    pub agents: usize,
    /// Payload spec (bytes or `mixed`).
    pub payload: String,
    /// Offered load in messages per second, 0 for as fast as possible.
    pub rate: u64,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Seconds from the end of sending until every receiver had everything.
    pub drain_s: f64,
    /// Messages accepted by the hub (one per recipient for fan-out; requests for `request`).
    pub messages_sent: u64,
    /// Messages the receivers really got (replies for `request`).
    pub messages_delivered: u64,
    /// Sent minus delivered after a clean shutdown.
    pub messages_lost: u64,
    /// Drops the hub counted with a reason.
    pub messages_dropped_counted: u64,
    /// Sends that returned an error.
    pub send_errors: u64,
    /// Delivered per second, from the first send until the last message was received.
    pub msgs_per_sec: f64,
    /// Payload MB (10^6 bytes) delivered per second.
    pub mb_per_sec: f64,
    /// End-to-end latency (send call to the receiver having it; round trip for `request`).
    pub latency_us: Latency,
    /// Batching.
    pub batches: Batches,
    /// Compression.
    pub compression: Compression,
    /// Pools.
    pub pools: Pools,
    /// Worker pool tasks.
    pub tasks: Tasks,
    /// Worker pool size.
    pub workers: Workers,
    /// Resident memory.
    pub rss_mb: Rss,
    /// Where it ran.
    pub machine: String,
    /// Messages an agent received more than once (by message id). Measured across hubs
    /// (`--nats`); `null` in one process, where the test suite proves it instead.
    pub messages_duplicated: Option<u64>,
    /// With `--durable`: messages the receiving hub got on a second or later delivery of
    /// their frame (`Envelope::redelivered`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redelivered: Option<u64>,
    /// With `--nats`: raw NATS in the same run, and the ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<super::nats::NatsBaseline>,
    /// With `--durable`: raw JetStream and swarmbus at most once in the same run, the
    /// ratios, and the latency at half the durable peak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable: Option<super::nats::DurableBaseline>,
    /// With `--pattern churn`: the short-lived agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnReport>,
    /// With `--pattern register`: registration cost and memory at scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<RegisterReport>,
}

impl Report {
    /// A compact table for a terminal.
    pub fn human(&self) -> String {
        if let Some(r) = &self.register {
            return self.human_register(r);
        }
        let mut s = String::new();
        let mut row = |k: &str, v: String| s.push_str(&format!("  {k:<22} {v}\n"));
        row(
            "pattern / mode",
            format!("{} / {}", self.pattern, self.mode),
        );
        row(
            "agents / payload",
            format!("{} / {} B", self.agents, self.payload),
        );
        row(
            "duration",
            format!(
                "{:.2} s sending + {:.2} s draining",
                self.duration_s, self.drain_s
            ),
        );
        row(
            "sent / delivered",
            format!("{} / {}", self.messages_sent, self.messages_delivered),
        );
        row(
            "lost (counted drops)",
            format!("{} ({})", self.messages_lost, self.messages_dropped_counted),
        );
        row(
            "throughput",
            format!(
                "{:.0} msg/s, {:.1} MB/s",
                self.msgs_per_sec, self.mb_per_sec
            ),
        );
        let l = &self.latency_us;
        row(
            "latency µs",
            format!(
                "p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
                l.p50, l.p99, l.p999, l.max
            ),
        );
        let b = &self.batches;
        row(
            "batches",
            format!(
                "{} (mean {:.1}; size {}, linger {}, recipient waiting {}, other {})",
                b.count,
                b.mean_size,
                b.flushed_by_size,
                b.flushed_by_linger,
                b.flushed_waiting,
                b.flushed_other
            ),
        );
        let c = &self.compression;
        row(
            "compression",
            format!(
                "{} msgs, {} → {} B ({:.2}×)",
                c.compressed_messages, c.bytes_in, c.bytes_out, c.ratio
            ),
        );
        row(
            "pool hit rate",
            format!("{:.1} %", self.pools.hit_rate * 100.0),
        );
        if self.tasks.completed > 0 {
            row(
                "tasks",
                format!("{} ({:.0}/s)", self.tasks.completed, self.tasks.per_sec),
            );
        }
        let w = &self.workers;
        row(
            "workers",
            format!("min {} max {} final {}", w.min_seen, w.max_seen, w.final_),
        );
        if let Some(n) = &self.nats {
            row(
                "raw NATS same run",
                format!(
                    "{:.0} msg/s ({} published, {} lost); swarmbus ÷ raw = {:.2}×; {:.1} msgs/frame",
                    n.msgs_per_sec, n.published, n.lost, n.ratio, n.messages_per_frame
                ),
            );
        }
        if let Some(c) = &self.churn {
            row(
                "churn",
                format!(
                    "{} short-lived registered ({:.0}/s of {} asked), max {} alive",
                    c.registered, c.registered_per_sec, c.rate_target, c.max_in_flight
                ),
            );
            row(
                "churn messages",
                format!(
                    "{} sent, {} delivered, {} missed, {} send errors; p50 {:.0} µs p99 {:.0} µs",
                    c.messages_sent,
                    c.messages_delivered,
                    c.messages_missed,
                    c.send_errors,
                    c.latency_us.p50,
                    c.latency_us.p99
                ),
            );
            if let Some(k) = &c.compare {
                row(
                    "long-lived, no churn",
                    format!(
                        "{:.0} msg/s; with churn {:.0} msg/s; with ÷ without = {:.3}×",
                        k.without_msgs_per_sec, k.with_msgs_per_sec, k.ratio
                    ),
                );
            }
        }
        let r = &self.rss_mb;
        row(
            "rss MiB",
            format!(
                "start {:.1} end {:.1} growth after {:.0} s warm-up {:+.2}",
                r.start, r.end, r.warmup_s, r.growth
            ),
        );
        s
    }

    fn human_register(&self, r: &RegisterReport) -> String {
        let mut s = format!(
            "  register {} of {} idle agents in {:.3} s ({:.0}/s, {:.2} µs each){}\n",
            r.registered,
            r.target,
            r.total_s,
            r.agents_per_sec,
            r.us_per_agent,
            if r.completed {
                String::new()
            } else {
                format!(", stopped at the {:.0} s time limit", r.time_limit_s)
            }
        );
        s.push_str(
            "  agents      elapsed s  last-window µs/agent  rss MiB  KiB/agent  metrics() ms\n",
        );
        for c in &r.checkpoints {
            s.push_str(&format!(
                "  {:<11} {:<10.3} {:<21.2} {:<8.1} {:<10.3} {:.3}\n",
                c.agents,
                c.elapsed_s,
                c.window_us_per_agent,
                c.rss_mb,
                c.kb_per_agent,
                c.metrics_snapshot_ms
            ));
        }
        s.push_str(&format!(
            "  dropped all in {:.3} s; hub agents after: {}; harness holds {} B per agent\n",
            r.drop_s, r.agents_after_drop, r.harness_bytes_per_agent
        ));
        s
    }
}
