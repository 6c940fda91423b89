//! The durable side of a bridge: the swarm's streams and this hub's consumer, opened
//! (or created) and checked at start, and what the durable tasks share.

use super::ack::{InFlight, Settled};
use super::config::DurableConfig;
use super::counters::Counters;
use super::window::Window;
use crate::nats::config::{nats_error, NatsConfig};
use crate::nats::subjects::Subjects;
use crate::{Error, Result};
use async_nats::jetstream::{self, consumer, kv, stream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The durable side of a bridge: the JetStream context, the stream, and the receiving
/// hub's memory of ids.
#[derive(Debug)]
pub(crate) struct Durable {
    pub(crate) js: jetstream::Context,
    pub(crate) config: DurableConfig,
    pub(crate) stream: String,
    pub(crate) window: Arc<Window>,
    pub(crate) stats: Arc<Counters>,
    /// Settled frames, for the acknowledging task.
    pub(crate) settled: flume::Sender<Settled>,
    pub(crate) settled_rx: flume::Receiver<Settled>,
    /// Frames delivered and not finished.
    pub(crate) in_flight: Arc<InFlight>,
    /// The swarm's directory in JetStream key-value (`directory.rs`).
    pub(crate) directory: kv::Store,
    /// The bucket's name.
    pub(crate) directory_bucket: String,
    /// How often each of this hub's entries is rewritten at least: half the bucket's
    /// `max_age`.
    pub(crate) directory_refresh: Duration,
    /// The most parts this hub's entry had (their keys go at shutdown).
    pub(crate) directory_parts: AtomicU32,
}

impl Durable {
    /// The figures for `NatsStats::durable`.
    pub(crate) fn snapshot(&self) -> crate::nats::stats::DurableStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        crate::nats::stats::DurableStats {
            stream: self.stream.clone(),
            acks: get(&s.acks),
            naks: get(&s.naks),
            in_progress: get(&s.progress),
            redelivered: get(&s.redelivered),
            messages_deduplicated: get(&s.deduplicated),
            dedup_ids: self.window.len() as u64,
            publish_retries: get(&s.publish_retries),
            publish_duplicates: get(&s.publish_duplicates),
            jetstream_errors: get(&s.errors),
            frames_terminated: get(&s.terminated),
            stream_lag: get(&s.lag),
            dead_letters_published: get(&s.dead_letters_published),
            directory_writes: get(&s.directory_writes),
            directory_agents_loaded: get(&s.directory_loaded),
            directory_entries_refused: get(&s.directory_refused),
        }
    }

    /// Removes this hub's entries from the directory bucket (a goodbye): hubs started
    /// later do not learn agents that are gone. Failures are counted; what is left
    /// expires with the bucket's `max_age`.
    pub(crate) async fn forget_directory(&self, node: &str) {
        let parts = self.directory_parts.load(Ordering::Acquire);
        let keys = std::iter::once(hub_key(node)).chain((0..parts).map(|i| part_key(node, i)));
        for key in keys {
            if let Err(e) = self.directory.purge(&key).await {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "swarmbus::nats", "directory: could not remove {key}: {e}");
            }
        }
    }

    /// Opens (or creates) the swarm's streams and this hub's consumer.
    ///
    /// # Errors
    ///
    /// [`Error::Stream`] for a stream that is missing (without `create`), misconfigured or
    /// full, or when JetStream is not enabled; [`Error::Nats`] for a JetStream call that
    /// failed otherwise.
    pub(crate) async fn open(
        client: async_nats::Client,
        nats: &NatsConfig,
        config: DurableConfig,
        subjects: &Subjects,
    ) -> Result<(Durable, consumer::PullConsumer)> {
        let js = jetstream::new(client);
        let name = config.stream_name(&nats.swarm);
        let wanted = stream::Config {
            name: name.clone(),
            subjects: vec![subjects.node("*")],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::New,
            max_bytes: config.max_bytes,
            max_age: config.max_age,
            duplicate_window: config.duplicate_window,
            ..Default::default()
        };
        let stream = ensure_stream(&js, wanted, config.create).await?;
        let dlq = stream::Config {
            name: format!("{name}_DLQ"),
            subjects: vec![subjects.dead_letters("*")],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            max_bytes: config.max_bytes,
            max_age: config.max_age,
            ..Default::default()
        };
        ensure_stream(&js, dlq, config.create).await?;
        let consumer = ensure_consumer(&stream, &name, nats, &config, subjects).await?;
        let (directory, directory_bucket, directory_refresh) =
            ensure_bucket(&js, nats, &config).await?;
        let (settled, settled_rx) = flume::unbounded();
        Ok((
            Durable {
                js,
                window: Arc::new(Window::new(config.dedup_window)),
                config,
                stream: name,
                stats: Arc::new(Counters::default()),
                settled,
                settled_rx,
                in_flight: Arc::default(),
                directory,
                directory_bucket,
                directory_refresh,
                directory_parts: AtomicU32::new(0),
            },
            consumer,
        ))
    }
}

