#!/usr/bin/env bash
# Measures the hub binary: exec-to-ready time, idle RSS (0 and 10,000 idle agents), and the
# CPU cost of a 1 Hz /metrics scraper. Usage: scripts/measure_hub.sh [path/to/swarmbus]
# Default binary: target/release/swarmbus (build with `cargo build --release --bin swarmbus`).
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/swarmbus}
PORT=${PORT:-19464}
ADDR=127.0.0.1:$PORT
CPU_SECS=${CPU_SECS:-60}
TICK=$(getconf CLK_TCK)
export RUST_LOG=warn

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_ready() { # polls /healthz every 1 ms, at most 5 s
  for _ in $(seq 1 5000); do
    curl -fs -o /dev/null "http://$ADDR/healthz" && return 0
    sleep 0.001
  done
  echo "hub not ready" >&2; return 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stop() { kill "$1"; wait "$1" 2>/dev/null || true; pids=(); }

echo "== ready time (exec to /healthz 200), 10 runs (upper bound: includes spawning curl per probe)"
for i in $(seq 1 10); do
  start=$(date +%s%N)
  "$BIN" hub --metrics-addr "$ADDR" >/dev/null & pid=$!; pids=($pid)
  wait_ready
  end=$(date +%s%N)
  echo "run $i: $(( (end - start) / 1000 )) us"
  stop "$pid"
done

for agents in 0 10000; do
  "$BIN" hub --metrics-addr "$ADDR" --agents "$agents" >/dev/null & pid=$!; pids=($pid)
  wait_ready; sleep 2
  echo "== idle RSS with $agents agents: $(rss_kib "$pid") KiB"
  stop "$pid"
done

"$BIN" hub --metrics-addr "$ADDR" --agents 100 >/dev/null & pid=$!; pids=($pid)
wait_ready; sleep 1
a=$(cpu_ticks "$pid"); sleep "$CPU_SECS"; b=$(cpu_ticks "$pid")
echo "== CPU without scraper over ${CPU_SECS}s: $((b - a)) ticks (1 tick = 1/${TICK} s)"
a=$(cpu_ticks "$pid")
for _ in $(seq 1 "$CPU_SECS"); do curl -fs -o /dev/null "http://$ADDR/metrics"; sleep 1; done
b=$(cpu_ticks "$pid")
echo "== CPU with a 1 Hz /metrics scraper over ${CPU_SECS} scrapes: $((b - a)) ticks"
echo "   = $(awk -v t=$((b - a)) -v hz="$TICK" -v s="$CPU_SECS" 'BEGIN { printf "%.3f", 100 * t / hz / s }')% of one core (includes idle cost)"
stop "$pid"
