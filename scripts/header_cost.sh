#!/usr/bin/env bash
# What headers cost on the plain send path, in criterion (benchmarks/benches/headers.rs):
# this tree against the last commit before headers existed, reps interleaved (A B, then
# B A, ...) in one run on this machine. Writes benchmarks/results/header-cost.json with the
# per-message medians of every rep and these ratios of per-message time:
#   none          this tree's send_none ÷ the old tree's send_none   (target ≤ 1.05)
#   all           this tree's send_all  ÷ the old tree's send_none   (target ≤ 1.15)
#   all_over_none this tree's send_all  ÷ this tree's send_none      (same build)
#   none_without_otel  send_none built without the `otel` feature ÷ the old tree's
# "this tree" is built with `otel` (its send_none pays the span lookup); the build without
# it is what an embedder without the feature runs.
# The old tree is a git worktree under target/header-cost/ (built once, about 5 minutes
# cold); it gets this tree's bench file, where send_all compiles only with `otel`.
#
#   scripts/header_cost.sh [--reps N] [--before REV] [--seconds S] [--out FILE]
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
reps=5
before=5dc4810 # "The Grafana check reads metric names through the one helper": no headers yet
seconds=5
out=benchmarks/results/header-cost.json
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift ;;
    --before) before=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

work="$root/target/header-cost"
old="$work/before"
mkdir -p "$work"
if [ ! -d "$old/.git" ] && [ ! -f "$old/.git" ]; then
  git worktree add --detach "$old" "$before" >/dev/null
else
  # Undo what an earlier run put there (the copied bench may be untracked at that commit).
  git -C "$old" checkout --quiet -- .
  git -C "$old" clean -fq -- benchmarks/benches/headers.rs
  git -C "$old" checkout --quiet --detach "$before"
fi
cp benchmarks/benches/headers.rs "$old/benchmarks/benches/headers.rs"
if ! grep -q 'name = "headers"' "$old/benchmarks/Cargo.toml"; then
  printf '\n[[bench]]\nname = "headers"\nharness = false\n' >>"$old/benchmarks/Cargo.toml"
fi

# bench_exe DIR TARGET_DIR [cargo args]: builds the headers bench, prints its executable.
bench_exe() {
  local dir=$1 target=$2
  shift 2
  (cd "$dir" && CARGO_TARGET_DIR="$target" cargo bench -q -p swarmbus-benchmarks --bench headers \
    --no-run --message-format=json "$@") |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "headers" and .executable != null) | .executable' |
    tail -n 1
}
echo "==> building the bench at $before (old) and at $(git rev-parse --short HEAD) (this tree)"
old_exe=$(bench_exe "$old" "$work/target")
new_exe=$(bench_exe "$root" "${CARGO_TARGET_DIR:-$root/target}" --features otel)
# Without `otel`, in a target dir of its own (the feature changes the swarmbus build).
plain_exe=$(bench_exe "$root" "$work/target-plain")

run() { # run NAME EXE REP
  CRITERION_HOME="$work/criterion-$1" timeout --kill-after=10 600 "$2" --bench \
    --warm-up-time 2 --measurement-time "$seconds" --save-baseline "rep$3" --noplot headers >/dev/null
}
for i in $(seq 1 "$reps"); do
  echo "==> rep $i of $reps"
  if [ $((i % 2)) -eq 1 ]; then
    run old "$old_exe" "$i"
    run plain "$plain_exe" "$i"
    run new "$new_exe" "$i"
  else
    run new "$new_exe" "$i"
    run plain "$plain_exe" "$i"
    run old "$old_exe" "$i"
  fi
done

machine="$(nproc) vCPU, $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)"
python3 - "$work" "$reps" "$out" "$before" "$(git rev-parse --short HEAD)" "$machine" <<'EOF'
import json, statistics, sys
work, reps, out, before, head, machine = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
def reps_of(system, bench):
    return [json.load(open(f"{work}/criterion-{system}/headers/{bench}/rep{i}/estimates.json"))
            ["median"]["point_estimate"] for i in range(1, reps + 1)]
old_none, new_none, new_all = reps_of("old", "send_none"), reps_of("new", "send_none"), reps_of("new", "send_all")
plain_none = reps_of("plain", "send_none")
new_traced, new_json = reps_of("new", "send_traced"), reps_of("new", "send_json")
med = statistics.median
report = {
    "machine": machine,
    "before": before,
    "head": head,
    "unit": "ns per message (criterion median of one rep)",
    "reps": {"before_send_none": old_none, "send_none_without_otel": plain_none,
             "send_none": new_none, "send_traced": new_traced, "send_json": new_json,
             "send_all": new_all},
    "median_ns": {"before_send_none": med(old_none), "send_none_without_otel": med(plain_none),
                  "send_none": med(new_none), "send_traced": med(new_traced),
                  "send_json": med(new_json), "send_all": med(new_all)},
    "ratios": {
        "none": med(new_none) / med(old_none),
        "all": med(new_all) / med(old_none),
        "all_over_none": med(new_all) / med(new_none),
        "none_without_otel": med(plain_none) / med(old_none),
        # Paired per rep (the reps were interleaved): the spread the medians hide.
        "none_per_rep": [n / o for n, o in zip(new_none, old_none)],
        "all_per_rep": [a / o for a, o in zip(new_all, old_none)],
    },
}
json.dump(report, open(out, "w"), indent=2)
r = report["ratios"]
print(f"{machine}\nper-message time, median of {reps} interleaved reps:")
for k, v in report["median_ns"].items():
    print(f"  {k:18} {v:8.1f} ns")
print(f"  none  {r['none']:.3f}  (target <= 1.05)\n  all   {r['all']:.3f}  (target <= 1.15)\n"
      f"  all / none (same build) {r['all_over_none']:.3f}\n"
      f"  none without otel {r['none_without_otel']:.3f}\nwrote {out}")
EOF
