//! `Debug` of every type that holds a token, a password or a key prints it redacted, so
//! `tracing::debug!(?config)` or `{hub:?}` in a log never leaks credentials.

use std::time::Duration;
use swarmbus::nats::NatsConfig;
use swarmbus::{Hub, HubConfig};

const SECRETS: [&str; 6] = [
    "bearer-SECRET-1",
    "urlpass-SECRET-2",
    "natstoken-SECRET-3",
    "natspass-SECRET-4",
    "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2",
    "01d001d001d001d001d001d001d001d001d001d001d001d001d001d001d001d0",
];

fn config() -> HubConfig {
    let mut nats = NatsConfig::new("nats://admin:urlpass-SECRET-2@127.0.0.1:1", "hub-a");
    nats.token = Some(SECRETS[2].into());
    nats.user = Some("admin".into());
    nats.password = Some(SECRETS[3].into());
    nats.swarm_key = Some(SECRETS[4].into());
    nats.previous_keys = vec![SECRETS[5].into()];
    let mut config = HubConfig::default();
    config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    config.auth_token = Some(SECRETS[0].into());
    config.nats = Some(nats);
    config
}

fn assert_redacted(what: &str, shown: &str) {
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{what} shows {secret}: {shown}");
    }
    assert!(shown.contains("<redacted>"), "{what}: {shown}");
}

#[test]
fn configurations_print_their_secrets_redacted() {
    let config = config();
    config.validate().expect("a valid configuration");
    assert_redacted("HubConfig", &format!("{config:?}"));
    assert_redacted("HubConfig (pretty)", &format!("{config:#?}"));
    let nats = config.nats.as_ref().unwrap();
    assert_redacted("NatsConfig", &format!("{nats:?} {nats:#?}"));
}

#[tokio::test]
async fn a_running_hub_prints_its_secrets_redacted() {
    // Nothing listens on port 1: the hub serves HTTP and keeps trying to join the swarm in
    // the background; every part of it that holds a secret is in its `Debug`.
    let hub = Hub::start(config()).expect("start");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_redacted("Hub", &format!("{hub:?} {hub:#?}"));
    assert_redacted("Hub::config", &format!("{:?}", hub.config()));
    hub.shutdown().await.expect("shutdown");
    assert_redacted("Hub after shutdown", &format!("{hub:?}"));
}
