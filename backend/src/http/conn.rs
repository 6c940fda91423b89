//! The HTTP server's accept loop: a cap on open connections, a header-read timeout, a
//! keep-alive idle timeout and an I/O idle timeout, each counted when it closes a connection.
//!
//! `axum::serve` keeps every accepted socket until its client leaves, so idle sockets that
//! never send a byte used to pile up until the process ran out of file descriptors
//! (1,100 of them silenced `/healthz` for good; 372 against a 256-descriptor hub kept it from
//! reconnecting to NATS). Here every connection holds a permit of a semaphore of
//! [`HttpLimits::max_connections`] (clamped to half the process's descriptor limit), and its
//! task closes it when one of the timeouts below passes.
//!
//! # Phases of a connection and their deadlines
//!
//! - **Waiting for a request head** (just accepted, or a partial head arrived): closed
//!   [`HttpLimits::header_read_timeout`] after the connection opened or the previous answer
//!   was handed over (counted as `header_timeout`).
//! - **Idle between requests** (keep-alive, no byte of a new request yet): closed
//!   [`HttpLimits::idle_timeout`] after the previous answer (counted as `keep_alive_expired`,
//!   which is normal client behaviour, not a fault).
//! - **Any phase**: no byte read or written for [`HttpLimits::idle_timeout`] (a client that
//!   stops reading its answer, a stalled body) closes it (counted as `idle_timeout`).
//!
//! # At the cap
//!
//! A newcomer over the cap displaces the least recently active connection that is not inside
//! a handler (an idle socket, a keep-alive connection, a stalled reader), so a flood of idle
//! sockets cannot lock real clients out; it is counted as `evicted`. Only when every
//! connection is inside a handler is the newcomer closed at once (counted as `over_cap`).

use crate::{Error, Result};
use axum::Router;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long a newcomer waits for the permit of the connection it displaced.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// How long the accept loop pauses after an accept error other than a reset (`EMFILE`, ...),
/// which bounds the log rate to ten lines a second.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Limits on the HTTP server's connections. The defaults suit a metrics endpoint scraped by
/// a few Prometheus servers and opened by a few dashboards.
///
/// ```
/// use std::time::Duration;
/// let limits = swarmbus::http::HttpLimits::default();
/// assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
/// assert_eq!(limits.idle_timeout, Duration::from_secs(60));
/// assert_eq!(limits.max_connections, 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpLimits {
    /// A connection must deliver a complete request head within this long of opening (or
    /// of its previous answer, once a byte of the next request arrived). Default 10 s;
    /// more than 0, at most 1 h.
    #[serde(with = "crate::duration")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no new request for this long is closed, and so is any
    /// connection on which no byte moved either way for this long. Default 60 s; more than
    /// 0, at most 1 h.
    #[serde(with = "crate::duration")]
    pub idle_timeout: Duration,
    /// Connections open at once, at most. Clamped to half the process's file-descriptor
    /// limit (`ulimit -n`) so the hub keeps descriptors for NATS and the rest. Default 512;
    /// 1 to 1,000,000.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

impl HttpLimits {
    /// Largest `max_connections` (each connection holds a socket and a task; far more than
    /// a metrics endpoint needs).
    pub const MAX_CONNECTIONS: usize = 1_000_000;
    /// Longest `header_read_timeout` and `idle_timeout`.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

    /// Checks that the values make sense.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`http.<field>`) when a timeout is zero or over
    /// [`MAX_TIMEOUT`](Self::MAX_TIMEOUT) (1 h), or `max_connections` is outside
    /// 1..=[`MAX_CONNECTIONS`](Self::MAX_CONNECTIONS) (1,000,000).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        for (name, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() || value > Self::MAX_TIMEOUT {
                return bad(format!(
                    "http.{name} must be more than 0 and at most 1h (got {value:?})"
                ));
            }
        }
        if !(1..=Self::MAX_CONNECTIONS).contains(&self.max_connections) {
            return bad(format!(
                "http.max_connections must be 1-{} (got {})",
                Self::MAX_CONNECTIONS,
                self.max_connections
            ));
        }
        Ok(())
    }
}

