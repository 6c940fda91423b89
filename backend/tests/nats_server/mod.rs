//! A `nats-server` child process on a free loopback port, for every test that needs a real
//! server (`tests/nats.rs`, `tests/faults.rs`, `tests/http.rs`, `tests/dashboard_browser.rs`,
//! and the crate's own `nats::tests`, which includes this file by path). Killed by its PID on
//! `stop` and on drop; `spawn` starts it again on the same port.
//!
//! When `nats-server` is missing, `start` fails the test under `CI=true` (scripts/test.sh
//! installs it) and skips it elsewhere.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped, restartable) `nats-server`.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    /// The config file (`-c`), when the test gave one; removed on drop.
    conf: Option<std::path::PathBuf>,
    /// The JetStream store, when there is one; removed on drop.
    store: Option<std::path::PathBuf>,
    // Tests of one binary take turns: a server restarted on its port must not race another
    // test's choice of a free port.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl NatsServer {
    /// Starts a server with its defaults; `None` when skipped (no `nats-server`, not CI).
    pub fn start() -> Option<NatsServer> {
        Self::start_with(None)
    }

    /// Starts a server with JetStream, its store in a new temporary directory that
    /// survives `stop`/`spawn` (a restart on the same store) and is removed on drop.
    pub fn start_jetstream() -> Option<NatsServer> {
        let dir = std::env::temp_dir().join(format!(
            "swarmbus-js-{}-{}",
            std::process::id(),
            STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("JetStream store directory");
        let conf = format!(
            "jetstream {{ store_dir: {:?} }}\n",
            dir.display().to_string()
        );
        let mut server = Self::start_with(Some(&conf))?;
        server.store = Some(dir);
        Some(server)
    }

    /// Starts a server with `conf` as the text of its config file.
    pub fn start_with(conf: Option<&str>) -> Option<NatsServer> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nats-server is required under CI (scripts/test.sh installs it)"
            );
            eprintln!("skipping: nats-server not installed");
            return None;
        }
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let conf = conf.map(|text| {
            let path = std::env::temp_dir()
                .join(format!("swarmbus-nats-{}-{port}.conf", std::process::id()));
            std::fs::write(&path, text).expect("write nats-server config");
            path
        });
        let mut server = NatsServer {
            child: None,
            port,
            conf,
            store: None,
            _turn: turn,
        };
        server.spawn();
        Some(server)
    }

    /// Starts (or restarts) the server on its port and waits (at most 10 s) until it
    /// accepts connections.
    pub fn spawn(&mut self) {
        let mut command = Command::new("nats-server");
        if let Some(conf) = &self.conf {
            command.arg("-c").arg(conf);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no goodbye to clients), and waits for the process to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(conf) = &self.conf {
            let _ = std::fs::remove_file(conf);
        }
        if let Some(store) = &self.store {
            let _ = std::fs::remove_dir_all(store);
        }
    }
}
