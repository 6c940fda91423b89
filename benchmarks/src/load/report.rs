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
    /// With `--nats`: raw NATS in the same run, and the ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<super::nats::NatsBaseline>,
}

impl Report {
    /// A compact table for a terminal.
    pub fn human(&self) -> String {
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
                "{} (mean {:.1}; size {}, linger {}, other {})",
                b.count, b.mean_size, b.flushed_by_size, b.flushed_by_linger, b.flushed_other
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
}