/// What the HTTP server counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HttpStats {
    /// Connections open now.
    pub connections_open: u64,
    /// The connection cap in force (`max_connections`, clamped to the descriptor limit).
    pub connections_cap: u64,
    /// Connections accepted and served.
    pub connections_accepted: u64,
    /// Connections closed at once because the cap was reached and none could be displaced.
    pub connections_over_cap: u64,
    /// Idle connections closed to make room for a newcomer at the cap.
    pub connections_evicted: u64,
    /// Connections closed because no complete request head arrived in time.
    pub connections_header_timeout: u64,
    /// Connections closed because no byte moved either way for `idle_timeout`.
    pub connections_idle_timeout: u64,
    /// Keep-alive connections closed after `idle_timeout` without a new request (normal).
    pub connections_keep_alive_expired: u64,
    /// `accept` failures other than a reset by the peer (`EMFILE`, `ENFILE`, `ENOBUFS`).
    pub accept_errors: u64,
    /// Requests refused with 421 because their `Host` did not name this hub (no token set).
    pub requests_refused_host: u64,
}

/// The server's counters, shared by the accept loop, the connections and the auth layer.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    cap: AtomicU64,
    accepted: AtomicU64,
    over_cap: AtomicU64,
    evicted: AtomicU64,
    header_timeout: AtomicU64,
    idle_timeout: AtomicU64,
    keep_alive_expired: AtomicU64,
    accept_errors: AtomicU64,
    host_refused: AtomicU64,
    open: AtomicU64,
}

impl HttpCounters {
    /// Counts a request refused for its `Host`.
    pub(crate) fn host_refused(&self) {
        self.host_refused.fetch_add(1, Ordering::Relaxed);
    }

    fn close(&self, reason: Close) {
        let counter = match reason {
            Close::HeaderTimeout => &self.header_timeout,
            Close::IdleTimeout => &self.idle_timeout,
            Close::KeepAliveExpired => &self.keep_alive_expired,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> HttpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpStats {
            connections_open: get(&self.open),
            connections_cap: get(&self.cap),
            connections_accepted: get(&self.accepted),
            connections_over_cap: get(&self.over_cap),
            connections_evicted: get(&self.evicted),
            connections_header_timeout: get(&self.header_timeout),
            connections_idle_timeout: get(&self.idle_timeout),
            connections_keep_alive_expired: get(&self.keep_alive_expired),
            accept_errors: get(&self.accept_errors),
            requests_refused_host: get(&self.host_refused),
        }
    }
}

/// `max_connections`, clamped to half the soft file-descriptor limit where one is known.
pub(crate) fn effective_cap(max_connections: usize) -> usize {
    match fd_soft_limit() {
        Some(limit) => {
            let half = usize::try_from(limit / 2).unwrap_or(usize::MAX).max(1);
            if half < max_connections {
                tracing::warn!(
                    max_connections,
                    fd_limit = limit,
                    cap = half,
                    "http connection cap lowered to half the file-descriptor limit (raise ulimit -n to allow more)"
                );
                half
            } else {
                max_connections
            }
        }
        None => max_connections,
    }
}

#[cfg(unix)]
fn fd_soft_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn fd_soft_limit() -> Option<u64> {
    None
}

/// Serves `app` on `listener` until `stopped` resolves (or its sender is dropped), then lets
/// open connections finish their current request (the caller bounds how long).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    cap: usize,
    counters: Arc<HttpCounters>,
    stopped: oneshot::Receiver<()>,
) {
    counters
        .cap
        .store(u64::try_from(cap).unwrap_or(u64::MAX), Ordering::Relaxed);
    let permits = Arc::new(Semaphore::new(cap));
    let table = Arc::new(Mutex::new(ConnTable::default()));
    let base = Instant::now();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut stopped = std::pin::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Some(permit) = admit(&permits, &table, &counters).await else {
                        counters.over_cap.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                        continue;
                    };
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let activity = Arc::new(Activity::new(base));
                    let (id, kill) = table.lock().insert(activity.clone());
                    let conn = Connection {
                        id,
                        activity,
                        permit,
                        kill,
                        shutdown: shutdown_rx.clone(),
                        limits,
                        table: table.clone(),
                        counters: counters.clone(),
                    };
                    tasks.spawn(conn.serve(stream, app.clone()));
                }
                Err(e) => accept_failed(e, &table, &counters).await,
            }
        }
    }
    drop(listener);
    let _ = shutdown_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// A permit for a newcomer: a free one, or the one of the connection it displaces.
