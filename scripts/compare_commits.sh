#!/usr/bin/env bash
# A/B of two commits on this machine, in one run: builds `swarm-load` of each in its own
# worktree, then runs every workload on both, alternating OLD and NEW, REPS times, and
# prints the median throughput of each and NEW ÷ OLD. The ratio is what to quote: both
# sides ran on the same machine within the same minutes.
#
#   scripts/compare_commits.sh [--reps N] [--seconds S] OLD [NEW]    (NEW defaults to HEAD)
#
# Workloads: direct, request and broadcast at 1,000 agents with 64 B payloads, direct with
# mixed payloads, and (when nats-server is installed) the NATS cross-hub run, against a
# server this script starts on a free loopback port and stops by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=3
seconds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--reps N] [--seconds S] OLD [NEW]" >&2; exit 2; }
old=$(git rev-parse --short "$1")
new=$(git rev-parse --short "${2:-HEAD}")
root=$(pwd)
work="$root/target/ab"
mkdir -p "$work"

build() {
  local sha=$1 tree="$work/tree-$1"
  if [ ! -d "$tree" ]; then
    git worktree add -q --detach "$tree" "$sha"
  fi
  echo "==> building swarm-load at $sha" >&2
  (cd "$tree" && CARGO_TARGET_DIR="$work/target-$sha" cargo build -q --release -p swarmbus-benchmarks --bin swarm-load)
  echo "$work/target-$sha/release/swarm-load"
}
old_bin=$(build "$old")
new_bin=$(build "$new")

nats_pid=""
cleanup() { [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true; }
trap cleanup EXIT
nats_url=""
if command -v nats-server >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  nats-server -a 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  nats_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  nats_url="nats://127.0.0.1:$port"
fi

workloads=(
  "direct-64 --pattern direct --agents 1000 --payload 64"
  "direct-mixed --pattern direct --agents 1000 --payload mixed"
  "request-64 --pattern request --agents 1000 --payload 64"
  "broadcast-64 --pattern broadcast --agents 1000 --payload 64"
)
[ -n "$nats_url" ] && workloads+=("nats-direct-64 --nats $nats_url --agents 1000 --payload 64")

# msgs_per_sec from one run's JSON report.
rate() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["msgs_per_sec"])' "$1"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-16s %14s %14s %8s   (%s reps of %s s; OLD %s, NEW %s; %s)\n' \
  workload "OLD msg/s" "NEW msg/s" "NEW/OLD" "$reps" "$seconds" "$old" "$new" "$(date -u +%FT%TZ)"
for w in "${workloads[@]}"; do
  name=${w%% *}
  args=${w#* }
  olds=()
  news=()
  for i in $(seq 1 "$reps"); do
    for side in old new; do
      bin=$old_bin
      [ "$side" = new ] && bin=$new_bin
      json="$work/$name-$side-$i.json"
      # shellcheck disable=SC2086
      timeout --kill-after=10 "$((seconds * 5 + 60))" "$bin" $args --duration "${seconds}s" --json "$json" >/dev/null 2>&1 \
        || { echo "  $name ($side, rep $i) failed" >&2; continue; }
      if [ "$side" = old ]; then olds+=("$(rate "$json")"); else news+=("$(rate "$json")"); fi
    done
  done
  [ ${#olds[@]} -gt 0 ] && [ ${#news[@]} -gt 0 ] || { echo "$name: no result" >&2; continue; }
  mo=$(median "${olds[@]}")
  mn=$(median "${news[@]}")
  printf '%-16s %14.0f %14.0f %8.2f\n' "$name" "$mo" "$mn" "$(python3 -c "print($mn/$mo)")"
done
