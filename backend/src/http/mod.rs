//! The hub's read-only HTTP server: `/metrics`, `/api/stats`, `/` (dashboard), `/healthz`.
//!
//! It runs on the hub's tokio runtime and starts with [`Hub::start`](crate::Hub::start) when
//! `HubConfig::metrics_addr` is set. Every answer is computed from a fresh
//! [`MetricsSnapshot`](crate::MetricsSnapshot); nothing here can change the hub.

mod auth;
pub mod dashboard;
pub mod prometheus;

use crate::hub::Shared;
use crate::Result;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long `stop` waits for open connections before cutting them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A running HTTP server.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Binds `addr` now (so a bad address fails `Hub::start`) and serves on `runtime`.
    pub(crate) fn start(
        addr: SocketAddr,
        hub: Weak<Shared>,
        token: Option<String>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let _enter = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = router(hub, token.map(Arc::from));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        tracing::info!(%addr, "http server listening");
        Ok(Server { addr, stop, task })
    }

    /// The bound address (with the real port when asked for port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish for a short grace period, then aborts.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

type AppState = Weak<Shared>;

fn router(hub: Weak<Shared>, token: Option<Arc<str>>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/api/stats", get(stats))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ))
        .with_state(hub)
}

fn gone() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "hub stopped\n").into_response()
}

async fn healthz(State(hub): State<AppState>) -> Response {
    match hub.upgrade() {
        Some(shared) if !shared.closing.load(std::sync::atomic::Ordering::Acquire) => {
            "ok".into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

async fn metrics(State(hub): State<AppState>, headers: HeaderMap) -> Response {
    let Some(shared) = hub.upgrade() else {
        return gone();
    };
    let snapshot = shared.snapshot();
    drop(shared);
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
    let Some(shared) = hub.upgrade() else {
        return gone();
    };
    let snapshot = shared.snapshot();
    drop(shared);
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
    use crate::{Hub, HubConfig};

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
