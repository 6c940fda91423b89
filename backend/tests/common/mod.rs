//! Helpers shared by the process-level tests: a hub child process killed on drop, a tiny
//! HTTP/1.1 client over `std::net::TcpStream`, and the CI rule for external tools.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `swarmbus hub` child process; killed by its PID when dropped, also on test failure.
pub struct HubProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: mpsc::Receiver<String>,
}

impl HubProcess {
    /// Starts `swarmbus hub <args>` and waits (at most 30 s) for its `listening on` line.
    pub fn spawn(args: &[&str]) -> HubProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_swarmbus"));
        command.arg("hub").args(args);
        Self::spawn_command(command)
    }

    /// Like [`HubProcess::spawn`], with the hub's file-descriptor limit (`ulimit -n`) set to
    /// `nofile`. `sh` execs the hub, so the child's PID is the hub's.
    pub fn spawn_with_fd_limit(args: &[&str], nofile: u32) -> HubProcess {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("ulimit -n \"$0\" && exec \"$@\"")
            .arg(nofile.to_string())
            .arg(env!("CARGO_BIN_EXE_swarmbus"))
            .arg("hub")
            .args(args);
        Self::spawn_command(command)
    }

    fn spawn_command(mut command: Command) -> HubProcess {
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn swarmbus");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = HubProcess {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            stdout: rx,
        };
        let line = process
            .next_line(Duration::from_secs(30))
            .expect("hub printed no `listening on` line within 30 s");
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        process.addr = addr.parse().expect("bound address");
        process
    }

    /// The next stdout line, waiting at most `limit`.
    pub fn next_line(&self, limit: Duration) -> Option<String> {
        self.stdout.recv_timeout(limit).ok()
    }

    /// Waits for the process to exit, at most `limit`; its exit success.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path, &[])
    }

    /// Waits (at most 10 s) for `/healthz` to answer 200.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = try_request(self.addr, "GET", "/healthz", &[], None) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "/healthz never answered 200");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID; nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Any child process, killed by its PID when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, None)
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// One HTTP/1.1 request with `Connection: close`; reads the whole answer (60 s read timeout).
/// `Host` is `addr` unless `headers` name one.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Response> {
    try_request_within(addr, method, path, headers, body, Duration::from_secs(60))
}

/// [`try_request`] with its own read timeout.
pub fn try_request_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    read_timeout: Duration,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(read_timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    } else if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body.as_bytes())?;
    }
    // Some servers (chromedriver) keep the connection open despite `Connection: close`, so
    // stop at Content-Length or the last chunk rather than at EOF.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(done) = complete_len(&raw) {
            raw.truncate(done);
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    parse_response(&raw)
}

/// The length of a complete response in `raw`, if it is complete already.
fn complete_len(raw: &[u8]) -> Option<usize> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split])
        .ok()?
        .to_ascii_lowercase();
    let body_start = split + 4;
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            let len: usize = v.trim().parse().ok()?;
            return (raw.len() >= body_start + len).then_some(body_start + len);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            let end = raw[body_start..]
                .windows(5)
                .position(|w| w == b"0\r\n\r\n")?;
            return Some(body_start + end + 5);
        }
    }
    None
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("non-utf8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty response"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8(body).map_err(|_| bad("non-utf8 body"))?,
    })
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("bad chunk"))?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| bad("bad chunk"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Whether `tool` is on PATH. Missing under `CI=true` fails the test; elsewhere the caller
/// skips with a notice.
pub fn require_tool(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: `{tool}` is required under CI=true but is not installed");
        }
        eprintln!("SKIPPED {test}: `{tool}` is not installed (install it to run this test)");
    }
    found
}

/// A free local port: bind port 0 and release it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
