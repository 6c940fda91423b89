//! NATS accounts and permissions as the first line of defence, against a real `nats-server`
//! running the documented `docs/nats/swarm-accounts.conf` as it is (the file is loaded, not
//! copied): hubs connect as `hub`, an `observer` can watch the directory but not forge in
//! it, and another account sees nothing of the swarm.
//!
//! Each test starts its own server on a free loopback port, with random passwords in the
//! environment the file reads them from, and stops it by its PID. When `nats-server` is
//! missing the tests fail under `CI=true` and are skipped elsewhere.

mod common;

use futures_util::{FutureExt, StreamExt};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use swarmbus::nats::NatsConfig;
use swarmbus::{AgentId, Hub, HubConfig};
use tokio::sync::mpsc;

/// The configuration file the docs describe.
fn config_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/nats/swarm-accounts.conf")
}

/// Passwords of the file's users, fresh for each server.
struct Passwords {
    hub: String,
    observer: String,
    tenant: String,
}

/// `nats-server -c docs/nats/swarm-accounts.conf`, killed by its PID on drop.
struct AccountsServer {
    child: Child,
    port: u16,
    /// The server's log, removed on drop.
    log: PathBuf,
    passwords: Passwords,
    // One server at a time: a port chosen free must not be taken by another test's server.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl AccountsServer {
    fn start(test: &str) -> Option<AccountsServer> {
        if !common::require_tool("nats-server", test) {
            return None;
        }
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        // nats-server parses a variable's value as a config value: one starting with a digit
        // (`9e3a…`) is not a string and the server refuses to start; hence the prefix.
        let fresh = || format!("pw{}", uuid::Uuid::new_v4().simple());
        let passwords = Passwords {
            hub: fresh(),
            observer: fresh(),
            tenant: fresh(),
        };
        let config = config_file();
        let log = std::env::temp_dir().join(format!("swarmbus-nats-accounts-{port}.log"));
        assert!(config.is_file(), "missing {}", config.display());
        let mut child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .env("SWARMBUS_HUB_PASSWORD", &passwords.hub)
            .env("SWARMBUS_OBSERVER_PASSWORD", &passwords.observer)
            .env("SWARMBUS_TENANT_PASSWORD", &passwords.tenant)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("server log file"))
            .spawn()
            .expect("spawn nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "nats-server refused {} ({status}): {said}",
                    config.display()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(AccountsServer {
            child,
            port,
            log,
            passwords,
            _turn: turn,
        })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A hub of the swarm `prod`, connected as the `hub` user.
    async fn hub(&self, node: &str) -> Hub {
        let mut nats = NatsConfig::new(self.url(), node);
        nats.swarm = "prod".into();
        nats.user = Some("hub".into());
        nats.password = Some(self.passwords.hub.clone());
        nats.heartbeat = Duration::from_millis(100);
        nats.node_timeout = Duration::from_millis(1000);
        let mut config = HubConfig::default();
        config.nats = Some(nats);
        Hub::connect(config).await.expect("hub connects as `hub`")
    }

    /// A plain NATS client, with the server's errors (permission violations) as events.
    async fn client(&self, user: &str, password: &str) -> Client {
        let (tx, events) = mpsc::unbounded_channel();
        let client =
            async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
                .event_callback(move |event| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(event);
                    }
                })
                .connect(self.url())
                .await
                .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        Client { client, events }
    }
}

impl Drop for AccountsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

struct Client {
    client: async_nats::Client,
    events: mpsc::UnboundedReceiver<async_nats::Event>,
}

impl Client {
    /// The next server error whose text contains `needle` (case-insensitive), within 10 s.
    async fn server_error(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no server error containing {needle:?} within 10 s"))
                .expect("event channel open");
            if let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = event {
                if text.to_lowercase().contains(&needle.to_lowercase()) {
                    return text;
                }
            }
        }
    }
}

