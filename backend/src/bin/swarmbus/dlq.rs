//! `swarmbus dlq list|replay`: reads a running hub's dead letters and sends them again,
//! through its HTTP API (`GET /api/dead-letters`, `POST /api/dead-letters/replay`).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one call to the hub may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (the store holds at most 1,000,000 letters by default 1,000).
const MAX_BODY: u64 = 256 << 20;

#[derive(Debug, Subcommand)]
pub(crate) enum Dlq {
    /// Print the dead letters, newest first.
    List(ListArgs),
    /// Send the dead letters again (one-way messages with their payload; oldest first).
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub(crate) struct HubAddr {
    /// The hub's HTTP address (its metrics_addr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    hub: SocketAddr,
    /// The hub's bearer token, when it has one (or SWARMBUS_AUTH_TOKEN).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SWARMBUS_AUTH_TOKEN",
        hide_env_values = true
    )]
    auth_token: Option<String>,
    /// Only the letters dropped for this reason (drop_oldest, recipient_gone, ...).
    #[arg(long, value_name = "R")]
    reason: Option<String>,
}

impl HubAddr {
    /// The query both commands start from: the reason filter.
    fn query(&self) -> Vec<String> {
        self.reason
            .iter()
            .map(|r| format!("reason={}", encode(r)))
            .collect()
    }
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    hub: HubAddr,
    /// At most this many.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Print the hub's JSON as it came.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    hub: HubAddr,
    /// Send them to this agent instead of their recipient.
    #[arg(long, value_name = "AGENT")]
    to: Option<swarmbus::AgentId>,
}

pub(crate) async fn run(cmd: Dlq) -> Result<()> {
    match cmd {
        Dlq::List(args) => {
            let mut query = args.hub.query();
            if let Some(n) = args.limit {
                query.push(format!("limit={n}"));
            }
            let body = call(&args.hub, "GET", "/api/dead-letters", &query).await?;
            if args.json {
                println!("{body}");
                return Ok(());
            }
            let letters: Vec<serde_json::Value> =
                serde_json::from_str(&body).context("the hub's answer is not a list")?;
            for l in &letters {
                let payload = l["payload_text"]
                    .as_str()
                    .map(|t| format!("{t:?}"))
                    .or_else(|| l["payload_base64"].as_str().map(|b| format!("base64:{b}")))
                    .unwrap_or_else(|| "(payload not kept)".into());
                println!(
                    "{at}  {reason:<16} {kind:<8} {id}  {from} -> {to}  {bytes} B  {payload}",
                    at = l["at_unix_ms"],
                    reason = l["reason"].as_str().unwrap_or("?"),
                    kind = l["kind"].as_str().unwrap_or("?"),
                    id = l["id"].as_str().unwrap_or("?"),
                    from = l["from"].as_str().unwrap_or("?"),
                    to = l["to"].as_str().unwrap_or("?"),
                    bytes = l["payload_bytes"],
                );
            }
            eprintln!("{} dead letters", letters.len());
            Ok(())
        }
        Dlq::Replay(args) => {
            let mut query = args.hub.query();
            if let Some(to) = args.to {
                query.push(format!("to={to}"));
            }
            let body = call(&args.hub, "POST", "/api/dead-letters/replay", &query).await?;
            let r: serde_json::Value =
                serde_json::from_str(&body).context("the hub's answer is not a report")?;
            println!(
                "replayed {} · failed again {} (kept) · not replayable {} (kept)",
                r["sent"], r["failed"], r["skipped"]
            );
            if r["failed"].as_u64().unwrap_or(0) > 0 {
                bail!("{} dead letters failed again", r["failed"]);
            }
            Ok(())
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 request to the hub (`Connection: close`); the body of a 200 answer.
async fn call(hub: &HubAddr, method: &str, path: &str, query: &[String]) -> Result<String> {
    let target = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let auth = hub
        .auth_token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{auth}Accept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        addr = hub.hub
    );
    let answer = tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(hub.hub).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_BODY)
            .read_to_end(&mut answer)
            .await?;
        std::io::Result::Ok(answer)
    })
    .await
    .with_context(|| format!("the hub at {} did not answer within {TIMEOUT:?}", hub.hub))?
    .with_context(|| format!("cannot talk to the hub at {}", hub.hub))?;
    let text = String::from_utf8(answer).context("the hub's answer is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the hub's answer has no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .context("the hub's answer has no status")?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    match status {
        200 => Ok(body),
        401 => bail!("the hub wants its token (--auth-token or SWARMBUS_AUTH_TOKEN)"),
        _ => bail!("the hub answered {status}: {}", body.trim()),
    }
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut rest: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, tail) = rest
            .split_once("\r\n")
            .context("a chunk without its size line")?;
        let size = usize::from_str_radix(size.trim(), 16).context("a bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = tail.get(..size).context("a chunk shorter than its size")?;
        out.push_str(chunk);
        rest = tail
            .get(size..)
            .and_then(|t| t.strip_prefix("\r\n"))
            .context("a chunk without its end")?;
    }
}
