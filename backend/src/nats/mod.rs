//! Scale-out: hubs on several hosts form one swarm through a NATS server.
//!
//! We do not run a cluster protocol of our own. Each hub:
//! - announces its agents on `swarmbus.<swarm>.dir` (`control`: hello in parts sized
//!   from the server's `max_payload`, join, leave, heartbeat, sync, bye) and learns everyone
//!   else's into a `directory`; a hub silent for `node_timeout` is expired, and sends to
//!   its agents then fail with `UnknownAgent`, while what was buffered for it waits for
//!   `departed_retention` in case it comes back;
//! - sends to a remote agent through a `link` per remote hub: a mailbox like any other,
//!   whose batches the `outbound` publisher turns into one `frame` per batch on
//!   `swarmbus.<swarm>.node.<hub>` (batching pays on the wire too; payloads travel
//!   compressed);
//! - sends broadcasts and topic messages through two more links, on `swarmbus.<swarm>.all`
//!   and `swarmbus.<swarm>.topic.<topic>`, delivered by every hub to its own agents;
//! - decodes what arrives in `inbound`, which refuses replays, stale epochs and senders
//!   that belong to another hub, and counts lost frames and messages from the sequence
//!   numbers.
//!
//! While NATS is unreachable, nobody is expired, and messages for remote hubs wait in their
//! links (at most `outage_buffer` each; beyond it, sends fail with `MailboxFull`, never
//! block); they are published after the client reconnects and the remote hub has been
//! heard again. NATS core is at-most-once: frames in flight when a connection breaks can
//! be lost; the receiver counts them (`messages_lost`), and a shutdown reports what it
//! could not hand over or get confirmed. See `docs/scale-out.md` for the guarantees and
//! the trust model.

mod announcer;
mod bridge;
mod config;
mod control;
mod directory;
mod durable;
pub(crate) mod frame;
mod inbound;
mod link;
mod outbound;
mod roles;
pub(crate) mod signing;
mod stats;
mod subjects;

pub use config::NatsConfig;
pub use durable::DurableConfig;

/// The ranges [`NatsConfig::validate`] enforces.
pub mod limits {
    pub use super::config::{
        MAX_CAPACITY, MAX_DURATION, MAX_FRAME_BYTES, MAX_FRAME_MESSAGES, MAX_OUTAGE_BUFFER,
    };
    pub use super::durable::MAX_DEDUP_WINDOW;
}
pub use stats::{DurableStats, NatsStats};

/// Every reason label of `NatsStats::frames_rejected`, in order.
#[cfg(all(test, feature = "http"))]
pub(crate) const REFUSAL_LABELS: [&str; 11] = stats::Refusal::LABELS;

pub(crate) use bridge::{Bridge, LocalChange};

use crate::bus::Inbound;
use crate::Result;
use config::nats_error;
use directory::Directory;
use frame::Limits;
use link::{Link, Stream};
use parking_lot::Mutex;
use stats::BridgeStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use subjects::Subjects;

