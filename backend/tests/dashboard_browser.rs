//! The dashboard in a real headless Chromium, driven over chromedriver's W3C WebDriver HTTP
//! API: live data arrives, every chart draws (the NATS and HTTP panels included: the hub
//! joins a swarm on a local `nats-server`), no console error, and a screenshot is saved to
//! `docs/img/dashboard.png`.

mod common;
mod nats_server;

use base64::Engine;
use common::{free_port, request, require_tool, try_request, ChildGuard, HubProcess};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "dashboard-test-token";

/// A WebDriver session, deleted on drop.
struct Session {
    driver: SocketAddr,
    id: String,
}

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        let body = body.map(|b| b.to_string());
        let r = request(self.driver, method, &path, &[], body.as_deref());
        let v: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{method} {path}: bad JSON ({e}): {}", r.body));
        assert_eq!(r.status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn script(&self, source: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": source, "args": [] })),
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = try_request(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.id),
            &[],
            None,
        );
    }
}

/// Everything the test asserts on, read from the page in one script.
const PROBE: &str = r#"
const d = window.swarmbusDashboard || {};
const charts = {};
document.querySelectorAll("canvas").forEach(c => {
  let inked = 0;
  if (c.width > 0 && c.height > 0) {
    const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < px.length; i += 4 * 7) if (px[i] > 0) inked++;
  }
  charts[c.id.replace(/^c-/, "")] = { points: Number(c.dataset.points || 0), inked: inked };
});
const bars = document.getElementById("c-mailboxes");
charts.mailboxes = { points: Number(bars.dataset.points || 0), inked: bars.children.length };
return {
  ready: document.body.dataset.ready,
  polls: d.polls || 0,
  failures: d.failures || 0,
  available: d.available || {},
  charts: charts,
  errors: window.__errors || ["error hook missing"],
  agents: document.getElementById("t-agents").textContent,
  throughput: document.getElementById("t-throughput").textContent,
  workersNote: !document.getElementById("workers-note").hidden,
  natsShown: !document.getElementById("nats-card").hidden,
  natsFigures: document.getElementById("nats-figures").textContent,
  httpFigures: document.getElementById("http-figures").textContent,
  deadFigures: document.getElementById("dead-figures").textContent,
  deadChildren: document.getElementById("dead-list").children.length,
  deadRows: Number(document.getElementById("dead-list").dataset.rows || 0),
  agentsFigures: document.getElementById("agents-figures").textContent,
  agentsChildren: document.getElementById("agents-list").children.length,
  groupsText: document.getElementById("groups-list").textContent,
  groupsRows: Number(document.getElementById("groups-list").dataset.rows || 0),
};
"#;

fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/img/dashboard.png")
}

