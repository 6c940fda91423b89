#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing, then runs the
# whole suite (format, lints, unit, integration, doc tests, smoke runs).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo test"
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR
cargo test --workspace --all-targets
cargo test --workspace --doc

echo "==> loom models of the mailbox (--cfg swarmbus_loom, own target directory)"
RUSTFLAGS="--cfg swarmbus_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR="$CARGO_TARGET_DIR/loom" \
  cargo test -q -p swarmbus --lib loom

echo "==> example: agent hub"
cargo run -q -p swarmbus --example agent_hub >/dev/null

if [ -x scripts/smoke.sh ]; then
  echo "==> smoke"
  scripts/smoke.sh
fi
