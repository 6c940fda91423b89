//! The hub's read-only HTTP server: `/metrics`, `/api/stats`, `/` (dashboard), `/healthz`.
//!
//! It runs on the hub's tokio runtime and starts with [`Hub::start`](crate::Hub::start) when
//! `HubConfig::metrics_addr` is set. Every answer is computed from a fresh
//! [`MetricsSnapshot`]; nothing here can change the hub.
//!
//! Connections are capped and timed out ([`HttpLimits`], see `conn.rs`); without an auth
//! token, requests must name the hub in their `Host` header (see `auth.rs`).

mod auth;
mod conn;
mod dashboard;
mod dead_letters;
mod prometheus;

pub use conn::{HttpLimits, HttpStats};
pub use prometheus::{
    encode_openmetrics, encode_text, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE,
};

use crate::metrics::MetricsSnapshot;
use crate::Result;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use auth::{AuthState, HostRule};
pub(crate) use conn::HttpCounters;

/// What the server reads: the hub's figures while it runs. The hub implements it over a
/// weak handle, so a server never keeps its hub alive.
pub(crate) trait StatsSource: Send + Sync + 'static {
    /// A fresh snapshot; `None` once the hub is gone.
    fn snapshot(&self) -> Option<MetricsSnapshot>;
    /// Whether the hub is running and not shutting down.
    fn is_running(&self) -> bool;
    /// The dead letters, newest first; `None` once the hub is gone.
    fn dead_letters(&self) -> Option<Vec<crate::DeadLetter>>;
    /// Replays dead letters (see `Hub::replay_dead_letters`); `None` once the hub is gone.
    fn replay_dead_letters(
        &self,
        reason: Option<&str>,
        to: Option<crate::AgentId>,
    ) -> Option<crate::Replayed>;
}

/// How long `stop` waits for open connections before cutting them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A running HTTP server.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    counters: Arc<HttpCounters>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Binds `addr` now (so a bad address fails `Hub::start`) and serves on `runtime` within
    /// `limits` (`HubConfig::http`).
    pub(crate) fn start_with(
        addr: SocketAddr,
        hub: Arc<dyn StatsSource>,
        token: Option<String>,
        limits: HttpLimits,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Server> {
        limits.validate()?;
        if token.as_deref() == Some("") {
            return Err(crate::Error::Config("auth_token must not be empty".into()));
        }
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        if exposed_without_token(addr, token.is_some()) {
            tracing::warn!(
                %addr,
                "http server on a non-loopback address without an auth token: anyone who can \
                 reach it can read /metrics, /api/stats and the dashboard; set --auth-token \
                 (auth_token) or bind 127.0.0.1"
            );
        }
        let _enter = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let counters = Arc::new(HttpCounters::default());
        let auth = AuthState {
            hosts: token.is_none().then(|| HostRule::new(addr)),
            token: token.map(Arc::from),
            counters: counters.clone(),
        };
        let app = router(hub, auth);
        let cap = conn::effective_cap(limits.max_connections);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(conn::serve(
            listener,
            app,
            limits,
            cap,
            counters.clone(),
            stopped,
        ));
        tracing::info!(%addr, cap, "http server listening");
        Ok(Server {
            addr,
            stop,
            task,
            counters,
        })
    }

    /// What the server counted so far (connections, timeouts, refusals).
    pub(crate) fn stats(&self) -> HttpStats {
        self.counters.snapshot()
    }

    /// The server's live counters, for a reader that outlives the server (the hub keeps
    /// them for its snapshots after `shutdown`).
    pub(crate) fn counters(&self) -> Arc<HttpCounters> {
        self.counters.clone()
    }

    /// The bound address (with the real port when asked for port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish for a short grace period, then aborts.
    pub(crate) async fn stop(self) {
        let stats = self.stats();
        tracing::info!(
            accepted = stats.connections_accepted,
            over_cap = stats.connections_over_cap,
            evicted = stats.connections_evicted,
            header_timeout = stats.connections_header_timeout,
            idle_timeout = stats.connections_idle_timeout,
            keep_alive_expired = stats.connections_keep_alive_expired,
            accept_errors = stats.accept_errors,
            refused_host = stats.requests_refused_host,
            "http server stopping"
        );
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

type AppState = Arc<dyn StatsSource>;

/// Whether serving `addr` is open to other machines with nothing guarding it.
fn exposed_without_token(addr: SocketAddr, has_token: bool) -> bool {
    !has_token && !addr.ip().is_loopback()
}

fn router(hub: AppState, auth: AuthState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/api/stats", get(stats))
        .route("/api/dead-letters", get(list_dead_letters))
        .route("/api/dead-letters/replay", post(replay_dead_letters))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_token,
        ))
        .with_state(hub)
}