/// The next message on `sub`, within 10 s.
async fn next(sub: &mut async_nats::Subscriber, what: &str) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap_or_else(|_| panic!("no message for {what} within 10 s"))
        .unwrap_or_else(|| panic!("subscription for {what} closed"))
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A directory hello claiming `agent` for a hub that does not exist (today's JSON shape of
/// the directory protocol, `Control::Hello` in nats/mod.rs).
fn forged_hello(agent: AgentId) -> bytes::Bytes {
    serde_json::json!({
        "node": "mallory",
        "epoch": 3,
        "seq": 1,
        "body": {"t": "hello", "part": 0, "parts": 1, "total": 1, "agents": [agent], "reply": false},
    })
    .to_string()
    .into()
}

/// Two hubs of the swarm talk while connected as `hub`.
async fn two_hubs(server: &AccountsServer) -> (Hub, Hub) {
    let a = server.hub("hub-a").await;
    let b = server.hub("hub-b").await;
    let a1 = a.register("a1").unwrap();
    let mut b1 = b.register("b1").unwrap();
    until("the hubs to learn each other's agents", || {
        a.knows(b1.id()) && b.knows(a1.id())
    })
    .await;
    a1.send(b1.id(), "hello through the account").await.unwrap();
    let env = tokio::time::timeout(Duration::from_secs(10), b1.recv())
        .await
        .expect("direct message within 10 s")
        .expect("mailbox open");
    assert_eq!(
        env.payload().to_text().unwrap(),
        "hello through the account"
    );
    assert_eq!(env.from(), a1.id());
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_talk_as_hub_and_an_observer_cannot_forge() {
    let Some(server) = AccountsServer::start("hubs_talk_as_hub_and_an_observer_cannot_forge")
    else {
        return;
    };
    // (a) Two hubs connected as `hub` exchange a direct message.
    let (a, b) = two_hubs(&server).await;

    // The observer watches the directory...
    let mut observer = server
        .client("observer", &server.passwords.observer.clone())
        .await;
    let mut watch = observer
        .client
        .subscribe("swarmbus.prod.dir")
        .await
        .unwrap();
    next(&mut watch, "the observer's first directory message").await;

    // (b) ...but a hello it forges is refused by the server, not delivered.
    let victim = AgentId::new_v4();
    let forged = forged_hello(victim);
    observer
        .client
        .publish("swarmbus.prod.dir", forged.clone())
        .await
        .unwrap();
    observer.client.flush().await.unwrap();
    let refused = observer
        .server_error("permissions violation for publish")
        .await;
    assert!(refused.contains("swarmbus.prod.dir"), "{refused}");
    // Nor may it read the hubs' data subjects.
    let _denied = observer
        .client
        .subscribe("swarmbus.prod.node.hub-b")
        .await
        .unwrap();
    let refused = observer
        .server_error("permissions violation for subscription")
        .await;
    assert!(refused.contains("swarmbus.prod.node.hub-b"), "{refused}");

    // Control: the same forgery with a `hub` credential gets through and takes effect, so
    // the permissions, not the hubs, stopped the observer's (this is what the swarm key is
    // for; see docs/scale-out.md).
    let insider = server.client("hub", &server.passwords.hub.clone()).await;
    let accomplice = AgentId::new_v4();
    insider
        .client
        .publish("swarmbus.prod.dir", forged_hello(accomplice))
        .await
        .unwrap();
    insider.client.flush().await.unwrap();
    until("the hubs to take the insider's forged hello", || {
        a.knows(accomplice) && b.knows(accomplice)
    })
    .await;
    assert!(
        !a.knows(victim) && !b.knows(victim),
        "the observer's forged hello reached the directory"
    );
    // The observer's subscription (echo is on) saw the insider's forgery, never its own.
    let expected = forged_hello(accomplice);
    let mut seen = 0;
    loop {
        let message = next(&mut watch, "the insider's forged hello").await;
        assert_ne!(
            message.payload, forged,
            "the observer's forgery was delivered"
        );
        seen += 1;
        assert!(
            seen < 10_000,
            "the insider's forgery never reached the observer"
        );
        if message.payload == expected {
            break;
        }
    }

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_sees_nothing_and_strangers_are_refused() {
    let Some(server) =
        AccountsServer::start("another_account_sees_nothing_and_strangers_are_refused")
    else {
        return;
    };
    // Without credentials, or with a wrong password, there is no connection at all.
    for options in [
        async_nats::ConnectOptions::new(),
        async_nats::ConnectOptions::with_user_and_password("hub".into(), "wrong".into()),
    ] {
        let refused = options.connect(server.url()).await;
        assert!(refused.is_err(), "a stranger connected");
    }

    let (a, b) = two_hubs(&server).await;
    // (c) A client of another account subscribes to everything it may: its own account.
    let tenant = server
        .client("tenant", &server.passwords.tenant.clone())
        .await;
    let mut everything = tenant.client.subscribe(">").await.unwrap();
    let mut swarm_dir = tenant.client.subscribe("swarmbus.prod.>").await.unwrap();
    tenant.client.flush().await.unwrap();
    // A swarm-account witness subscribed the same way sees the hubs' traffic flowing.
    let witness = server.client("hub", &server.passwords.hub.clone()).await;
    let mut witnessed = witness.client.subscribe("swarmbus.prod.>").await.unwrap();
    witness.client.flush().await.unwrap();

    // The tenant publishes a hello on the same subject name: it stays in its account.
    let victim = AgentId::new_v4();
    let forged = forged_hello(victim);
    tenant
        .client
        .publish("swarmbus.prod.dir", forged.clone())
        .await
        .unwrap();
    tenant.client.flush().await.unwrap();
    // Wait for a few directory messages of the hubs after the tenant's publish: had the
    // forgery crossed over, the witness would have had it first.
    let mut beats = 0;
    for _ in 0..10_000 {
        let message = next(&mut witnessed, "the hubs' traffic").await;
        assert_ne!(
            message.payload, forged,
            "another account's forgery reached the swarm"
        );
        if message.subject.as_str() == "swarmbus.prod.dir" {
            beats += 1;
            if beats == 3 {
                break;
            }
        }
    }
    assert_eq!(beats, 3, "the hubs went quiet");
    assert!(!a.knows(victim) && !b.knows(victim));

    // Then a marker: the server delivers to the tenant in order, so everything it would have
    // routed from the swarm since the subscription would arrive before the marker. Only the
    // tenant's own two messages arrive.
    tenant
        .client
        .publish("tenant.marker", "marker".into())
        .await
        .unwrap();
    tenant.client.flush().await.unwrap();
    let first = next(&mut everything, "the tenant's own hello").await;
    assert_eq!(
        (first.subject.as_str(), &first.payload),
        ("swarmbus.prod.dir", &forged),
        "the tenant received the swarm's traffic"
    );
    let second = next(&mut everything, "the tenant's marker").await;
    assert_eq!(
        second.subject.as_str(),
        "tenant.marker",
        "the tenant received the swarm's traffic"
    );
    let only = next(&mut swarm_dir, "the tenant's own hello").await;
    assert_eq!(
        only.payload, forged,
        "the tenant received the swarm's traffic"
    );
    // Messages are handed to subscriptions in arrival order: anything before the marker is
    // queued by now.
    assert!(
        swarm_dir.next().now_or_never().is_none(),
        "the tenant received the swarm's traffic"
    );

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