/// The stream `wanted.name`, created when missing (with `create`), checked when present.
async fn ensure_stream(
    js: &jetstream::Context,
    wanted: stream::Config,
    create: bool,
) -> Result<stream::Stream> {
    let name = wanted.name.clone();
    let problem = |problem: String| Error::Stream {
        stream: name.clone(),
        problem,
    };
    let stream = match js.get_stream(&name).await {
        Ok(stream) => stream,
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(err) if err.code() == 404 => {
                if !create {
                    return Err(problem(
                        "it does not exist (and nats.durable.create is off)".into(),
                    ));
                }
                js.create_stream(wanted.clone())
                    .await
                    .map_err(|e| nats_error(&format!("JetStream create stream {name}"), e))?
            }
            jetstream::context::GetStreamErrorKind::Request => {
                return Err(problem(format!(
                    "JetStream did not answer ({e}): is it enabled on the server (`nats-server -js -sd DIR`)?"
                )))
            }
            _ => return Err(nats_error(&format!("JetStream stream {name}"), e)),
        },
    };
    check_stream(stream.cached_info(), &wanted).map_err(problem)?;
    Ok(stream)
}

/// Room under which a stream that refuses new messages counts as full at start.
const FULL_MARGIN: u64 = 4096;

/// Whether an existing stream can carry what this hub needs.
fn check_stream(info: &stream::Info, wanted: &stream::Config) -> std::result::Result<(), String> {
    let have = &info.config;
    for subject in &wanted.subjects {
        let covered = have
            .subjects
            .iter()
            .any(|s| s == subject || covers(s, subject));
        if !covered {
            return Err(format!(
                "its subjects {:?} do not cover `{subject}`",
                have.subjects
            ));
        }
    }
    if have.retention == stream::RetentionPolicy::WorkQueue {
        return Err("it has work-queue retention; interest or limits retention is needed".into());
    }
    // Full: not even a small frame fits, and new messages are refused.
    if have.discard == stream::DiscardPolicy::New
        && have.max_bytes > 0
        && info.state.bytes.saturating_add(FULL_MARGIN) > have.max_bytes as u64
    {
        return Err(format!(
            "it is full ({} of {} bytes) and refuses new messages",
            info.state.bytes, have.max_bytes
        ));
    }
    Ok(())
}

