//! Prometheus exposition of a [`MetricsSnapshot`], encoded by `prometheus-client`.
//!
//! Every scrape takes a fresh snapshot and encodes it through a [`Collector`], so nothing is
//! kept in a second set of counters that could drift from `/api/stats`. Metric names live in
//! [`METRICS`] and nowhere else.

use super::HttpStats;
use crate::metrics::{HistogramSnapshot, MetricsSnapshot};
#[cfg(feature = "nats")]
use crate::nats::NatsStats;
use crate::workers::WorkerStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::fmt;

/// Prefix of every metric name.
pub const PREFIX: &str = "swarmbus";

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of the classic Prometheus text format (version 0.0.4).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic; exposed with a `_total` suffix.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

/// One metric family: the single place its name, unit, labels and help are written.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// Name without prefix, unit or `_total` (prometheus-client appends those).
    pub name: &'static str,
    /// Unit suffix, if any.
    pub unit: Option<&'static str>,
    /// The kind.
    pub kind: Kind,
    /// Label names.
    pub labels: &'static [&'static str],
    /// The HELP text.
    pub help: &'static str,
}

impl MetricDef {
    /// The full exposed family name, e.g. `swarmbus_messages_sent_total`.
    #[cfg(test)]
    pub fn exposed_name(&self) -> String {
        let mut name = format!("{PREFIX}_{}", self.name);
        if let Some(unit) = self.unit {
            name.push('_');
            name.push_str(unit);
        }
        if self.kind == Kind::Counter {
            name.push_str("_total");
        }
        name
    }

    fn unit(&self) -> Option<Unit> {
        self.unit.map(|u| match u {
            "seconds" => Unit::Seconds,
            "bytes" => Unit::Bytes,
            other => Unit::Other(other.to_string()),
        })
    }

    fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Histogram => MetricType::Histogram,
        }
    }
}

macro_rules! metric_table {
    ($($id:ident: $name:literal, $unit:expr, $kind:ident, [$($label:literal),*], $help:literal;)+) => {
        /// Every metric family the hub can expose, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)]
        // The NATS families are defined (and documented) in every build; only a build
        // with the `nats` feature exports them.
        #[cfg_attr(not(feature = "nats"), allow(dead_code))]
        pub enum Metric { $($id,)+ }

        /// Every metric family, in exposition order.
        pub const METRICS: &[MetricDef] = &[
            $(MetricDef { name: $name, unit: $unit, kind: Kind::$kind, labels: &[$($label),*], help: $help },)+
        ];

        impl Metric {
            /// This family's definition.
            pub fn def(self) -> &'static MetricDef {
                &METRICS[self as usize]
            }
        }
    };
}