#[test]
fn dashboard_shows_live_data_in_headless_chromium() {
    let name = "dashboard_shows_live_data_in_headless_chromium";
    if !require_tool("chromium", name)
        || !require_tool("chromedriver", name)
        || !require_tool("nats-server", name)
    {
        return;
    }
    // JetStream: the hub runs durable, so the NATS card shows durable delivery too.
    let nats = nats_server::NatsServer::start_jetstream()
        .expect("nats-server is installed (checked above)");
    let url = nats.url();
    let hub = HubProcess::spawn(&[
        "--demo",
        "--agents",
        "30",
        "--metrics-addr",
        "127.0.0.1:0",
        "--auth-token",
        TOKEN,
        "--nats",
        &url,
        "--node",
        "dashboard-hub",
        "--durable",
    ]);
    hub.wait_healthy();

    let port = free_port();
    let driver: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _chromedriver = ChildGuard(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = try_request(driver, "GET", "/status", &[], None) {
            if r.status == 200 && r.body.contains("\"ready\":true") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver not ready in 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let profile =
        std::env::temp_dir().join(format!("swarmbus-chromium-{}-{}", std::process::id(), port));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile dir");
    let caps = json!({
        "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1500",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}
    });
    let created = request(driver, "POST", "/session", &[], Some(&caps.to_string()));
    let created: Value = serde_json::from_str(&created.body).expect("session JSON");
    let id = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {created}"))
        .to_string();
    let session = Session { driver, id };

    let url = format!("http://{}/?token={TOKEN}", hub.addr);
    session.call("POST", "/url", Some(json!({ "url": url })));

    // Wait for live data in every chart (bounded: 60 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let s = session.script(PROBE);
        let errors = s["errors"].as_array().cloned().unwrap_or_default();
        assert!(errors.is_empty(), "page errors: {errors:?}");
        let charts = s["charts"].as_object().cloned().unwrap_or_default();
        let all_drawn = !charts.is_empty()
            && charts.iter().all(|(id, c)| {
                let available = s["available"][id].as_bool().unwrap_or(false);
                !available || c["points"].as_u64().unwrap_or(0) > 1
            });
        if s["ready"] == "true" && s["polls"].as_u64().unwrap_or(0) >= 15 && all_drawn {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard did not fill within 60 s: {s}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    assert_eq!(state["failures"], 0, "{state}");
    // 30 demo agents and the 3 spawned summarizers.
    assert_eq!(state["agents"], "33", "{state}");
    let throughput = state["throughput"].as_str().unwrap_or("");
    assert!(
        throughput
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
            && throughput != "0",
        "throughput tile shows {throughput:?}"
    );
    let charts = state["charts"].as_object().expect("charts");
    for expected in [
        "throughput",
        "latency",
        "batch",
        "flushes",
        "compression",
        "saved",
        "pools",
        "agents",
        "mailboxes",
        "workers",
        "drops",
        "memory",
        "http",
        "httprefused",
        "nats",
        "natsrefused",
    ] {
        assert!(charts.contains_key(expected), "chart {expected} missing");
    }
    assert_eq!(
        state["natsShown"], true,
        "NATS panel hidden in a swarm: {state}"
    );
    let nats_figures = state["natsFigures"].as_str().unwrap_or("");
    for figure in [
        "link connected",
        "buffered",
        "lost",
        "node clashes 0",
        "durable stream SWARMBUS_default",
        "stream lag",
        "deduplicated",
        "JetStream errors 0",
        "directory writes",
        "directory refused 0",
        "agents not resumed 0",
    ] {
        assert!(
            nats_figures.contains(figure),
            "NATS panel lacks {figure:?}: {nats_figures}"
        );
    }
    let http_figures = state["httpFigures"].as_str().unwrap_or("");
    assert!(http_figures.contains("accepted"), "{http_figures}");
    // The dead-letter card: its counts, and the list fetched from /api/dead-letters (rows,
    // or the "none" line; nothing at all would mean the fetch failed).
    let dead_figures = state["deadFigures"].as_str().unwrap_or("");
    assert!(dead_figures.contains("held"), "{dead_figures}");
    assert!(
        state["deadChildren"].as_u64().unwrap_or(0) > 0,
        "dead letters not drawn: {state}"
    );
    // The spawned agents card: its counts, and the recent failures (or the "none" line).
    let agents_figures = state["agentsFigures"].as_str().unwrap_or("");
    for figure in ["running", "restarts", "handler panics", "gave up 0"] {
        assert!(
            agents_figures.contains(figure),
            "agents card lacks {figure:?}: {agents_figures}"
        );
    }
    assert!(
        state["agentsChildren"].as_u64().unwrap_or(0) > 0,
        "spawned agents not drawn: {state}"
    );
    assert!(
        agents_figures.contains("running 3"),
        "the demo's three summarizers run: {agents_figures}"
    );
    // The groups card: the demo's pool of summarizers, with their queues.
    let groups = state["groupsText"].as_str().unwrap_or("");
    assert!(
        groups.contains("summarizers") && groups.contains("3 here") && groups.contains("waiting"),
        "groups card: {groups}"
    );
    assert_eq!(state["groupsRows"].as_u64(), Some(1), "{state}");
    let stats = request(
        hub.addr,
        "GET",
        "/api/stats",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    );
    let stats: Value = serde_json::from_str(&stats.body).expect("stats");
    let pool_reports_workers = stats["workers"]["workers"].is_number();
    for (id, c) in charts {
        let available = state["available"][id].as_bool().unwrap_or(false);
        if id == "workers" && !available {
            // Only allowed while the worker pool has no figures to plot; then say so.
            assert!(!pool_reports_workers, "workers reported but not charted");
            assert_eq!(state["workersNote"], true);
            continue;
        }
        if id == "mailboxes" && !available {
            // Only mailboxes holding a full batch are listed; without a backlog the card
            // says so (one note row) and the API agrees.
            assert_eq!(
                stats["deepest_mailboxes"].as_array().map(Vec::len),
                Some(0),
                "deepest mailboxes reported but not drawn: {stats}"
            );
            assert_eq!(c["inked"], 1, "no-backlog note missing: {c}");
            continue;
        }
        assert!(available, "chart {id} not available: {state}");
        assert!(
            c["points"].as_u64().unwrap_or(0) > 1,
            "chart {id} empty: {c}"
        );
        assert!(
            c["inked"].as_u64().unwrap_or(0) > 0,
            "chart {id} drew nothing: {c}"
        );
    }

    // Chromium's own console log, where chromedriver offers it.
    if let Ok(r) = try_request(
        driver,
        "POST",
        &format!("/session/{}/se/log", session.id),
        &[],
        Some(r#"{"type":"browser"}"#),
    ) {
        if r.status == 200 {
            let logs: Value = serde_json::from_str(&r.body).expect("log JSON");
            let severe: Vec<_> = logs["value"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e["level"] == "SEVERE")
                .collect();
            assert!(severe.is_empty(), "browser console errors: {severe:?}");
        }
    }

    let png = session.call("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().expect("base64 screenshot"))
        .expect("decode screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = screenshot_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("docs/img");
    }
    std::fs::write(&path, &png).expect("write screenshot");
    drop(session);
    let _ = std::fs::remove_dir_all(&profile);
}