/// Connects, subscribes, checks that the node name is free, announces this hub, and starts
/// the bridge's tasks.
pub(crate) async fn start(bus: Inbound, config: NatsConfig) -> Result<Arc<Bridge>> {
    config.validate()?;
    let keyring = config.keyring()?;
    let stats = Arc::new(BridgeStats::default());
    let (events_tx, events_rx) = flume::unbounded::<async_nats::Event>();
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("swarmbus-{}", config.node))
        .subscription_capacity(config.subscription_capacity)
        .client_capacity(config.client_capacity)
        .max_reconnects(None::<usize>)
        .event_callback(move |event| {
            let tx = events_tx.clone();
            async move {
                let _ = tx.send(event);
            }
        });
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(path) = &config.creds_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| nats_error("NATS credentials file", e))?;
    }
    if config.tls_required {
        options = options.require_tls(true);
    }
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_client_cert, &config.tls_client_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let client = options
        .connect(config.url.as_str())
        .await
        .map_err(|e| nats_error(&format!("NATS connect to {}", config.url), e))?;
    stats.connected.store(true, Ordering::Relaxed);
    let server_max = client.server_info().max_payload;
    let max_message = config.max_frame_bytes.min(server_max.max(4096));
    if server_max < config.max_frame_bytes {
        tracing::info!(
            target: "swarmbus::nats",
            "the server takes messages of at most {server_max} bytes: frames and announcements are split to fit"
        );
    }
    let subjects = Subjects::new(&config.swarm);
    let durable = match config.durable.clone() {
        Some(durable) => {
            let (durable, consumer) =
                durable::Durable::open(client.clone(), &config, durable, &subjects).await?;
            Some((Arc::new(durable), consumer))
        }
        None => None,
    };
    let (changes, changes_rx) = flume::unbounded();
    let (durable_changes, durable_changes_rx) = match durable {
        Some(_) => {
            let (tx, rx) = flume::unbounded();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let epoch = start_epoch();
    let link = |instance| {
        Link::new(
            instance,
            bus.link_mailbox(config.outage_buffer, config.frame_messages),
        )
    };
    let (everyone, topics) = (link(1), link(2));
    let bridge = Arc::new(Bridge {
        epoch,
        limits: Limits {
            max_frame: max_message,
            max_payload: bus.max_payload(),
        },
        max_message,
        client,
        subjects,
        directory: Directory::default(),
        stats,
        changes,
        durable_changes,
        tasks: Mutex::new(Vec::new()),
        publishers: Mutex::new(Vec::new()),
        links_created: AtomicU64::new(2),
        everyone,
        topics,
        announced: AtomicU64::new(0),
        floor: Mutex::new(Instant::now()),
        clash_logged: Mutex::new(None),
        keyring,
        config,
        bus: bus.clone(),
        durable: durable.as_ref().map(|(d, _)| d.clone()),
    });
    let sub_err = |e: async_nats::SubscribeError| nats_error("NATS subscribe", e);
    let client = &bridge.client;
    // Durable: what is addressed to this hub comes from its consumer, never from a plain
    // subscription (which would get every frame a second time).
    let inbox = match &durable {
        Some(_) => None,
        None => Some(
            client
                .subscribe(bridge.subjects.node(&bridge.config.node))
                .await
                .map_err(sub_err)?,
        ),
    };
    let all = client
        .subscribe(bridge.subjects.all())
        .await
        .map_err(sub_err)?;
    let topics = client
        .subscribe(bridge.subjects.topics())
        .await
        .map_err(sub_err)?;
    let mut dir = client
        .subscribe(bridge.subjects.directory())
        .await
        .map_err(sub_err)?;
    // Is the name taken? Ask, and listen for one heartbeat before announcing anything, so
    // a second hub with the same name never replaces the first in anyone's directory.
    let early = announcer::probe(&bridge, &mut dir).await?;
    let weak = bus;
    let mut tasks = Vec::new();
    if let Some(inbox) = inbox {
        tasks.push(tokio::spawn(inbound::run(
            weak.clone(),
            bridge.clone(),
            inbox,
            Stream::Direct,
        )));
    }
    if let (Some((durable, consumer)), Some(changes)) = (durable, durable_changes_rx) {
        // Know the swarm before the first send, not after the next announcements.
        durable::load_directory(&bridge, &durable).await;
        tasks.extend(durable::start(&weak, &bridge, durable, consumer, changes));
    }
    tasks.extend([
        tokio::spawn(inbound::run(
            weak.clone(),
            bridge.clone(),
            all,
            Stream::Everyone,
        )),
        tokio::spawn(inbound::run(
            weak.clone(),
            bridge.clone(),
            topics,
            Stream::Topics,
        )),
        tokio::spawn(announcer::run(
            weak.clone(),
            bridge.clone(),
            dir,
            early,
            changes_rx,
            events_rx,
        )),
    ]);
    bridge.tasks.lock().extend(tasks);
    let fan_out = |target| tokio::spawn(outbound::run(weak.clone(), bridge.clone(), target));
    // Agents registered before the bridge existed are in the first hello.
    let fan_out_publishers = [
        (None, fan_out(outbound::Target::Everyone)),
        (None, fan_out(outbound::Target::Topics)),
    ];
    bridge.publishers.lock().extend(fan_out_publishers);
    Ok(bridge)
}

/// Decodes `data` as a wire frame with 1 MiB limits and reads every payload; returns
/// whether it was accepted. For the fuzz target (`fuzz/`, built by `cargo fuzz` with
/// `--cfg fuzzing`): any input must return, never panic.
#[cfg(fuzzing)]
pub fn fuzz_decode_frame(data: &[u8]) -> bool {
    decode_any_frame(data)
}

/// What the fuzz target runs; unit tests run it too, so it cannot rot outside fuzz builds.
#[cfg(any(test, fuzzing))]
pub(crate) fn decode_any_frame(data: &[u8]) -> bool {
    let limits = Limits {
        max_frame: 1 << 20,
        max_payload: 1 << 20,
    };
    match frame::decode(bytes::Bytes::copy_from_slice(data), limits, 0) {
        Ok(frame) => {
            for env in &frame.envelopes {
                let _ = env.payload().bytes();
            }
            true
        }
        Err(_) => false,
    }
}

/// The start time in nanoseconds since 1970: a restarted hub's epoch is higher than its
/// previous one's (the directory refuses lower ones as stale).
fn start_epoch() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    nanos.max(1)
}

#[cfg(test)]
mod tests;
