//! A `nats-server` child process on a free loopback port, for the process-level tests that
//! run a hub binary with `--nats` (`http.rs`, `dashboard_browser.rs`). Killed by its PID on
//! drop. `tests/nats.rs` has its own, restartable, helper.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server`, killed by its PID when dropped.
pub struct NatsProcess {
    child: Child,
    port: u16,
}

impl NatsProcess {
    /// Starts `nats-server` on a free loopback port and waits (at most 10 s) until it
    /// accepts connections. The caller checks first that the tool is installed
    /// (`common::require_tool`, which fails under `CI=true` when it is not).
    pub fn start() -> NatsProcess {
        let port = crate::common::free_port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let server = NatsProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID; nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
