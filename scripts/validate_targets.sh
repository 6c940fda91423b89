#!/usr/bin/env bash
# Checks benchmarks/targets.toml against the results of one suite run
# (benchmarks/results/*.json, written by scripts/benchmark_suite.sh). Prints every target
# with its measured value and PASS/MISS/not measured; exits non-zero naming each miss.
#   scripts/validate_targets.sh [--strict] [--results DIR]
# --strict: a target whose input is missing counts as a miss.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p swarmbus-benchmarks --bin validate-targets
exec "${CARGO_TARGET_DIR:-target}/release/validate-targets" "$@"
