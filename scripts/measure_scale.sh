#!/usr/bin/env bash
# Measures the hub binary at scale: for N idle agents (default 0, 100000, 1000000) it starts
# `swarmbus hub --agents N --metrics-addr 127.0.0.1:PORT`, times the registration, reads RSS,
# and times CALLS calls each to /metrics and /api/stats (median, max), then stops the hub.
# Usage: scripts/measure_scale.sh [path/to/swarmbus]
# Default binary: target/release/swarmbus (build with `cargo build --release --bin swarmbus`).
# Env: SIZES="0 100000 1000000", PORT=19465, LIMIT=60 (s to wait for registration; the
#      run reports how many were registered when it gives up), CALLS=20, SETTLE=2 (s).
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/swarmbus}
SIZES=${SIZES:-0 100000 1000000}
PORT=${PORT:-19465}
ADDR=127.0.0.1:$PORT
LIMIT=${LIMIT:-60}
CALLS=${CALLS:-20}
SETTLE=${SETTLE:-2}
[ -x "$BIN" ] || { echo "no hub binary at $BIN" >&2; exit 1; }
LOGDIR=$(mktemp -d)
# The hub logs "idle agents registered" at info once every agent is in.
export RUST_LOG=${RUST_LOG:-info}

pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$LOGDIR"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The hub's `agents` figure, or -1 if /api/stats does not answer within 10 s.
stats_agents() {
  curl -fs --max-time 10 "http://$ADDR/api/stats" | jq -r '.agents // -1' 2>/dev/null || echo -1
}
# Stops the hub gracefully (SIGTERM), at most 60 s, then for good.
stop_hub() {
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
# CALLS timed calls of one route: "median_ms max_ms bytes", or "fail" on an error.
time_route() {
  local route=$1 out times bytes
  times=()
  for _ in $(seq 1 "$CALLS"); do
    out=$(curl -fs --max-time 30 -o /dev/null -w '%{time_total} %{size_download}' \
      "http://$ADDR$route") || { echo fail; return; }
    times+=("${out% *}")
    bytes=${out#* }
  done
  printf '%s\n' "${times[@]}" | sort -g | awk -v b="$bytes" '
    { t[NR] = $1 * 1000 }
    END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2;
          printf "%.2f %.2f %d", m, t[NR], b }'
}

rss0=
echo "hub: $BIN"
echo "machine: $(nproc) vCPU, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
printf '%-9s %-11s %-12s %-12s %-9s %-9s %-13s %-13s %s\n' agents registered reg_ms \
  reg_per_s rss_kib kib/agent metrics_ms api_stats_ms "bytes(metrics/stats)"
for n in $SIZES; do
  log=$LOGDIR/hub-$n.log
  out=$LOGDIR/hub-$n.out
  start=$(now_ns)
  "$BIN" hub --agents "$n" --metrics-addr "$ADDR" >"$out" 2>"$log" &
  pid=$!
  # Ready: /healthz answers (the HTTP server starts before the agents are registered).
  ready=
  for _ in $(seq 1 2000); do
    if curl -fs --max-time 1 -o /dev/null "http://$ADDR/healthz"; then ready=$(now_ns); break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
  done
  if [ -z "$ready" ]; then
    echo "$n: hub not ready within 10 s; log:" >&2; cat "$log" >&2; stop_hub; continue
  fi
  # Registered: the log line, polled every 10 ms without loading the hub.
  done_at=
  deadline=$(( $(now_ns) + LIMIT * 1000000000 ))
  while [ "$(now_ns)" -lt "$deadline" ]; do
    if grep -q "idle agents registered" "$log"; then done_at=$(now_ns); break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  if [ -z "$done_at" ]; then
    got=$(stats_agents)
    printf '%-9s %-11s %s\n' "$n" "$got" "gave up after ${LIMIT} s (registered: /api/stats agents; -1: no answer in 10 s); RSS $(rss_kib "$pid" 2>/dev/null || echo ?) KiB"
    stop_hub; continue
  fi
  reg_ms=$(( (done_at - ready) / 1000000 ))
  sleep "$SETTLE"
  got=$(stats_agents)
  rss=$(rss_kib "$pid")
  [ "$n" = 0 ] && rss0=$rss
  per_agent=-
  if [ -n "$rss0" ] && [ "$n" -gt 0 ]; then
    per_agent=$(awk -v a="$rss" -v b="$rss0" -v n="$n" 'BEGIN { printf "%.3f", (a - b) / n }')
  fi
  per_s=-
  if [ "$n" -gt 0 ]; then
    per_s=$(awk -v n="$n" -v ms="$reg_ms" 'BEGIN { printf "%.0f", n / (ms > 0 ? ms : 1) * 1000 }')
  fi
  read -r m_med m_max m_bytes <<<"$(time_route /metrics)"
  read -r s_med s_max s_bytes <<<"$(time_route /api/stats)"
  printf '%-9s %-11s %-12s %-12s %-9s %-9s %-13s %-13s %s\n' "$n" "$got" "$reg_ms" "$per_s" \
    "$rss" "$per_agent" "$m_med/$m_max" "$s_med/$s_max" "${m_bytes:-?}/${s_bytes:-?}"
  stop_hub
  echo "   (exec to registered: $(( (done_at - start) / 1000000 )) ms)"
done
echo "reg_ms: /healthz 200 to the 'idle agents registered' log line (10 ms polls);"
echo "kib/agent: (RSS - RSS with 0 agents) / N after ${SETTLE} s; *_ms: median/max of $CALLS curl calls."
