#!/usr/bin/env bash
# Checks benchmarks/targets.toml against the results of one suite run
# (benchmarks/results/*.json, written by scripts/benchmark_suite.sh). Prints every target
# with its measured value and PASS/MISS/not measured; exits non-zero naming each miss.
#   scripts/validate_targets.sh [--strict] [--results DIR]
#   scripts/validate_targets.sh --results DIR --against benchmarks/results [--tolerance PCT] [--regressions-only]
# --strict: a target whose input is missing counts as a miss.
# --against REF: also compares every same-run ratio (each target with `over`, each
#   load-*-optimized ÷ load-*-baseline pair) of DIR with REF's, prints a table and exits
#   non-zero when one moved the wrong way by more than the tolerance. For example:
#     scripts/benchmark_suite.sh --no-docs --out /tmp/new
#     scripts/validate_targets.sh --results /tmp/new --against benchmarks/results
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p swarmbus-benchmarks --bin validate-targets
exec "${CARGO_TARGET_DIR:-target}/release/validate-targets" "$@"