async fn admit(
    permits: &Arc<Semaphore>,
    table: &Mutex<ConnTable>,
    counters: &HttpCounters,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return Some(permit);
    }
    if !table.lock().evict_one() {
        return None;
    }
    counters.evicted.fetch_add(1, Ordering::Relaxed);
    tokio::time::timeout(EVICTION_WAIT, permits.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

async fn accept_failed(e: io::Error, table: &Mutex<ConnTable>, counters: &HttpCounters) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    counters.accept_errors.fetch_add(1, Ordering::Relaxed);
    // Out of descriptors (`EMFILE`/`ENFILE`) is the likely cause: free one idle connection
    // so the next accept can succeed, then pause.
    let evicted = table.lock().evict_one();
    if evicted {
        counters.evicted.fetch_add(1, Ordering::Relaxed);
    }
    tracing::warn!(error = %e, evicted, "http accept failed");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

// ===== the table of open connections =====

/// Open connections, for choosing one to displace.
#[derive(Debug, Default)]
struct ConnTable {
    next_id: u64,
    live: HashMap<u64, Live>,
}

#[derive(Debug)]
struct Live {
    activity: Arc<Activity>,
    kill: oneshot::Sender<()>,
}

impl ConnTable {
    fn insert(&mut self, activity: Arc<Activity>) -> (u64, oneshot::Receiver<()>) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let (kill, killed) = oneshot::channel();
        self.live.insert(id, Live { activity, kill });
        (id, killed)
    }

    fn remove(&mut self, id: u64) {
        self.live.remove(&id);
    }

    /// Tells the least recently active connection outside a handler to close; false when
    /// every connection is inside one.
    fn evict_one(&mut self) -> bool {
        let victim = least_recently_active(
            self.live
                .iter()
                .map(|(id, l)| (*id, l.activity.is_busy(), l.activity.last_io_ms())),
        );
        match victim.and_then(|id| self.live.remove(&id)) {
            Some(live) => {
                let _ = live.kill.send(());
                true
            }
            None => false,
        }
    }
}

/// The id of the connection, among `(id, busy, last_io_ms)`, that is not busy and was active
/// least recently (the lowest id among equals).
fn least_recently_active(conns: impl Iterator<Item = (u64, bool, u64)>) -> Option<u64> {
    conns
        .filter(|(_, busy, _)| !busy)
        .min_by_key(|(id, _, last)| (*last, *id))
        .map(|(id, _, _)| id)
}

// ===== one connection =====

/// Why a connection's own timer closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    HeaderTimeout,
    IdleTimeout,
    KeepAliveExpired,
}

/// What a connection's timer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Look again at this time (milliseconds since the server's base instant).
    KeepUntil(u64),
    Close(Close),
}

/// A connection's activity, as the timer reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Phase {
    /// A handler is running for one of its requests.
    busy: bool,
    /// Requests it has made so far.
    requests: u64,
    /// When it opened or its last answer was handed over (ms).
    waiting_since_ms: u64,
    /// A byte arrived since `waiting_since_ms` (a request head is on its way).
    head_started: bool,
    /// The last byte read or written (ms).
    last_io_ms: u64,
}

/// The timer rule: a pure function of the phase, the time and the limits.
fn judge(phase: Phase, now_ms: u64, limits: &HttpLimits) -> Verdict {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let io_deadline = phase.last_io_ms.saturating_add(ms(limits.idle_timeout));
    if phase.busy {
        return if now_ms >= io_deadline {
            Verdict::Close(Close::IdleTimeout)
        } else {
            Verdict::KeepUntil(io_deadline)
        };
    }
    let (phase_deadline, reason) = if phase.requests > 0 && !phase.head_started {
        (
            phase
                .waiting_since_ms
                .saturating_add(ms(limits.idle_timeout)),
            Close::KeepAliveExpired,
        )
    } else {
        (
            phase
                .waiting_since_ms
                .saturating_add(ms(limits.header_read_timeout)),
            Close::HeaderTimeout,
        )
    };
    if now_ms >= phase_deadline {
        Verdict::Close(reason)
    } else if now_ms >= io_deadline {
        Verdict::Close(Close::IdleTimeout)
    } else {
        Verdict::KeepUntil(phase_deadline.min(io_deadline))
    }
}

