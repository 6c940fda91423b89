#!/usr/bin/env bash
# The benchmark suite, in one run on this machine: the swarm-load matrix (patterns ×
# payloads × agent counts, optimized and baseline), the shared-driver comparison (swarmbus
# and flume, tokio mpsc, kameo, ractor, actix, hand-batched flume, all through the same
# `peer-load` driver, reps interleaved; the source of every "swarmbus ÷ X" target), and
# (full mode) a soak run. Writes benchmarks/results/*.json, then regenerates the generated
# blocks of docs/benchmarks.md and docs/img/*.svg, and prints the targets of
# benchmarks/targets.toml.
#
#   scripts/benchmark_suite.sh            full: 3 s runs, 10/1,000/10,000 agents, driver
#                                         matrix 3 reps × every system, 180 s soak
#   scripts/benchmark_suite.sh --quick    CI-sized: 1 s runs, direct/request/task at 1,000
#                                         agents, driver matrix 1 rep × swarmbus, flume,
#                                         tokio, flume-vec50; no soak
# Options: --out DIR (default benchmarks/results), --no-docs, --seconds S, --soak-seconds S.
# The 10-minute soak is not run by default:
#   swarm-load --pattern direct --agents 1000 --rate 50000 --duration 10m --warmup 1m
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
docs=1
out=benchmarks/results
run_s=3
soak_s=180
cmdline="scripts/benchmark_suite.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; run_s=1 ;;
    --no-docs) docs=0 ;;
    --out) out=$2; shift ;;
    --seconds) run_s=$2; shift ;;
    --soak-seconds) soak_s=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "benchmark_suite.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

echo "==> building release binaries"
cargo build --release -p swarmbus-benchmarks --bins
bin="${CARGO_TARGET_DIR:-target}/release"

mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.err
date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit+dirty"
fi
suite_start=$SECONDS
failed=()
count=0

# run NAME CMD...: runs CMD with --json into $out/NAME.json, bounded in time; a failure is
# recorded (and shown in the doc), not fatal, so one bad run does not hide the others.
run() {
  local name=$1; shift
  local started=$SECONDS
  count=$((count + 1))
  if timeout --kill-after=10 "$((run_s * 5 + 120))" "$@" --json "$out/$name.json" 2>"$out/$name.err"; then
    rm -f "$out/$name.err"
    printf '  [%3d] %-44s ok   %3ds\n' "$count" "$name" "$((SECONDS - started))"
  else
    failed+=("$name")
    rm -f "$out/$name.json"
    printf '  [%3d] %-44s FAIL %3ds: %s\n' "$count" "$name" "$((SECONDS - started))" \
      "$(tail -n 1 "$out/$name.err" 2>/dev/null)"
  fi
}

load() { # pattern payload agents
  for mode in optimized baseline; do
    run "load-$1-$2-$3-$mode" "$bin/swarm-load" --pattern "$1" --payload "$2" --agents "$3" \
      --mode "$mode" --duration "${run_s}s"
  done
}

# driver REPS [peer-load matrix options]: the shared-driver comparison in one process:
# every (system, workload) cell REPS times, interleaved, into $out/$tag-<system>-<workload>.json
# (median per_sec and every rep) and $out/$tag.md (the table); tag is "driver" unless
# DRIVER_TAG says otherwise. A failed cell is recorded
# by name, like a failed run.
driver() {
  local reps=$1; shift
  local tag=${DRIVER_TAG:-driver}
  local started=$SECONDS
  count=$((count + 1))
  # 27 cells at most, each rep a run plus its drain.
  if timeout --kill-after=10 "$(((run_s + 10) * 27 * reps + 120))" "$bin/peer-load" --matrix \
      --reps "$reps" --duration "${DRIVER_DURATION:-${run_s}s}" --json-dir "$out" --prefix "$tag-" \
      --markdown "$out/$tag.md" "$@" >"$out/$tag.out" 2>"$out/$tag.err"; then
    rm -f "$out/$tag.err"
    printf '  [%3d] %-44s ok   %3ds\n' "$count" "$tag matrix ($reps reps)" "$((SECONDS - started))"
  else
    local names
    names=$(sed -n 's/^failed: //p' "$out/$tag.err")
    for name in $names; do failed+=("$name"); done
    [ -n "$names" ] || failed+=("$tag-matrix")
    printf '  [%3d] %-44s FAIL %3ds: %s\n' "$count" "$tag matrix ($reps reps)" \
      "$((SECONDS - started))" "$(tail -n 1 "$out/$tag.err" 2>/dev/null)"
  fi
  rm -f "$out/$tag.out"
  cat "$out/$tag.md" 2>/dev/null || true
}