/// Whether the subject pattern `pattern` matches every subject `subject` matches.
fn covers(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The key of a hub's entry in the directory bucket.
pub(crate) fn hub_key(node: &str) -> String {
    node.to_string()
}

/// The key of one part of a hub's agent list.
pub(crate) fn part_key(node: &str, part: u32) -> String {
    format!("{node}.{part}")
}

/// The swarm's directory bucket, created when missing (with `create`), with how often an
/// entry must be rewritten to outlive the bucket's `max_age`.
async fn ensure_bucket(
    js: &jetstream::Context,
    nats: &NatsConfig,
    config: &DurableConfig,
) -> Result<(kv::Store, String, Duration)> {
    let bucket = format!("SWARMBUS_{}_DIR", nats.swarm);
    let problem = |problem: String| Error::Stream {
        stream: format!("KV_{bucket}"),
        problem,
    };
    let store = match js.get_key_value(&bucket).await {
        Ok(store) => store,
        Err(_) if config.create => {
            // The bucket's stream as `create_key_value` would make it (that call first asks
            // for account details that servers before 2.10 answer in another shape).
            js.create_stream(stream::Config {
                name: format!("KV_{bucket}"),
                description: Some(format!("swarmbus directory of swarm {}", nats.swarm)),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_bytes: -1,
                max_message_size: -1,
                max_age: config.directory_ttl,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error(&format!("JetStream create key-value bucket {bucket}"), e))?;
            js.get_key_value(&bucket)
                .await
                .map_err(|e| nats_error(&format!("JetStream key-value bucket {bucket}"), e))?
        }
        Err(e) => {
            return Err(problem(format!(
                "the directory bucket is not there ({e}) and nats.durable.create is off"
            )))
        }
    };
    let status = store
        .status()
        .await
        .map_err(|e| nats_error(&format!("JetStream key-value bucket {bucket}"), e))?;
    let max_age = status.max_age();
    let least = nats.heartbeat * 4;
    if !max_age.is_zero() && max_age < least {
        return Err(problem(format!(
            "its max_age {max_age:?} is under four heartbeats ({least:?}): entries would expire between rewrites"
        )));
    }
    let refresh = if max_age.is_zero() {
        config.directory_ttl / 2
    } else {
        max_age / 2
    };
    Ok((store, bucket, refresh))
}

/// This hub's durable consumer: created when missing, its settings brought up to date
/// when present.
async fn ensure_consumer(
    stream: &stream::Stream,
    stream_name: &str,
    nats: &NatsConfig,
    config: &DurableConfig,
    subjects: &Subjects,
) -> Result<consumer::PullConsumer> {
    let filter = subjects.node(&nats.node);
    let wanted = consumer::pull::Config {
        durable_name: Some(nats.node.clone()),
        description: Some(format!("swarmbus hub {}", nats.node)),
        filter_subject: filter.clone(),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        max_deliver: i64::from(config.max_deliver),
        max_ack_pending: i64::from(config.max_ack_pending),
        ..Default::default()
    };
    let what = format!("JetStream consumer {} on {stream_name}", nats.node);
    match stream.consumer_info(&nats.node).await {
        Ok(have) => {
            if have.config.filter_subject != filter {
                return Err(Error::Stream {
                    stream: stream_name.into(),
                    problem: format!(
                        "its consumer `{}` reads `{}`, not `{filter}`",
                        nats.node, have.config.filter_subject
                    ),
                });
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::ConsumerInfoErrorKind::NotFound
            ) => {}
        Err(e) => return Err(nats_error(&what, e)),
    }
    // Creates it, or updates what may change (ack_wait, max_deliver, max_ack_pending).
    stream
        .create_consumer(wanted)
        .await
        .map_err(|e| nats_error(&what, e))
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn subject_patterns_cover_what_they_match() {
        assert!(covers("swarmbus.s.node.*", "swarmbus.s.node.*"));
        assert!(covers("swarmbus.s.>", "swarmbus.s.node.*"));
        assert!(covers("swarmbus.*.node.*", "swarmbus.s.node.*"));
        assert!(!covers("swarmbus.s.node.a", "swarmbus.s.node.*"));
        assert!(!covers("swarmbus.t.>", "swarmbus.s.node.*"));
        assert!(!covers("swarmbus.s.node", "swarmbus.s.node.*"));
    }
}