/// Shared between a connection's socket wrapper, its service and its timer.
#[derive(Debug)]
struct Activity {
    base: Instant,
    busy: AtomicBool,
    requests: AtomicU64,
    waiting_since_ms: AtomicU64,
    head_started: AtomicBool,
    last_io_ms: AtomicU64,
}

impl Activity {
    fn new(base: Instant) -> Activity {
        let now = ms_since(base, Instant::now());
        Activity {
            base,
            busy: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            waiting_since_ms: AtomicU64::new(now),
            head_started: AtomicBool::new(false),
            last_io_ms: AtomicU64::new(now),
        }
    }

    fn now_ms(&self) -> u64 {
        ms_since(self.base, Instant::now())
    }

    fn read(&self) {
        self.head_started.store(true, Ordering::Relaxed);
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn wrote(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    fn last_io_ms(&self) -> u64 {
        self.last_io_ms.load(Ordering::Relaxed)
    }

    fn phase(&self) -> Phase {
        Phase {
            busy: self.is_busy(),
            requests: self.requests.load(Ordering::Relaxed),
            waiting_since_ms: self.waiting_since_ms.load(Ordering::Relaxed),
            head_started: self.head_started.load(Ordering::Relaxed),
            last_io_ms: self.last_io_ms(),
        }
    }

    fn instant(&self, ms: u64) -> Instant {
        // A deadline past what `Instant` holds (an absurd configured timeout) is an hour
        // away, looked at again then.
        self.base
            .checked_add(Duration::from_millis(ms))
            .or_else(|| Instant::now().checked_add(Duration::from_secs(3600)))
            .unwrap_or_else(Instant::now)
    }
}

fn ms_since(base: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(base).as_millis()).unwrap_or(u64::MAX)
}

/// Marks a connection busy while a handler runs; handing the answer over starts the wait
/// for the next request.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(activity: &Arc<Activity>) -> Busy {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.busy.store(true, Ordering::Relaxed);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.waiting_since_ms.store(a.now_ms(), Ordering::Relaxed);
        a.head_started.store(false, Ordering::Relaxed);
        a.busy.store(false, Ordering::Relaxed);
    }
}

/// One accepted connection and what it needs to serve and to close itself.
struct Connection {
    id: u64,
    activity: Arc<Activity>,
    permit: OwnedSemaphorePermit,
    kill: oneshot::Receiver<()>,
    shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
    table: Arc<Mutex<ConnTable>>,
    counters: Arc<HttpCounters>,
}

/// Leaves the table and gives the permit back when the connection's task ends, however it
/// ends (also when the server aborts it).
struct Leave {
    id: u64,
    table: Arc<Mutex<ConnTable>>,
    counters: Arc<HttpCounters>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.table.lock().remove(self.id);
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    async fn serve(self, stream: TcpStream, app: Router) {
        let Connection {
            id,
            activity,
            permit,
            mut kill,
            mut shutdown,
            limits,
            table,
            counters,
        } = self;
        counters.open.fetch_add(1, Ordering::Relaxed);
        let _leave = Leave {
            id,
            table,
            counters: counters.clone(),
            _permit: permit,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let tower = TowerToHyperService::new(app);
        let for_service = activity.clone();
        let service = hyper::service::service_fn(move |request| {
            let busy = Busy::enter(&for_service);
            let answer = tower.call(request);
            async move {
                let answer = answer.await;
                drop(busy);
                answer
            }
        });
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut draining = false;
        if *shutdown.borrow() {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let recheck = match judge(activity.phase(), activity.now_ms(), &limits) {
                Verdict::Close(reason) => {
                    counters.close(reason);
                    tracing::debug!(?reason, "http connection closed by its timer");
                    break;
                }
                Verdict::KeepUntil(ms) => activity.instant(ms),
            };
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                    break;
                }
                _ = &mut kill => break,
                _ = shutdown.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep_until(recheck) => {}
            }
        }
    }
}

