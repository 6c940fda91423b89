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