fn gone() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "hub stopped\n").into_response()
}

async fn healthz(State(hub): State<AppState>) -> Response {
    if hub.is_running() {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(hub): State<AppState>, headers: HeaderMap) -> Response {
    let Some(snapshot) = hub.snapshot() else {
        return gone();
    };
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if openmetrics {
        (
            prometheus::encode_openmetrics(&snapshot),
            prometheus::OPENMETRICS_CONTENT_TYPE,
        )
    } else {
        (
            prometheus::encode_text(&snapshot),
            prometheus::TEXT_CONTENT_TYPE,
        )
    };
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

async fn stats(State(hub): State<AppState>) -> Response {
    let Some(snapshot) = hub.snapshot() else {
        return gone();
    };
    match serde_json::to_vec(&snapshot) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

async fn list_dead_letters(
    State(hub): State<AppState>,
    Query(f): Query<dead_letters::Filter>,
) -> Response {
    match hub.dead_letters() {
        Some(letters) => dead_letters::list(&letters, &f),
        None => gone(),
    }
}

async fn replay_dead_letters(
    State(hub): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<dead_letters::Filter>,
) -> Response {
    let to = match dead_letters::replay_to(&headers, &f) {
        Ok(to) => to,
        Err(refused) => return refused.into_response(),
    };
    match hub.replay_dead_letters(f.reason.as_deref(), to) {
        Some(report) => dead_letters::json(StatusCode::OK, &report),
        None => gone(),
    }
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        dashboard::page(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::{HttpLimits, HttpStats, Server};
    use crate::{Hub, HubConfig};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// No hub: routes that need the hub answer 503.
    struct NoHub;

    impl super::StatsSource for NoHub {
        fn snapshot(&self) -> Option<crate::MetricsSnapshot> {
            None
        }
        fn is_running(&self) -> bool {
            false
        }
        fn dead_letters(&self) -> Option<Vec<crate::DeadLetter>> {
            None
        }
        fn replay_dead_letters(
            &self,
            _: Option<&str>,
            _: Option<crate::AgentId>,
        ) -> Option<crate::Replayed> {
            None
        }
    }

    /// A server with `limits` and no hub behind it (routes that need the hub answer 503).
    fn server(limits: HttpLimits) -> Server {
        Server::start_with(
            "127.0.0.1:0".parse().unwrap(),
            std::sync::Arc::new(NoHub),
            None,
            limits,
            &tokio::runtime::Handle::current(),
        )
        .unwrap()
    }

    /// Reads until the server closes the connection; what it sent, or `None` when it was
    /// still open after 10 s.
    async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let read_all = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read_all)
            .await
            .ok()
            .map(|()| got)
    }

    /// Polls the server's counters (at most 5 s) until `done` holds.
    async fn stats_until(server: &Server, done: impl Fn(&HttpStats) -> bool) -> HttpStats {
        for _ in 0..500 {
            let stats = server.stats();
            if done(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.stats()
    }

    fn short_header_timeout() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partial_header_is_closed_after_the_header_timeout() {
        let server = server(short_header_timeout());
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1")
            .await
            .unwrap();
        let got = read_until_closed(&mut stream).await;
        assert!(got.is_some(), "a partial header kept its connection open");
        let stats = stats_until(&server, |s| s.connections_header_timeout == 1).await;
        assert_eq!(stats.connections_header_timeout, 1, "{stats:?}");
        assert_eq!(stats.connections_open, 0, "{stats:?}");
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_connection_is_closed_after_the_header_timeout() {
        let server = server(short_header_timeout());
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let got = read_until_closed(&mut stream).await;
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "a silent connection stayed open"
        );
        let stats = stats_until(&server, |s| s.connections_header_timeout == 1).await;
        assert_eq!(stats.connections_header_timeout, 1, "{stats:?}");
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let server = server(HttpLimits {
            idle_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        });
        let addr = server.local_addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET /nope HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let got = read_until_closed(&mut stream)
            .await
            .expect("an idle keep-alive connection stayed open");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        let stats = stats_until(&server, |s| s.connections_keep_alive_expired == 1).await;
        assert_eq!(stats.connections_keep_alive_expired, 1, "{stats:?}");
        assert_eq!(stats.connections_header_timeout, 0, "{stats:?}");
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_over_the_cap_make_room_for_a_client() {
        let cap = 8;
        let server = server(HttpLimits {
            max_connections: cap,
            ..HttpLimits::default()
        });
        let addr = server.local_addr();
        let mut idle = Vec::new();
        for _ in 0..cap + 100 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // Each newcomer past the cap displaced one idle connection. (A newcomer whose
        // victim did not let go of its permit within a second would be closed instead:
        // counted as over the cap, which only a stalled runtime would cause.)
        let stats = stats_until(&server, |s| {
            s.connections_accepted + s.connections_over_cap == 108
        })
        .await;
        assert_eq!(
            stats.connections_accepted + stats.connections_over_cap,
            108,
            "{stats:?}"
        );
        assert!(stats.connections_open <= 8, "{stats:?}");
        assert_eq!(stats.connections_evicted, 100, "{stats:?}");
        assert_eq!(stats.connections_cap, 8, "{stats:?}");
        let mut client = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET /nope HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        client.write_all(head.as_bytes()).await.unwrap();
        let got = read_until_closed(&mut client)
            .await
            .expect("no answer with the cap full of idle connections");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        assert!(server.stats().connections_open <= 8);
        drop(idle);
        server.stop().await;
    }

    #[test]
    fn a_non_loopback_bind_without_a_token_is_flagged() {
        let open = |a: &str, token| super::exposed_without_token(a.parse().unwrap(), token);
        assert!(open("0.0.0.0:9464", false));
        assert!(open("[::]:9464", false));
        assert!(open("192.0.2.7:9464", false));
        assert!(!open("192.0.2.7:9464", true));
        assert!(!open("127.0.0.1:9464", false));
        assert!(!open("[::1]:9464", false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_on_port_zero_and_stops_with_the_hub() {
        let config = HubConfig {
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..HubConfig::default()
        };
        let hub = Hub::start(config).unwrap();
        let addr = hub.local_addr().expect("server bound");
        assert_ne!(addr.port(), 0);
        let alice = hub.register("alice").unwrap();
        let mut bob = hub.register("bob").unwrap();
        alice.send(bob.id(), "hi").await.unwrap();
        bob.recv().await.unwrap();
        let body = super::prometheus::encode_text(&hub.metrics()).unwrap();
        assert!(body.contains("swarmbus_messages_sent_total 1\n"), "{body}");
        assert!(body.contains("swarmbus_agents 2\n"), "{body}");
        assert!(body.contains("swarmbus_delivery_latency_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(body.contains("swarmbus_batches_flushed_total{reason=\"linger\"}"));
        hub.shutdown().await.unwrap();
        assert!(hub.local_addr().is_none());
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    /// `GET path` with a Host naming the hub and `Connection: close`; the whole answer.
    async fn fetch(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let got = read_until_closed(&mut stream)
            .await
            .unwrap_or_else(|| panic!("GET {path}: no answer within 10 s"));
        String::from_utf8_lossy(&got).into_owned()
    }

    /// The `[http]` section of the configuration file used to be refused (unknown field),
    /// and the hub always ran its server with the default limits: the limits set there now
    /// reach the server, and its counters reach `/metrics`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_config_files_http_section_reaches_the_hubs_server() {
        let config = HubConfig::from_toml_str(
            "metrics_addr = \"127.0.0.1:0\"\n\n[http]\nmax_connections = 7\nheader_read_timeout = \"300ms\"\nidle_timeout = \"30s\"\n",
        )
        .expect("a config with an [http] section");
        let hub = Hub::start(config).unwrap();
        let addr = hub.local_addr().expect("server bound");
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let got = read_until_closed(&mut silent).await;
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "a silent connection outlived the configured 300 ms header timeout"
        );
        let body = fetch(addr, "/metrics").await;
        for line in [
            "swarmbus_http_connections_cap 7\n",
            "swarmbus_http_connections_dropped_total{reason=\"header_timeout\"} 1\n",
        ] {
            assert!(body.contains(line), "no {line:?} in\n{body}");
        }
        hub.shutdown().await.unwrap();
    }

    /// `HubConfig::validate` checks the `[http]` section, so `Hub::start` and the config
    /// file refuse a bad limit by name instead of running with it.
    #[test]
    fn the_hub_config_validates_its_http_limits() {
        for (toml, field) in [
            ("[http]\nmax_connections = 0\n", "http.max_connections"),
            (
                "[http]\nmax_connections = 18446744073709551615\n",
                "http.max_connections",
            ),
            ("[http]\nidle_timeout = \"0s\"\n", "http.idle_timeout"),
            (
                "[http]\nheader_read_timeout = \"2h\"\n",
                "http.header_read_timeout",
            ),
        ] {
            match HubConfig::from_toml_str(toml) {
                Err(crate::Error::Config(m)) => assert!(m.contains(field), "{toml}: {m}"),
                other => panic!("{toml}: accepted ({other:?})"),
            }
        }
        let mut config = HubConfig::default();
        config.http.max_connections = 0;
        assert!(config.validate().is_err());
    }

    /// The server's counters are exported while it runs, and stay readable in the hub's
    /// snapshot after shutdown stopped it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_counters_are_exported_and_outlive_the_server() {
        let config = HubConfig {
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..HubConfig::default()
        };
        let hub = Hub::start(config).unwrap();
        let addr = hub.local_addr().expect("server bound");
        let refused = {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = "GET /api/stats HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            read_until_closed(&mut stream).await.expect("an answer")
        };
        assert!(
            refused.starts_with(b"HTTP/1.1 421"),
            "{}",
            String::from_utf8_lossy(&refused)
        );
        let body = fetch(addr, "/metrics").await;
        for line in [
            "swarmbus_http_connections_open 1\n",
            "swarmbus_http_connections_accepted_total 2\n",
            "swarmbus_http_requests_refused_total{reason=\"host\"} 1\n",
            "swarmbus_http_connections_dropped_total{reason=\"over_cap\"} 0\n",
            "swarmbus_http_connections_dropped_total{reason=\"evicted\"} 0\n",
            "swarmbus_http_connections_dropped_total{reason=\"idle_timeout\"} 0\n",
            "swarmbus_http_connections_keep_alive_expired_total 0\n",
            "swarmbus_http_accept_errors_total 0\n",
        ] {
            assert!(body.contains(line), "no {line:?} in\n{body}");
        }
        let cap = format!(
            "swarmbus_http_connections_cap {}\n",
            super::conn::effective_cap(HttpLimits::default().max_connections)
        );
        assert!(body.contains(&cap), "no {cap:?} in\n{body}");
        hub.shutdown().await.unwrap();
        let after = serde_json::to_value(hub.metrics()).unwrap();
        let http = &after["http"];
        assert_eq!(http["connections_accepted"], 2, "{after}");
        assert_eq!(http["requests_refused_host"], 1, "{after}");
        assert_eq!(http["connections_open"], 0, "{after}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bind_failure_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = HubConfig {
            metrics_addr: Some(taken.local_addr().unwrap()),
            ..HubConfig::default()
        };
        assert!(matches!(Hub::start(config), Err(crate::Error::Io(_))));
    }
}