metric_table! {
    Uptime: "uptime", Some("seconds"), Gauge, [], "Seconds since the hub started.";
    Agents: "agents", None, Gauge, [], "Registered agents.";
    Topics: "topics", None, Gauge, [], "Topics with at least one subscriber.";
    MessagesSent: "messages_sent", None, Counter, [], "Messages accepted by a send (one per recipient for fan-out).";
    MessagesDelivered: "messages_delivered", None, Counter, [], "Messages placed in a recipient's mailbox.";
    MessagesReceived: "messages_received", None, Counter, [], "Messages taken out of a mailbox by recv.";
    MessagesDropped: "messages_dropped", None, Counter, ["reason"], "Accepted messages dropped, by reason.";
    SendErrors: "send_errors", None, Counter, ["kind"], "Calls that returned an error, by kind.";
    BatchesFlushed: "batches_flushed", None, Counter, ["reason"], "Batches flushed, by reason (size, linger, priority, explicit, shutdown).";
    BatchSize: "batch_size", None, Histogram, [], "Messages per flushed batch.";
    DeliveryLatency: "delivery_latency", Some("seconds"), Histogram, [], "Time from send to the recipient taking the message out of its mailbox.";
    PayloadBytes: "payload", Some("bytes"), Counter, ["stage"], "Payload bytes before (raw) and after (wire) compression.";
    CompressedMessages: "compressed_messages", None, Counter, [], "Payloads stored gzip-compressed.";
    IncompressibleMessages: "incompressible_messages", None, Counter, [], "Payloads over the threshold that gzip could not shrink.";
    CompressionRatio: "compression_ratio", None, Gauge, [], "Raw payload bytes divided by wire bytes since start (1 when nothing moved).";
    PoolAcquire: "pool_acquire", None, Counter, ["pool", "result"], "Buffer pool acquisitions, by pool and result (hit or miss).";
    PoolFreed: "pool_freed", None, Counter, ["pool"], "Pooled items freed on return (pool full, shrinking, or grown too large).";
    PoolIdle: "pool_idle", None, Gauge, ["pool"], "Items waiting in each buffer pool.";
    QueuedBytes: "queued", Some("bytes"), Gauge, [], "Bytes queued messages are charged against max_queued_bytes (envelopes plus payload shares).";
    QueuedBytesBudget: "queued_budget", Some("bytes"), Gauge, [], "The hub's budget for queued messages (max_queued_bytes).";
    MailboxDepth: "mailbox_depth", None, Gauge, [], "Messages waiting in all mailboxes.";
    MailboxDepthMax: "mailbox_depth_max", None, Gauge, [], "Depth of the deepest mailbox.";
    Requests: "requests", None, Counter, [], "Requests sent.";
    Replies: "replies", None, Counter, [], "Replies sent.";
    PendingRequests: "pending_requests", None, Gauge, [], "Requests waiting for their reply.";
    OpenStreams: "open_streams", None, Gauge, [], "Streamed requests waiting for their chunks.";
    Chunks: "chunks", None, Counter, [], "Chunks of streamed replies handed to their streams.";
    Cancellations: "cancellations", None, Counter, ["by"], "Requests cancelled, by who: caller, deadline, shutdown.";
    DeadLetters: "dead_letters", None, Gauge, [], "Dead letters held (messages that reached no agent; GET /api/dead-letters).";
    DeadLettersRecorded: "dead_letters_recorded", None, Counter, ["reason"], "Dead letters recorded, by the reason the message was dropped.";
    DeadLettersEvicted: "dead_letters_evicted", None, Counter, [], "Dead letters pushed out of the bounded store by newer ones.";
    DeadLetterPayloadsDropped: "dead_letter_payloads_dropped", None, Counter, [], "Dead letters kept without their payload (dead_letter_payload_bytes spent, or a failed handler kept its message).";
    DeadLettersReplayed: "dead_letters_replayed", None, Counter, ["result"], "Dead letters replayed, by result: sent, failed (kept).";
    Workers: "workers", None, Gauge, [], "Worker threads in the elastic pool.";
    WorkersBusy: "workers_busy", None, Gauge, [], "Workers running a unit now.";
    CpuLoad: "cpu_load", Some("ratio"), Gauge, [], "System CPU load the worker pool steers by (0-1).";
    ProcessCpu: "process_cpu", Some("ratio"), Gauge, [], "This process's CPU, as a share of all cores (0-1).";
    TasksCompleted: "tasks_completed", None, Counter, ["priority"], "Worker pool tasks completed, by priority.";
    TasksPanicked: "tasks_panicked", None, Counter, [], "Worker pool tasks that panicked.";
    TaskQueueDepth: "task_queue_depth", None, Gauge, [], "Tasks waiting for a worker.";
    TaskWait: "task_wait", Some("seconds"), Histogram, [], "Time from submit to a worker starting the task.";
    TaskRun: "task_run", Some("seconds"), Histogram, [], "Task run time.";
    WorkerResizes: "worker_resizes", None, Counter, ["reason"], "Worker pool resizes, by reason.";
    TasksCancelled: "tasks_cancelled", None, Counter, [], "Queued tasks dropped unrun because a shutdown's shutdown_timeout ran out.";
    WorkerDropPanics: "worker_drop_panics", None, Counter, [], "Panics caught while a worker dropped what a task left behind (the worker survives).";
    SpawnedAgents: "spawned_agents", None, Gauge, [], "Spawned agents (Hub::spawn) running now.";
    HandlerFailures: "handler_failures", None, Counter, ["kind"], "Spawned agents' handler calls that failed, by kind (error: returned an error, panic: panicked); each message is a dead letter (handler_failed).";
    AgentRestarts: "agent_restarts", None, Counter, [], "Spawned agents restarted after a handler failure.";
    AgentsGaveUp: "agents_gave_up", None, Counter, [], "Spawned agents that reached their restart limit and stopped.";
    GroupMembers: "group_members", None, Gauge, ["group"], "Members of each group with a member on this hub (the 50 largest), on every hub of the swarm.";
    GroupQueued: "group_queued", None, Gauge, ["group"], "Messages waiting in the mailboxes of a group's members on this hub.";
    WorkerDeaths: "worker_deaths", None, Counter, [], "Worker threads whose own loop panicked (replaced; a bug).";
    WorkerControllerPanics: "worker_controller_panics", None, Counter, [], "Panics of the load sampler caught on the controller thread.";
    WorkerShutdownTimeouts: "worker_shutdown_timeouts", None, Counter, [], "Shutdowns that gave up waiting for busy worker threads after shutdown_timeout.";
    NatsConnected: "nats_connected", None, Gauge, [], "1 while connected to the NATS server.";
    NatsDisconnects: "nats_disconnects", None, Counter, [], "Connections to the NATS server lost.";
    NatsFrames: "nats_frames", None, Counter, ["direction"], "Frames published (out) and received (in).";
    NatsFramesRejected: "nats_frames_rejected", None, Counter, ["reason"], "Frames and directory messages refused, by reason (decoder, swarm key, replay, sender).";
    NatsFramesLost: "nats_frames_lost", None, Counter, [], "Frames missing from a remote hub's sequence.";
    NatsMessagesLost: "nats_messages_lost", None, Counter, [], "Messages in the frames missing from remote hubs' sequences.";
    NatsMessagesUnconfirmed: "nats_messages_unconfirmed", None, Gauge, [], "Messages handed to the NATS client that no server round trip has confirmed yet.";
    NatsBytes: "nats", Some("bytes"), Counter, ["direction"], "Frame bytes published (out) and received (in).";
    NatsMessages: "nats_messages", None, Counter, ["direction"], "Messages sent to (out) and received from (in) remote hubs.";
    NatsReconnects: "nats_reconnects", None, Counter, [], "Reconnections to the NATS server.";
    NatsSlowConsumer: "nats_slow_consumer_events", None, Counter, [], "Subscription overflows reported by the NATS client.";
    NatsBuffered: "nats_buffered", None, Gauge, [], "Messages waiting for remote hubs (outage buffer in use).";
    NatsDirectoryNodes: "nats_directory_nodes", None, Gauge, [], "Remote hubs in the directory.";
    NatsDirectoryAgents: "nats_directory_agents", None, Gauge, [], "Remote agents in the directory.";
    NatsDirectoryPublishFailures: "nats_directory_publish_failures", None, Counter, [], "Directory announcements the NATS client refused to publish.";
    NatsClaimConflicts: "nats_claim_conflicts", None, Counter, [], "Agents claimed by a second hub while another one holds them (refused).";
    NatsNodeClashes: "nats_node_clashes", None, Counter, [], "Directory messages from another hub using this hub's node name.";
    NatsHellos: "nats_hellos", None, Counter, ["result"], "Full agent lists published (sent) and hello requests folded into a later one (deferred).";
    NatsNodesExpired: "nats_nodes_expired", None, Counter, [], "Remote hubs expired for silence.";
    NatsNodesRevived: "nats_nodes_revived", None, Counter, [], "Expired remote hubs that came back with the same epoch.";
    NatsRepliesNotForwarded: "nats_replies_not_forwarded", None, Counter, [], "Replies from the wire whose requester is not on this hub (not forwarded again).";
    NatsRoleMembersUnannounced: "nats_role_members_unannounced", None, Counter, [], "Group or capability members of this hub left out of announcements (past one directory message).";
    NatsRolesRefused: "nats_roles_refused", None, Counter, [], "Other hubs' groups or capabilities refused (past the bound of names per hub).";
    NatsAgentsNotResumed: "nats_agents_not_resumed", None, Counter, [], "Durable: agents of a restarted remote hub's previous run that it did not register again within directory_ttl.";
    NatsDurableAcks: "nats_durable_acks", None, Counter, ["verdict"], "Durable frames acknowledged to JetStream (ack: every message taken or dead-lettered) or handed back to be delivered again (nak), and frames reported in progress (progress).";
    NatsDurableRedelivered: "nats_durable_redelivered_frames", None, Counter, [], "Durable frames that arrived on a second or later delivery.";
    NatsDurableDeduplicated: "nats_durable_messages_deduplicated", None, Counter, [], "Durable messages dropped on arrival because this hub had them already.";
    NatsDurablePublishRetries: "nats_durable_publish_retries", None, Counter, [], "Durable publishes the server did not confirm, retried with the same message id.";
    NatsDurablePublishDuplicates: "nats_durable_publish_duplicates", None, Counter, [], "Retried durable frames the server had stored already (stored once).";
    NatsDurableErrors: "nats_durable_jetstream_errors", None, Counter, [], "JetStream calls that failed (publishes, acknowledgements, pulls, info).";
    NatsDurableTerminated: "nats_durable_frames_terminated", None, Counter, [], "Durable frames refused for good (forged, corrupt) and terminated.";
    NatsDurableLag: "nats_durable_stream_lag", None, Gauge, [], "Messages published to this hub in JetStream and not yet acknowledged (sampled every second).";
    NatsDurableDedupIds: "nats_durable_dedup_ids", None, Gauge, [], "Messages the hub remembers (in the frames that carried them) to drop what is delivered twice.";
    NatsDurableDeadLettersPublished: "nats_durable_dead_letters_published", None, Counter, [], "Dead letters published to the swarm's dead-letter stream.";
    NatsDurableDirectoryWrites: "nats_durable_directory_writes", None, Counter, [], "Entries this hub wrote to the swarm's directory bucket in JetStream key-value.";
    NatsDurableDirectoryLoaded: "nats_durable_directory_agents_loaded", None, Gauge, [], "Remote agents this hub learned from the directory bucket at start.";
    NatsDurableDirectoryRefused: "nats_durable_directory_entries_refused", None, Counter, [], "Directory bucket entries refused when read (unsigned, a bad tag, not parsable).";
    HttpConnectionsOpen: "http_connections_open", None, Gauge, [], "HTTP connections open now.";
    HttpConnectionsCap: "http_connections_cap", None, Gauge, [], "The HTTP connection cap in force (max_connections, clamped to half the descriptor limit).";
    HttpConnectionsAccepted: "http_connections_accepted", None, Counter, [], "HTTP connections accepted and served.";
    HttpConnectionsDropped: "http_connections_dropped", None, Counter, ["reason"], "HTTP connections the server closed, by reason (over_cap, evicted, header_timeout, idle_timeout).";
    HttpKeepAliveExpired: "http_connections_keep_alive_expired", None, Counter, [], "Keep-alive HTTP connections closed after idle_timeout without a new request (normal).";
    HttpAcceptErrors: "http_accept_errors", None, Counter, [], "accept failures other than a reset by the peer (EMFILE, ENFILE, ENOBUFS).";
    HttpRequestsRefused: "http_requests_refused", None, Counter, ["reason"], "HTTP requests refused, by reason (host: a Host header that does not name the hub).";
}