/// The socket, noting every byte that moves.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4,
        }
    }

    fn fresh(at: u64) -> Phase {
        Phase {
            busy: false,
            requests: 0,
            waiting_since_ms: at,
            head_started: false,
            last_io_ms: at,
        }
    }

    #[test]
    fn a_silent_new_connection_gets_the_header_timeout() {
        let l = limits();
        assert_eq!(judge(fresh(5), 5, &l), Verdict::KeepUntil(10_005));
        assert_eq!(
            judge(fresh(5), 10_005, &l),
            Verdict::Close(Close::HeaderTimeout)
        );
    }

    #[test]
    fn a_partial_head_gets_the_header_timeout_even_after_requests() {
        let l = limits();
        let p = Phase {
            requests: 3,
            head_started: true,
            last_io_ms: 9_000,
            ..fresh(1_000)
        };
        assert_eq!(judge(p, 10_999, &l), Verdict::KeepUntil(11_000));
        assert_eq!(judge(p, 11_000, &l), Verdict::Close(Close::HeaderTimeout));
    }

    #[test]
    fn keep_alive_waits_the_idle_timeout() {
        let l = limits();
        let p = Phase {
            requests: 1,
            ..fresh(1_000)
        };
        assert_eq!(judge(p, 30_000, &l), Verdict::KeepUntil(61_000));
        assert_eq!(
            judge(p, 61_000, &l),
            Verdict::Close(Close::KeepAliveExpired)
        );
    }

    #[test]
    fn a_busy_connection_only_has_the_io_idle_timeout() {
        let l = limits();
        let p = Phase {
            busy: true,
            requests: 1,
            last_io_ms: 2_000,
            ..fresh(0)
        };
        assert_eq!(judge(p, 50_000, &l), Verdict::KeepUntil(62_000));
        assert_eq!(judge(p, 62_000, &l), Verdict::Close(Close::IdleTimeout));
    }

    #[test]
    fn the_victim_is_the_least_recently_active_idle_connection() {
        let conns = [
            (1, false, 50),
            (2, true, 10),
            (3, false, 20),
            (4, false, 20),
        ];
        assert_eq!(least_recently_active(conns.into_iter()), Some(3));
        let all_busy = [(1, true, 50), (2, true, 10)];
        assert_eq!(least_recently_active(all_busy.into_iter()), None);
        assert_eq!(least_recently_active(std::iter::empty()), None);
    }

    #[test]
    fn limits_are_validated() {
        HttpLimits::default().validate().unwrap();
        for bad in [
            HttpLimits {
                header_read_timeout: Duration::ZERO,
                ..HttpLimits::default()
            },
            HttpLimits {
                idle_timeout: Duration::ZERO,
                ..HttpLimits::default()
            },
            HttpLimits {
                max_connections: 0,
                ..HttpLimits::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::Config(_))), "{bad:?}");
        }
    }

    /// Now that `[http]` is read from the configuration file, values that would panic
    /// (`Semaphore::new` past its permit maximum, with no descriptor limit to clamp to) or
    /// make no sense are refused, naming the field.
    #[test]
    fn limits_out_of_range_are_refused_by_name() {
        let hour = Duration::from_secs(3600);
        for (field, bad) in [
            (
                "http.header_read_timeout",
                HttpLimits {
                    header_read_timeout: hour + Duration::from_millis(1),
                    ..HttpLimits::default()
                },
            ),
            (
                "http.idle_timeout",
                HttpLimits {
                    idle_timeout: Duration::from_secs(10_000_000_000_000_000_000),
                    ..HttpLimits::default()
                },
            ),
            (
                "http.max_connections",
                HttpLimits {
                    max_connections: usize::MAX,
                    ..HttpLimits::default()
                },
            ),
            (
                "http.max_connections",
                HttpLimits {
                    max_connections: HttpLimits::MAX_CONNECTIONS + 1,
                    ..HttpLimits::default()
                },
            ),
        ] {
            match bad.validate() {
                Err(Error::Config(m)) => assert!(m.contains(field), "{field}: {m}"),
                other => panic!("{field}: accepted ({other:?})"),
            }
        }
        HttpLimits {
            header_read_timeout: hour,
            idle_timeout: hour,
            max_connections: HttpLimits::MAX_CONNECTIONS,
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn the_cap_never_exceeds_half_the_descriptor_limit() {
        let cap = effective_cap(usize::MAX);
        if let Some(limit) = fd_soft_limit() {
            assert!(u64::try_from(cap).unwrap() <= (limit / 2).max(1));
        }
        assert!(effective_cap(1) == 1);
    }
}
