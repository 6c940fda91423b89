#!/usr/bin/env bash
# Smoke runs for CI: a second each of direct (both modes), request and mixed with mixed
# payloads, 1,000 agents; fails on any lost message.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p swarmbus-benchmarks --bins
bin="${CARGO_TARGET_DIR:-target}/release"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

smoke() { # name args...
  local name=$1; shift
  # swarm-load exits non-zero on a loss it cannot explain; timeout bounds a hang.
  timeout --kill-after=10 120 "$bin/swarm-load" --agents 1000 --duration 1s "$@" \
    --json "$dir/$name.json"
}

smoke direct-optimized --pattern direct --mode optimized
smoke direct-baseline --pattern direct --mode baseline
smoke request --pattern request
smoke mixed --pattern mixed --payload mixed
# Regression: echoing mixed payloads through request/reply once panicked in zlib-rs
# (release builds only), so it runs here, in release, with every local payload over 1 KiB
# compressed (local delivery compresses only into a backlog).
printf 'compress_backlog = 0\n' >"$dir/compress-all.toml"
smoke request-mixed --pattern request --payload mixed --requesters 8 --config "$dir/compress-all.toml"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["compression"]["compressed_messages"] > 0 else "request-mixed: nothing was compressed")' "$dir/request-mixed.json"

# Across two hubs through a real nats-server on a free loopback port, stopped by its PID.
if command -v nats-server >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  nats-server -a 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  nats_pid=$!
  trap 'kill "$nats_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  smoke nats --pattern direct --nats "nats://127.0.0.1:$port"
  kill "$nats_pid"
elif [ "${CI:-}" = "true" ]; then
  echo "smoke: nats-server is required under CI" >&2
  exit 1
fi
# And no loss at all, explained (counted drops) or not.
cat >"$dir/targets.toml" <<'TOML'
[[target]]
name = "smoke: no message lost, in every run"
metric = "messages_lost"
run = "*"
max = 0.0
TOML
"$bin/validate-targets" --strict --results "$dir" --targets "$dir/targets.toml"
echo "smoke: ok"