# agent_kinds REPS DURATION: spawned agents against plain ones (1,000 agents, random peers) and
# sends to a group of 100 against direct sends to its members, through the same driver.
agent_kinds() {
  DRIVER_DURATION=$2 DRIVER_TAG=spawn driver "$1" --systems swarmbus,swarmbus-spawned \
    --workloads direct,direct-open
  DRIVER_DURATION=$2 DRIVER_TAG=pool driver "$1" --systems swarmbus,swarmbus-group \
    --workloads direct,direct-open,request --agents 100
}

if [ "$quick" = 1 ]; then
  echo "==> quick suite (${run_s} s runs)"
  for pattern in direct request task; do load "$pattern" 64 1000; done
  echo "==> shared driver: swarmbus and peers, same driver, same run"
  driver 1 --systems swarmbus,flume,tokio,flume-vec50
  echo "==> spawned agents and groups, same driver, same run"
  agent_kinds 1 "${run_s}s"
else
  echo "==> full suite (${run_s} s runs, ${soak_s} s soak)"
  for agents in 1000 10 10000; do
    for pattern in direct broadcast topic request task mixed; do
      for payload in 64 mixed; do
        # `task` sends no payload; one row is enough.
        [ "$pattern" = task ] && [ "$payload" = mixed ] && continue
        load "$pattern" "$payload" "$agents"
      done
    done
    if [ "$agents" = 1000 ]; then
      echo "==> shared driver: swarmbus and peers, same driver, same run"
      driver 3
      echo "==> spawned agents and groups, same driver, same run"
      # Many short reps: the targets take the median of rep-by-rep ratios, and a pair run
      # half a second apart sees the same machine (this one's speed swings within seconds;
      # peer-load prints each paired ratio's 90% interval).
      agent_kinds 61 500ms
    fi
  done
  if command -v nats-server >/dev/null 2>&1; then
    echo "==> two hubs through NATS, against raw NATS in the same run"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    nats-server -a 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    nats_pid=$!
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.05
    done
    run nats-direct-64-1000 "$bin/swarm-load" --pattern direct --agents 1000 \
      --duration "${run_s}s" --nats "nats://127.0.0.1:$port"
    kill "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
    echo "==> durable across two hubs (JetStream), against raw JetStream and at most once"
    js_dir=$(mktemp -d)
    nats-server -js -sd "$js_dir" -a 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    nats_pid=$!
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.05
    done
    run durable "$bin/swarm-load" --agents 100 --duration "${run_s}s" \
      --nats "nats://127.0.0.1:$port" --durable
    kill "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
    rm -rf "$js_dir"
  fi
  echo "==> soak (${soak_s} s at 50,000 msg/s)"
  run_s=$soak_s run soak-direct-1000 "$bin/swarm-load" --pattern direct --agents 1000 \
    --rate 50000 --duration "${soak_s}s" --warmup "$((soak_s / 2))s"
fi

failed_json=""
for f in "${failed[@]+"${failed[@]}"}"; do failed_json="$failed_json${failed_json:+, }\"$f\""; done
cat >"$out/meta.json" <<JSON
{
  "command": "$cmdline",
  "date": "$date_utc",
  "commit": "$commit",
  "suite": "$([ "$quick" = 1 ] && echo quick || echo full)",
  "failed": [$failed_json]
}
JSON
echo "==> $count runs in $((SECONDS - suite_start)) s, ${#failed[@]} failed"

if [ "$docs" = 1 ]; then
  "$bin/bench-report" --results "$out"
fi
echo "==> targets"
"$bin/validate-targets" --results "$out" || true
[ ${#failed[@]} -eq 0 ]
