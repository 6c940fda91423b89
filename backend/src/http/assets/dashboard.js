"use strict";
(function () {
  var HISTORY = 120;          // points kept per series: 2 minutes at 1 Hz
  var POLL_MS = 1000;
  var COLORS = ["#4cc2ff", "#3ddc97", "#ffb547", "#ff5d6c", "#b48cff", "#f78fd0"];
  var token = new URLSearchParams(window.location.search).get("token");

  // What the browser test reads: readiness, poll counts and points drawn per chart.
  var state = { ready: false, polls: 0, failures: 0, points: {}, available: {} };
  window.swarmbusDashboard = state;

  var series = {};            // chart id -> { name -> [values] }
  var prev = null;            // previous snapshot, for rates

  function $(id) { return document.getElementById(id); }

  function push(chart, name, value) {
    var c = series[chart] || (series[chart] = {});
    var s = c[name] || (c[name] = []);
    s.push(Number.isFinite(value) ? value : 0);
    if (s.length > HISTORY) s.shift();
  }

  function fmtNum(v, digits) {
    if (!Number.isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return v.toFixed(digits === undefined ? 0 : digits);
  }
  function fmtSecs(s) {
    if (!Number.isFinite(s) || s <= 0) return "0";
    if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
    return s.toFixed(2) + " s";
  }
  function fmtBytes(b) {
    if (b >= 1 << 30) return (b / (1 << 30)).toFixed(2) + " GiB";
    if (b >= 1 << 20) return (b / (1 << 20)).toFixed(1) + " MiB";
    if (b >= 1 << 10) return (b / (1 << 10)).toFixed(1) + " KiB";
    return Math.round(b) + " B";
  }
  function fmtUptime(s) {
    s = Math.floor(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h > 0 ? h + "h " + m + "m" : m > 0 ? m + "m " + r + "s" : r + "s";
  }
  function sum(obj) { var t = 0; for (var k in obj) t += obj[k]; return t; }

  // Quantile of a (non-cumulative) bucket histogram, as the hub estimates it.
  function quantile(bounds, counts, q) {
    var total = 0;
    for (var i = 0; i < counts.length; i++) total += counts[i];
    if (total === 0) return NaN;
    var rank = Math.max(q * total, 1), seen = 0;
    for (var j = 0; j < counts.length; j++) {
      var n = counts[j];
      if (n === 0) continue;
      if (seen + n >= rank) {
        if (j >= bounds.length) return bounds[bounds.length - 1];
        var lower = j === 0 ? 0 : bounds[j - 1];
        return lower + (bounds[j] - lower) * ((rank - seen) / n);
      }
      seen += n;
    }
    return bounds[bounds.length - 1];
  }
  function deltaCounts(now, before) {
    return now.counts.map(function (c, i) { return c - (before ? before.counts[i] || 0 : 0); });
  }

  function drawChart(id, unitFmt, fixedMax) {
    var canvas = $("c-" + id);
    if (!canvas) return;
    var data = series[id] || {};
    var names = Object.keys(data);
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
    if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var points = 0, max = 0;
    names.forEach(function (n) {
      points = Math.max(points, data[n].length);
      data[n].forEach(function (v) { if (v > max) max = v; });
    });
    if (fixedMax) max = Math.max(max, fixedMax);
    if (max <= 0) max = 1;
    max *= 1.1;
    var left = 48, right = 8, top = 18, bottom = 16;
    var pw = w - left - right, ph = h - top - bottom;
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#252c36"; ctx.fillStyle = "#8a94a3"; ctx.lineWidth = 1;
    for (var g = 0; g <= 4; g++) {
      var y = top + ph - (ph * g) / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
      ctx.fillText(unitFmt((max * g) / 4), 4, y + 4);
    }
    var legendX = left + 4;
    names.forEach(function (n, k) {
      var s = data[n];
      var color = COLORS[k % COLORS.length];
      ctx.strokeStyle = color; ctx.lineWidth = 1.8; ctx.beginPath();
      s.forEach(function (v, i) {
        var x = left + (pw * (HISTORY - s.length + i)) / (HISTORY - 1);
        var y = top + ph - (ph * v) / max;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      if (s.length === 1) {
        var x1 = left + pw, y1 = top + ph - (ph * s[0]) / max;
        ctx.moveTo(x1 - 3, y1); ctx.lineTo(x1, y1);
      }
      ctx.stroke();
      ctx.fillStyle = color;
      var label = n + " " + unitFmt(s.length ? s[s.length - 1] : 0);
      ctx.fillText(label, legendX, 11);
      legendX += ctx.measureText(label).width + 12;
    });
    canvas.dataset.points = String(points);
    state.points[id] = points;
  }

  function drawMailboxes(list) {
    var box = $("c-mailboxes");
    var max = 1;
    list.forEach(function (m) { if (m.depth > max) max = m.depth; });
    box.textContent = "";
    list.forEach(function (m) {
      var row = document.createElement("div"); row.className = "bar";
      var name = document.createElement("span"); name.className = "name"; name.textContent = m.name; name.title = m.agent;
      var track = document.createElement("span"); track.className = "track";
      var fill = document.createElement("span"); fill.className = "fill";
      fill.style.width = ((100 * m.depth) / max).toFixed(1) + "%"; fill.style.display = "block";
      track.appendChild(fill);
      var num = document.createElement("span"); num.className = "num"; num.textContent = fmtNum(m.depth);
      row.appendChild(name); row.appendChild(track); row.appendChild(num);
      box.appendChild(row);
    });
    if (list.length === 0) {
      // Only mailboxes holding at least one full batch are tracked (a backlog).
      var none = document.createElement("div"); none.className = "hint";
      none.textContent = "no backlog: no mailbox holds a full batch";
      box.appendChild(none);
    }
    box.dataset.points = String(list.length);
    state.points.mailboxes = list.length;
    state.available.mailboxes = list.length > 0;
  }

  // A row of labelled figures; `bad` marks the ones an operator should look at.
  function figures(id, items) {
    var box = $(id);
    box.textContent = "";
    items.forEach(function (it) {
      var span = document.createElement("span");
      if (it.cls) span.className = it.cls;
      span.appendChild(document.createTextNode(it.label + " "));
      var b = document.createElement("b"); b.textContent = it.value;
      span.appendChild(b);
      box.appendChild(span);
    });
  }

  // Per-second rates of the labelled counters in `now` that have counted anything, and
  // always an "all" series, so a quiet chart still draws.
  function pushReasons(chart, now, before, rate, extra) {
    var all = 0;
    Object.keys(now).forEach(function (r) {
      var v = rate(now[r], before ? before[r] || 0 : 0);
      if (Number.isFinite(v)) all += v;
      if (now[r] > 0) push(chart, r, v);
    });
    push(chart, "all", all + (extra || 0));
  }

  // The HTTP server's counters (`http` in /api/stats), when the hub reports them.
  function updateHttp(s, rate) {
    var h = s.http;
    var has = !!h && typeof h.connections_open === "number";
    state.available.http = has;
    state.available.httprefused = has;
    $("http-note").hidden = has;
    if (!has) { $("http-note").textContent = "The hub does not report HTTP connection counters."; return; }
    push("http", "open", h.connections_open);
    push("http", "cap", h.connections_cap);
    var closed = function (x) {
      return { over_cap: x.connections_over_cap, evicted: x.connections_evicted,
        header_timeout: x.connections_header_timeout, idle_timeout: x.connections_idle_timeout,
        host: x.requests_refused_host, accept_errors: x.accept_errors };
    };
    var p = prev && prev.http;
    if (p) pushReasons("httprefused", closed(h), closed(p), rate);
    var refusals = sum(closed(h));
    figures("http-figures", [
      { label: "accepted", value: fmtNum(h.connections_accepted) },
      { label: "refused", value: fmtNum(refusals), cls: refusals > 0 ? "bad" : "" },
      { label: "keep-alive expired", value: fmtNum(h.connections_keep_alive_expired) },
    ]);
    drawChart("http", function (v) { return fmtNum(v); });
    if (p) drawChart("httprefused", function (v) { return fmtNum(v, 1); });
  }

  // Streamed replies and cancellations: open streams, chunks/s, cancels/s by who cancelled.
  function updateConversations(s, rate) {
    var c = s.cancellations || {};
    push("conversations", "open streams", s.open_streams || 0);
    if (prev) {
      push("conversations", "chunks/s", rate(s.chunks || 0, prev.chunks || 0));
      Object.keys(c).forEach(function (by) {
        if (c[by] > 0) push("conversations", "cancel " + by + "/s", rate(c[by], (prev.cancellations || {})[by] || 0));
      });
    }
    var expired = (s.messages_dropped || {}).deadline_expired || 0;
    var gone = (s.messages_dropped || {}).stream_gone || 0;
    figures("conv-figures", [
      { label: "open streams", value: fmtNum(s.open_streams || 0) },
      { label: "chunks", value: fmtNum(s.chunks || 0) },
      { label: "cancelled by caller", value: fmtNum(c.caller || 0) },
      { label: "by deadline", value: fmtNum(c.deadline || 0), cls: c.deadline > 0 ? "bad" : "" },
      { label: "by shutdown", value: fmtNum(c.shutdown || 0) },
      { label: "expired before handed over", value: fmtNum(expired), cls: expired > 0 ? "bad" : "" },
      { label: "stream gone", value: fmtNum(gone), cls: gone > 0 ? "bad" : "" },
    ]);
    drawChart("conversations", function (v) { return fmtNum(v, 1); });
    state.available.conversations = true;
  }

  // Dead letters: the counts from /api/stats, the newest few from /api/dead-letters.
  function updateDeadLetters(s) {
    var rec = s.dead_letters_recorded || {};
    var items = [
      { label: "held", value: fmtNum(s.dead_letters || 0), cls: s.dead_letters > 0 ? "bad" : "" },
    ];
    Object.keys(rec).filter(function (r) { return rec[r] > 0; }).forEach(function (r) {
      items.push({ label: r, value: fmtNum(rec[r]), cls: "bad" });
    });
    items.push({ label: "evicted", value: fmtNum(s.dead_letters_evicted || 0) });
    items.push({ label: "payloads not kept", value: fmtNum(s.dead_letter_payloads_dropped || 0) });
    var rp = s.dead_letters_replayed || {};
    items.push({ label: "replayed", value: fmtNum(rp.sent || 0) });
    items.push({ label: "failed again", value: fmtNum(rp.failed || 0), cls: rp.failed > 0 ? "bad" : "" });
    figures("dead-figures", items);
    state.available.deadletters = true;
  }

  // Spawned agents (`supervision` in /api/stats): failures, restarts, the recent ones.
  function updateSupervision(s) {
    var v = s.supervision || {};
    figures("agents-figures", [
      { label: "running", value: fmtNum(v.running || 0) },
      { label: "restarts", value: fmtNum(v.restarts || 0), cls: v.restarts > 0 ? "bad" : "" },
      { label: "handler errors", value: fmtNum(v.handler_errors || 0), cls: v.handler_errors > 0 ? "bad" : "" },
      { label: "handler panics", value: fmtNum(v.handler_panics || 0), cls: v.handler_panics > 0 ? "bad" : "" },
      { label: "gave up", value: fmtNum(v.gave_up || 0), cls: v.gave_up > 0 ? "bad" : "" },
    ]);
    var box = $("agents-list");
    var list = v.recent || [];
    box.textContent = "";
    if (!list.length) {
      var none = document.createElement("div"); none.className = "empty";
      none.textContent = "no handler has failed";
      box.appendChild(none);
    }
    list.slice(0, 8).forEach(function (a) {
      var row = document.createElement("div"); row.className = "letter";
      [
        ["when", new Date(a.at).toLocaleTimeString()],
        ["reason", a.gave_up ? "stopped" : "restarted ×" + a.restarts],
        ["what", a.name + " " + a.id.slice(0, 8) + "  " + a.last_failure.slice(0, 80)],
      ].forEach(function (c) {
        var span = document.createElement("span"); span.className = c[0]; span.textContent = c[1];
        row.appendChild(span);
      });
      box.appendChild(row);
    });
    box.dataset.rows = String(list.length);
    state.available.supervision = true;
  }

  // Groups (`groups` in /api/stats): members here and elsewhere, and each one's queue.
  function updateGroups(s) {
    var box = $("groups-list");
    var list = s.groups || [];
    box.textContent = "";
    if (!list.length) {
      var none = document.createElement("div"); none.className = "empty";
      none.textContent = "no group has a member on this hub";
      box.appendChild(none);
    }
    list.slice(0, 8).forEach(function (g) {
      var row = document.createElement("div"); row.className = "letter group";
      var queued = g.members.map(function (m) { return m.queued; });
      [
        ["when", g.name],
        ["reason", g.members.length + " here" + (g.remote_members ? ", " + g.remote_members + " remote" : "")],
        ["what", "waiting " + queued.slice(0, 16).join(" · ") + (queued.length > 16 ? " …" : "")],
        ["size", fmtNum(queued.reduce(function (a, b) { return a + b; }, 0))],
      ].forEach(function (c) {
        var span = document.createElement("span"); span.className = c[0]; span.textContent = c[1];
        row.appendChild(span);
      });
      box.appendChild(row);
    });
    box.dataset.rows = String(list.length);
    state.available.groups = true;
  }

  function drawLetters(list) {
    var box = $("dead-list");
    box.textContent = "";
    if (!list.length) {
      var none = document.createElement("div"); none.className = "empty";
      none.textContent = "none: every message reached an agent";
      box.appendChild(none);
    }
    list.forEach(function (l) {
      var row = document.createElement("div"); row.className = "letter";
      var cells = [
        ["when", new Date(l.at_unix_ms).toLocaleTimeString()],
        ["reason", l.reason],
        ["what", l.kind + " " + l.from.slice(0, 8) + " → " + l.to.slice(0, 8) +
          (l.payload_text != null ? "  " + JSON.stringify(l.payload_text).slice(0, 80) : "")],
        ["size", fmtBytes(l.payload_bytes)],
      ];
      cells.forEach(function (c) {
        var span = document.createElement("span"); span.className = c[0]; span.textContent = c[1];
        row.appendChild(span);
      });
      box.appendChild(row);
    });
    box.dataset.rows = String(list.length);
  }

  // Durable delivery (`nats.durable`): what JetStream holds for this hub and what came twice.
  function durableFigures(d, n) {
    if (!d) return [];
    return [
      { label: "durable stream", value: d.stream },
      { label: "stream lag", value: fmtNum(d.stream_lag || 0), cls: "" },
      { label: "redelivered", value: fmtNum(d.redelivered || 0) },
      { label: "deduplicated", value: fmtNum(d.messages_deduplicated || 0) },
      { label: "handed back", value: fmtNum(d.naks || 0) },
      { label: "JetStream errors", value: fmtNum(d.jetstream_errors || 0), cls: d.jetstream_errors > 0 ? "bad" : "" },
      { label: "directory writes", value: fmtNum(d.directory_writes || 0) },
      { label: "directory refused", value: fmtNum(d.directory_entries_refused || 0), cls: d.directory_entries_refused > 0 ? "bad" : "" },
      { label: "agents not resumed", value: fmtNum(n.agents_not_resumed || 0), cls: n.agents_not_resumed > 0 ? "bad" : "" },
    ];
  }

  // The NATS bridge (`nats` in /api/stats): shown only for a hub in a swarm.
  function updateNats(s, rate) {
    var n = s.nats;
    var has = !!n && typeof n.connected === "boolean";
    state.available.nats = has;
    state.available.natsrefused = has;
    $("nats-card").hidden = !has;
    $("natsrefused-card").hidden = !has;
    if (!has) return;
    $("nats-node").textContent = "node " + n.node;
    var p = prev && prev.nats;
    push("nats", "buffered", n.buffered);
    push("nats", "unconfirmed", n.messages_unconfirmed || 0);
    if (p) push("nats", "lost/s", rate(n.messages_lost || 0, p.messages_lost || 0));
    var refused = sum(n.frames_rejected || {});
    figures("nats-figures", [
      { label: "link", value: n.connected ? "connected" : "disconnected", cls: n.connected ? "ok" : "bad" },
      { label: "remote hubs", value: fmtNum(n.directory_nodes) },
      { label: "buffered", value: fmtNum(n.buffered) },
      { label: "lost", value: fmtNum(n.messages_lost || 0), cls: n.messages_lost > 0 ? "bad" : "" },
      { label: "node clashes", value: fmtNum(n.node_clashes || 0), cls: n.node_clashes > 0 ? "bad" : "" },
      { label: "reconnects", value: fmtNum(n.reconnects) },
    ].concat(durableFigures(n.durable, n)));
    if (p) pushReasons("natsrefused", n.frames_rejected || {}, p.frames_rejected, rate);
    var byReason = Object.keys(n.frames_rejected || {})
      .filter(function (r) { return n.frames_rejected[r] > 0; })
      .map(function (r) { return { label: r, value: fmtNum(n.frames_rejected[r]), cls: "bad" }; });
    figures("natsrefused-figures", [{ label: "refused in all", value: fmtNum(refused), cls: refused > 0 ? "bad" : "" }]
      .concat(byReason));
    drawChart("nats", function (v) { return fmtNum(v); });
    if (p) drawChart("natsrefused", function (v) { return fmtNum(v, 1); });
  }

  function update(s) {
    var dt = prev ? s.uptime_seconds - prev.uptime_seconds : 0;
    var rate = function (now, before) { return dt > 0 ? Math.max(0, now - before) / dt : NaN; };
    var delivered = NaN;
    if (prev && dt > 0) {
      delivered = rate(s.messages_delivered, prev.messages_delivered);
      push("throughput", "sent", rate(s.messages_sent, prev.messages_sent));
      push("throughput", "delivered", delivered);
      push("throughput", "received", rate(s.messages_received, prev.messages_received));
      var dl = s.delivery_latency_seconds, dlPrev = prev.delivery_latency_seconds;
      var dc = deltaCounts(dl, dlPrev);
      var p50 = quantile(dl.bounds, dc, 0.5), p99 = quantile(dl.bounds, dc, 0.99);
      if (!Number.isFinite(p50)) { p50 = s.latency_p50_seconds; p99 = s.latency_p99_seconds; }
      push("latency", "p50", p50 * 1e3);
      push("latency", "p99", p99 * 1e3);
      var bc = s.batch_size.count - prev.batch_size.count;
      push("batch", "mean", bc > 0 ? (s.batch_size.sum - prev.batch_size.sum) / bc : 0);
      Object.keys(s.batches_flushed).forEach(function (r) {
        if (r === "shutdown") return;
        push("flushes", r, rate(s.batches_flushed[r], prev.batches_flushed[r] || 0));
      });
      // Every reason seen so far, and the memory budget's always, so shedding shows at once.
      Object.keys(s.messages_dropped).forEach(function (r) {
        if (r !== "memory_budget" && !s.messages_dropped[r]) return;
        push("drops", r, rate(s.messages_dropped[r], prev.messages_dropped[r] || 0));
      });
      var saved = (s.payload_bytes_raw - s.payload_bytes_wire) - (prev.payload_bytes_raw - prev.payload_bytes_wire);
      push("saved", "saved", dt > 0 ? Math.max(0, saved) / dt / 1024 : 0);
    }
    push("compression", "ratio", s.compression_ratio);
    s.pools.forEach(function (p) { push("pools", p.pool, p.hit_rate * 100); });
    push("agents", "agents", s.agents);
    push("memory", "queued", s.queued_bytes || 0);

    // Worker figures appear once the elastic pool reports them.
    var w = s.workers || {};
    var hasWorkers = typeof w.workers === "number" && typeof w.cpu_load_ratio === "number";
    state.available.workers = hasWorkers;
    if (hasWorkers) {
      push("workers", "workers", w.workers);
      push("workers", "cpu load %", w.cpu_load_ratio * 100);
      $("workers-note").hidden = true;
    } else {
      var note = $("workers-note");
      note.textContent = "The worker pool does not report workers or CPU load yet.";
      note.hidden = false;
    }

    drawChart("throughput", function (v) { return fmtNum(v); });
    drawChart("latency", function (v) { return v.toFixed(v < 10 ? 2 : 0); });
    drawChart("batch", function (v) { return v.toFixed(1); });
    drawChart("flushes", function (v) { return fmtNum(v, 1); });
    drawChart("compression", function (v) { return v.toFixed(2) + "×"; }, 1);
    drawChart("saved", function (v) { return fmtNum(v, 1); });
    drawChart("pools", function (v) { return v.toFixed(0); }, 100);
    if (hasWorkers) drawChart("workers", function (v) { return fmtNum(v, 1); });
    drawChart("agents", function (v) { return fmtNum(v); });
    drawChart("memory", fmtBytes);
    drawChart("drops", function (v) { return fmtNum(v, 1); });
    drawMailboxes(s.deepest_mailboxes || []);
    updateHttp(s, rate);
    updateNats(s, rate);
    updateConversations(s, rate);
    updateDeadLetters(s);
    updateSupervision(s);
    updateGroups(s);
    ["throughput", "latency", "batch", "flushes", "compression", "saved", "pools", "agents", "memory", "drops"]
      .forEach(function (id) { state.available[id] = true; });

    // Big numbers.
    $("t-throughput").textContent = Number.isFinite(delivered) ? fmtNum(delivered) : "…";
    $("t-p99").textContent = fmtSecs(s.latency_p99_seconds);
    $("t-p50").textContent = "p50 " + fmtSecs(s.latency_p50_seconds);
    $("t-agents").textContent = fmtNum(s.agents);
    $("t-topics").textContent = s.topics + " topics";
    $("t-ratio").textContent = s.compression_ratio.toFixed(2) + "×";
    $("t-saved").textContent = fmtBytes(Math.max(0, s.payload_bytes_raw - s.payload_bytes_wire)) + " saved";
    $("t-backlog").textContent = fmtNum(s.mailbox_depth_total);
    $("t-deepest").textContent = "deepest " + fmtNum(s.mailbox_depth_max);
    $("t-queued").textContent = fmtBytes(s.queued_bytes || 0);
    $("t-budget").textContent = "of " + fmtBytes(s.queued_bytes_budget || 0) + " budget";
    $("t-dropped").textContent = fmtNum(sum(s.messages_dropped));
    $("t-errors").textContent = fmtNum(sum(s.send_errors)) + " errors";
    $("t-uptime").textContent = fmtUptime(s.uptime_seconds);
    $("t-total").textContent = fmtNum(s.messages_sent) + " sent";
    prev = s;
  }

  function setStatus(kind, text) {
    $("status-dot").className = "dot " + kind;
    $("status-text").textContent = text;
  }

  function poll() {
    var headers = { "Accept": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    fetch("/api/stats", { headers: headers, cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) throw new Error("unauthorized: open this page as /?token=<auth token>");
        if (!r.ok) throw new Error("hub answered " + r.status);
        return r.json();
      })
      .then(function (s) {
        update(s);
        // The newest dead letters; a failure here leaves the rest of the page live.
        fetch("/api/dead-letters?limit=8", { headers: headers, cache: "no-store" })
          .then(function (r) { return r.ok ? r.json() : []; })
          .then(drawLetters, function () {});
        state.polls += 1;
        $("polls").textContent = String(state.polls);
        $("banner").hidden = true;
        setStatus("live", "live · updated " + new Date().toLocaleTimeString());
        if (!state.ready) { state.ready = true; document.body.dataset.ready = "true"; }
      })
      .catch(function (e) {
        // Shown on the page, not thrown: a hub restart should not look like a page bug.
        state.failures += 1;
        setStatus("down", "offline");
        var b = $("banner"); b.textContent = String(e.message || e); b.hidden = false;
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  poll();
})();