/// Encodes `snapshot` in the OpenMetrics text format (what Prometheus asks for).
///
/// # Errors
///
/// [`fmt::Error`] only if writing to the output fails, which writing to a `String` never
/// does: in practice this returns `Ok`.
pub fn encode_openmetrics(snapshot: &MetricsSnapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
    let mut out = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Encodes `snapshot` in the classic Prometheus text format 0.0.4 (what `promtool check
/// metrics`, curl and older scrapers read).
///
/// # Errors
///
/// As [`encode_openmetrics`]: [`fmt::Error`], never in practice.
pub fn encode_text(snapshot: &MetricsSnapshot) -> Result<String, fmt::Error> {
    Ok(openmetrics_to_text(&encode_openmetrics(snapshot)?))
}

/// OpenMetrics names a counter family without `_total` and adds `# UNIT`/`# EOF` lines; the
/// 0.0.4 text format wants the family named like its samples and knows neither line.
fn openmetrics_to_text(om: &str) -> String {
    let counters: HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 16 * counters.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        if let Some(prefix) = header {
            let rest = &line[prefix.len()..];
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Encodes one owned snapshot at scrape time.
#[derive(Debug)]
struct SnapshotCollector(MetricsSnapshot);

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        use Metric as M;
        let s = &self.0;
        gauge(&mut enc, M::Uptime, s.uptime_seconds)?;
        gauge(&mut enc, M::Agents, s.agents)?;
        gauge(&mut enc, M::Topics, s.topics)?;
        counter(&mut enc, M::MessagesSent, s.messages_sent)?;
        counter(&mut enc, M::MessagesDelivered, s.messages_delivered)?;
        counter(&mut enc, M::MessagesReceived, s.messages_received)?;
        labeled_counter(&mut enc, M::MessagesDropped, map_rows(&s.messages_dropped))?;
        labeled_counter(&mut enc, M::SendErrors, map_rows(&s.send_errors))?;
        labeled_counter(&mut enc, M::BatchesFlushed, map_rows(&s.batches_flushed))?;
        histogram(&mut enc, M::BatchSize, &s.batch_size)?;
        histogram(&mut enc, M::DeliveryLatency, &s.delivery_latency_seconds)?;
        labeled_counter(
            &mut enc,
            M::PayloadBytes,
            [
                (["raw"], s.payload_bytes_raw),
                (["wire"], s.payload_bytes_wire),
            ],
        )?;
        counter(&mut enc, M::CompressedMessages, s.compressed_messages)?;
        counter(
            &mut enc,
            M::IncompressibleMessages,
            s.incompressible_messages,
        )?;
        gauge(&mut enc, M::CompressionRatio, s.compression_ratio)?;
        labeled_counter(
            &mut enc,
            M::PoolAcquire,
            s.pools
                .iter()
                .flat_map(|p| [([p.pool, "hit"], p.hits), ([p.pool, "miss"], p.misses)]),
        )?;
        labeled_counter(
            &mut enc,
            M::PoolFreed,
            s.pools.iter().map(|p| ([p.pool], p.freed)),
        )?;
        labeled_gauge(
            &mut enc,
            M::PoolIdle,
            s.pools.iter().map(|p| ([p.pool], p.idle)),
        )?;
        gauge(&mut enc, M::QueuedBytes, s.queued_bytes)?;
        gauge(&mut enc, M::QueuedBytesBudget, s.queued_bytes_budget)?;
        gauge(&mut enc, M::MailboxDepth, s.mailbox_depth_total)?;
        gauge(&mut enc, M::MailboxDepthMax, s.mailbox_depth_max)?;
        counter(&mut enc, M::Requests, s.requests)?;
        counter(&mut enc, M::Replies, s.replies)?;
        gauge(&mut enc, M::PendingRequests, s.pending_requests)?;
        gauge(&mut enc, M::OpenStreams, s.open_streams)?;
        counter(&mut enc, M::Chunks, s.chunks)?;
        labeled_counter(&mut enc, M::Cancellations, map_rows(&s.cancellations))?;
        gauge(&mut enc, M::DeadLetters, s.dead_letters)?;
        labeled_counter(
            &mut enc,
            M::DeadLettersRecorded,
            map_rows(&s.dead_letters_recorded),
        )?;
        counter(&mut enc, M::DeadLettersEvicted, s.dead_letters_evicted)?;
        counter(
            &mut enc,
            M::DeadLetterPayloadsDropped,
            s.dead_letter_payloads_dropped,
        )?;
        labeled_counter(
            &mut enc,
            M::DeadLettersReplayed,
            map_rows(&s.dead_letters_replayed),
        )?;
        let sup = &s.supervision;
        gauge(&mut enc, M::SpawnedAgents, sup.running)?;
        labeled_counter(
            &mut enc,
            M::HandlerFailures,
            [
                (["error"], sup.handler_errors),
                (["panic"], sup.handler_panics),
            ],
        )?;
        counter(&mut enc, M::AgentRestarts, sup.restarts)?;
        counter(&mut enc, M::AgentsGaveUp, sup.gave_up)?;
        labeled_gauge(
            &mut enc,
            M::GroupMembers,
            s.groups.iter().map(|g| {
                let remote = g.remote_members;
                ([g.name.as_str()], g.members.len() as u64 + remote)
            }),
        )?;
        labeled_gauge(
            &mut enc,
            M::GroupQueued,
            s.groups.iter().map(|g| {
                (
                    [g.name.as_str()],
                    g.members.iter().map(|m| m.queued).sum::<u64>(),
                )
            }),
        )?;
        encode_workers(&mut enc, &s.workers)?;
        #[cfg(feature = "nats")]
        if let Some(n) = &s.nats {
            encode_nats(&mut enc, n)?;
        }
        if let Some(h) = &s.http {
            encode_http(&mut enc, h)?;
        }
        Ok(())
    }
}

fn encode_workers(enc: &mut DescriptorEncoder, w: &WorkerStats) -> Result<(), fmt::Error> {
    use Metric as M;
    gauge(enc, M::Workers, w.workers as u64)?;
    gauge(enc, M::WorkersBusy, w.busy_workers as u64)?;
    gauge(enc, M::CpuLoad, w.cpu_load_ratio)?;
    gauge(enc, M::ProcessCpu, w.process_cpu_ratio)?;
    let done = &w.tasks_completed;
    labeled_counter(
        enc,
        M::TasksCompleted,
        [
            (["low"], done.low),
            (["normal"], done.normal),
            (["high"], done.high),
            (["critical"], done.critical),
        ],
    )?;
    counter(enc, M::TasksPanicked, w.tasks_panicked)?;
    gauge(enc, M::TaskQueueDepth, w.task_queue_depth as u64)?;
    histogram(enc, M::TaskWait, &w.wait_seconds)?;
    histogram(enc, M::TaskRun, &w.run_seconds)?;
    let r = &w.resizes;
    labeled_counter(
        enc,
        M::WorkerResizes,
        [
            (["grow_queued_headroom"], r.grow_queued_headroom),
            (["shrink_saturated"], r.shrink_saturated),
            (["shrink_idle"], r.shrink_idle),
        ],
    )?;
    counter(enc, M::TasksCancelled, w.tasks_cancelled)?;
    counter(enc, M::WorkerDropPanics, w.drop_panics)?;
    counter(enc, M::WorkerDeaths, w.worker_deaths)?;
    counter(enc, M::WorkerControllerPanics, w.controller_panics)?;
    counter(enc, M::WorkerShutdownTimeouts, w.shutdown_timeouts)
}

#[cfg(feature = "nats")]
fn encode_nats(enc: &mut DescriptorEncoder, n: &NatsStats) -> Result<(), fmt::Error> {
    use Metric as M;
    gauge(enc, M::NatsConnected, u64::from(n.connected))?;
    counter(enc, M::NatsDisconnects, n.disconnects)?;
    labeled_counter(
        enc,
        M::NatsFrames,
        [(["out"], n.frames_sent), (["in"], n.frames_received)],
    )?;
    labeled_counter(enc, M::NatsFramesRejected, map_rows(&n.frames_rejected))?;
    counter(enc, M::NatsFramesLost, n.frames_lost)?;
    counter(enc, M::NatsMessagesLost, n.messages_lost)?;
    gauge(enc, M::NatsMessagesUnconfirmed, n.messages_unconfirmed)?;
    labeled_counter(
        enc,
        M::NatsBytes,
        [(["out"], n.bytes_sent), (["in"], n.bytes_received)],
    )?;
    labeled_counter(
        enc,
        M::NatsMessages,
        [(["out"], n.messages_out), (["in"], n.messages_in)],
    )?;
    counter(enc, M::NatsReconnects, n.reconnects)?;
    counter(enc, M::NatsSlowConsumer, n.slow_consumer_events)?;
    gauge(enc, M::NatsBuffered, n.buffered)?;
    gauge(enc, M::NatsDirectoryNodes, n.directory_nodes)?;
    gauge(enc, M::NatsDirectoryAgents, n.directory_agents)?;
    counter(
        enc,
        M::NatsDirectoryPublishFailures,
        n.directory_publish_failures,
    )?;
    counter(enc, M::NatsClaimConflicts, n.claim_conflicts)?;
    counter(enc, M::NatsNodeClashes, n.node_clashes)?;
    labeled_counter(
        enc,
        M::NatsHellos,
        [(["sent"], n.hellos_sent), (["deferred"], n.hellos_deferred)],
    )?;
    counter(enc, M::NatsNodesExpired, n.nodes_expired)?;
    counter(enc, M::NatsNodesRevived, n.nodes_revived)?;
    counter(enc, M::NatsRepliesNotForwarded, n.replies_not_forwarded)?;
    counter(
        enc,
        M::NatsRoleMembersUnannounced,
        n.role_members_unannounced,
    )?;
    counter(enc, M::NatsRolesRefused, n.roles_refused)?;
    counter(enc, M::NatsAgentsNotResumed, n.agents_not_resumed)?;
    if let Some(d) = &n.durable {
        labeled_counter(
            enc,
            M::NatsDurableAcks,
            [
                (["ack"], d.acks),
                (["nak"], d.naks),
                (["progress"], d.in_progress),
            ],
        )?;
        counter(enc, M::NatsDurableRedelivered, d.redelivered)?;
        counter(enc, M::NatsDurableDeduplicated, d.messages_deduplicated)?;
        counter(enc, M::NatsDurablePublishRetries, d.publish_retries)?;
        counter(enc, M::NatsDurablePublishDuplicates, d.publish_duplicates)?;
        counter(enc, M::NatsDurableErrors, d.jetstream_errors)?;
        counter(enc, M::NatsDurableTerminated, d.frames_terminated)?;
        gauge(enc, M::NatsDurableLag, d.stream_lag)?;
        gauge(enc, M::NatsDurableDedupIds, d.dedup_ids)?;
        counter(
            enc,
            M::NatsDurableDeadLettersPublished,
            d.dead_letters_published,
        )?;
        counter(enc, M::NatsDurableDirectoryWrites, d.directory_writes)?;
        gauge(
            enc,
            M::NatsDurableDirectoryLoaded,
            d.directory_agents_loaded,
        )?;
        counter(
            enc,
            M::NatsDurableDirectoryRefused,
            d.directory_entries_refused,
        )?;
    }
    Ok(())
}

fn encode_http(enc: &mut DescriptorEncoder, h: &HttpStats) -> Result<(), fmt::Error> {
    use Metric as M;
    gauge(enc, M::HttpConnectionsOpen, h.connections_open)?;
    gauge(enc, M::HttpConnectionsCap, h.connections_cap)?;
    counter(enc, M::HttpConnectionsAccepted, h.connections_accepted)?;
    labeled_counter(
        enc,
        M::HttpConnectionsDropped,
        [
            (["over_cap"], h.connections_over_cap),
            (["evicted"], h.connections_evicted),
            (["header_timeout"], h.connections_header_timeout),
            (["idle_timeout"], h.connections_idle_timeout),
        ],
    )?;
    counter(
        enc,
        M::HttpKeepAliveExpired,
        h.connections_keep_alive_expired,
    )?;
    counter(enc, M::HttpAcceptErrors, h.accept_errors)?;
    labeled_counter(
        enc,
        M::HttpRequestsRefused,
        [(["host"], h.requests_refused_host)],
    )
}

fn map_rows<'a>(
    map: &'a std::collections::BTreeMap<&'static str, u64>,
) -> impl Iterator<Item = ([&'static str; 1], u64)> + 'a {
    map.iter().map(|(k, v)| ([*k], *v))
}

fn counter(enc: &mut DescriptorEncoder, m: Metric, value: u64) -> Result<(), fmt::Error> {
    let def = m.def();
    let unit = def.unit();
    enc.encode_descriptor(def.name, def.help, unit.as_ref(), def.metric_type())?
        .encode_counter::<NoLabelSet, _, f64>(&value, None)
}

fn gauge<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    m: Metric,
    value: V,
) -> Result<(), fmt::Error> {
    let def = m.def();
    let unit = def.unit();
    enc.encode_descriptor(def.name, def.help, unit.as_ref(), def.metric_type())?
        .encode_gauge(&value)
}

/// Pairs label values with the def's label names.
fn label_pairs<'a, const N: usize>(
    def: &MetricDef,
    values: [&'a str; N],
) -> [(&'static str, &'a str); N] {
    std::array::from_fn(|i| (def.labels.get(i).copied().unwrap_or("label"), values[i]))
}

/// A counter family, one row per label-value tuple (in the def's label order).
fn labeled_counter<const N: usize>(
    enc: &mut DescriptorEncoder,
    m: Metric,
    rows: impl IntoIterator<Item = ([&'static str; N], u64)>,
) -> Result<(), fmt::Error> {
    let def = m.def();
    let unit = def.unit();
    let mut family = enc.encode_descriptor(def.name, def.help, unit.as_ref(), def.metric_type())?;
    for (values, value) in rows {
        family
            .encode_family(&label_pairs(def, values))?
            .encode_counter::<NoLabelSet, _, f64>(&value, None)?;
    }
    Ok(())
}

/// A gauge family, one row per label-value tuple.
fn labeled_gauge<'a, const N: usize, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    m: Metric,
    rows: impl IntoIterator<Item = ([&'a str; N], V)>,
) -> Result<(), fmt::Error> {
    let def = m.def();
    let unit = def.unit();
    let mut family = enc.encode_descriptor(def.name, def.help, unit.as_ref(), def.metric_type())?;
    for (values, value) in rows {
        family
            .encode_family(&label_pairs(def, values))?
            .encode_gauge(&value)?;
    }
    Ok(())
}

fn histogram(
    enc: &mut DescriptorEncoder,
    m: Metric,
    h: &HistogramSnapshot,
) -> Result<(), fmt::Error> {
    let def = m.def();
    let unit = def.unit();
    // prometheus-client accumulates per-bucket counts itself and prints f64::MAX as +Inf.
    let buckets: Vec<(f64, u64)> = h
        .bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::MAX))
        .zip(h.counts.iter().copied())
        .collect();
    enc.encode_descriptor(def.name, def.help, unit.as_ref(), def.metric_type())?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_matches_enum() {
        assert_eq!(Metric::Uptime.def().name, "uptime");
        assert_eq!(Metric::TaskQueueDepth.def().name, "task_queue_depth");
        assert_eq!(
            Metric::DeliveryLatency.def().exposed_name(),
            "swarmbus_delivery_latency_seconds"
        );
        assert_eq!(
            Metric::PayloadBytes.def().exposed_name(),
            "swarmbus_payload_bytes_total"
        );
        let names: HashSet<_> = METRICS.iter().map(|d| d.exposed_name()).collect();
        assert_eq!(names.len(), METRICS.len(), "duplicate metric name");
    }

    #[test]
    fn text_format_names_counters_with_total() {
        let om = "# HELP a_x Help.\n# TYPE a_x counter\na_x_total 3\n# HELP a_s S.\n# TYPE a_s_seconds gauge\n# UNIT a_s_seconds seconds\na_s_seconds 1.0\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP a_x_total Help.\n# TYPE a_x_total counter\na_x_total 3\n# HELP a_s S.\n# TYPE a_s_seconds gauge\na_s_seconds 1.0\n"
        );
    }
}

#[cfg(all(test, feature = "nats"))]
mod exported {
    use super::*;
    use crate::nats::DurableStats;
    use std::collections::BTreeMap;

    /// Every `frames_rejected` reason.
    const REFUSALS: [&str; 11] = crate::nats::REFUSAL_LABELS;

    /// A snapshot of a real (stopped) hub with every hardening counter set to its own value.
    async fn snapshot_with_every_counter_set() -> MetricsSnapshot {
        let hub = crate::Hub::start(crate::HubConfig::default()).unwrap();
        let mut s = hub.metrics();
        hub.shutdown().await.unwrap();
        let w = &mut s.workers;
        w.worker_deaths = 101;
        w.drop_panics = 102;
        w.controller_panics = 103;
        w.tasks_cancelled = 104;
        w.shutdown_timeouts = 105;
        let rejected: BTreeMap<&'static str, u64> = REFUSALS
            .iter()
            .enumerate()
            .map(|(i, l)| (*l, 300 + i as u64))
            .collect();
        s.nats = Some(NatsStats {
            node: "hub-a".into(),
            connected: true,
            frames_rejected: rejected,
            messages_lost: 201,
            messages_unconfirmed: 202,
            directory_publish_failures: 203,
            claim_conflicts: 204,
            node_clashes: 205,
            hellos_sent: 206,
            hellos_deferred: 207,
            nodes_expired: 208,
            nodes_revived: 209,
            replies_not_forwarded: 210,
            agents_not_resumed: 226,
            durable: Some(DurableStats {
                stream: "SWARMBUS_default".into(),
                acks: 211,
                naks: 212,
                in_progress: 222,
                redelivered: 213,
                messages_deduplicated: 214,
                dedup_ids: 215,
                publish_retries: 216,
                publish_duplicates: 217,
                jetstream_errors: 218,
                frames_terminated: 219,
                stream_lag: 220,
                dead_letters_published: 221,
                directory_writes: 223,
                directory_agents_loaded: 224,
                directory_entries_refused: 225,
            }),
            ..NatsStats::default()
        });
        s
    }

    /// Issue "hardening": the counters it added reached `MetricsSnapshot` but not `/metrics`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hardening_counters_are_exported() {
        let s = snapshot_with_every_counter_set().await;
        let text = encode_text(&s).unwrap();
        let mut expected: Vec<String> = [
            ("swarmbus_worker_deaths_total", 101),
            ("swarmbus_worker_drop_panics_total", 102),
            ("swarmbus_worker_controller_panics_total", 103),
            ("swarmbus_tasks_cancelled_total", 104),
            ("swarmbus_worker_shutdown_timeouts_total", 105),
            ("swarmbus_nats_messages_lost_total", 201),
            ("swarmbus_nats_messages_unconfirmed", 202),
            ("swarmbus_nats_directory_publish_failures_total", 203),
            ("swarmbus_nats_claim_conflicts_total", 204),
            ("swarmbus_nats_node_clashes_total", 205),
            ("swarmbus_nats_hellos_total{result=\"sent\"}", 206),
            ("swarmbus_nats_hellos_total{result=\"deferred\"}", 207),
            ("swarmbus_nats_nodes_expired_total", 208),
            ("swarmbus_nats_nodes_revived_total", 209),
            ("swarmbus_nats_replies_not_forwarded_total", 210),
            ("swarmbus_nats_agents_not_resumed_total", 226),
            ("swarmbus_nats_durable_acks_total{verdict=\"ack\"}", 211),
            ("swarmbus_nats_durable_acks_total{verdict=\"nak\"}", 212),
            (
                "swarmbus_nats_durable_acks_total{verdict=\"progress\"}",
                222,
            ),
            ("swarmbus_nats_durable_redelivered_frames_total", 213),
            ("swarmbus_nats_durable_messages_deduplicated_total", 214),
            ("swarmbus_nats_durable_dedup_ids", 215),
            ("swarmbus_nats_durable_publish_retries_total", 216),
            ("swarmbus_nats_durable_publish_duplicates_total", 217),
            ("swarmbus_nats_durable_jetstream_errors_total", 218),
            ("swarmbus_nats_durable_frames_terminated_total", 219),
            ("swarmbus_nats_durable_stream_lag", 220),
            ("swarmbus_nats_durable_dead_letters_published_total", 221),
            ("swarmbus_nats_durable_directory_writes_total", 223),
            ("swarmbus_nats_durable_directory_agents_loaded", 224),
            ("swarmbus_nats_durable_directory_entries_refused_total", 225),
        ]
        .iter()
        .map(|(k, v)| format!("{k} {v}\n"))
        .collect();
        for (i, reason) in REFUSALS.iter().enumerate() {
            expected.push(format!(
                "swarmbus_nats_frames_rejected_total{{reason=\"{reason}\"}} {}\n",
                300 + i
            ));
        }
        let missing: Vec<_> = expected.iter().filter(|l| !text.contains(*l)).collect();
        assert!(
            missing.is_empty(),
            "missing from /metrics: {missing:?}\n{text}"
        );
    }

    /// Every metric the Grafana dashboard and the metrics reference name is one the hub defines,
    /// and every defined family is documented.
    #[test]
    fn grafana_and_docs_match_the_metric_table() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let defined: Vec<String> = METRICS.iter().map(|d| d.exposed_name()).collect();
        let grafana = std::fs::read_to_string(root.join("docs/grafana/swarmbus.json")).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&grafana).expect("valid JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 10);
        let mut used = 0;
        for target in panels
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap().iter())
        {
            let expr = target["expr"].as_str().expect("expr");
            for family in metric_names_in(expr) {
                assert!(defined.contains(&family), "Grafana uses unknown {family}");
                used += 1;
            }
        }
        assert!(used > 20);
        let docs = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
        for name in &defined {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} not in docs/metrics.md"
            );
        }
        // ... and every metric the reference names (in its tables and its queries) exists.
        for name in metric_names_in(&docs) {
            assert!(
                defined.contains(&name),
                "docs/metrics.md names unknown {name}"
            );
        }
        // What an operator must see on the Grafana dashboard: the faults the hardening counts.
        let exprs: String = panels
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap().iter())
            .filter_map(|t| t["expr"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        for family in [
            "swarmbus_nats_connected",
            "swarmbus_nats_buffered",
            "swarmbus_nats_messages_lost_total",
            "swarmbus_nats_frames_rejected_total",
            "swarmbus_nats_node_clashes_total",
            "swarmbus_worker_deaths_total",
            "swarmbus_tasks_cancelled_total",
            "swarmbus_http_connections_open",
            "swarmbus_http_connections_cap",
            "swarmbus_http_connections_dropped_total",
            "swarmbus_http_requests_refused_total",
        ] {
            assert!(
                metric_names_in(&exprs).contains(&family.to_string()),
                "no Grafana panel shows {family}"
            );
        }
    }

    /// Every `swarmbus_*` metric family named in `text`, with a histogram's `_bucket`, `_sum`
    /// and `_count` series mapped to their family.
    fn metric_names_in(text: &str) -> Vec<String> {
        let defined: Vec<String> = METRICS.iter().map(|d| d.exposed_name()).collect();
        let mut names = Vec::new();
        for (i, _) in text.match_indices("swarmbus_") {
            if text[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| defined.iter().any(|d| d == f))
                })
                .map_or(name.clone(), str::to_string);
            if !names.contains(&family) {
                names.push(family);
            }
        }
        names
    }
}
