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

echo "==> MSRV: the toolchain that builds here is the rust-version Cargo.toml claims"
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
rustc_version=$(rustc --version | awk '{print $2}')
if [[ "$rustc_version" != "$msrv" && "$rustc_version" != "$msrv".* ]]; then
  if rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
    echo "    rustc is $rustc_version: checking with the $msrv toolchain"
    cargo "+$msrv" check -q -p swarmbus --all-features --lib
  else
    echo "rust-version is $msrv but rustc is $rustc_version and no $msrv toolchain is installed:" >&2
    echo "install it (rustup toolchain install $msrv) or change the claim in Cargo.toml" >&2
    exit 1
  fi
fi

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo clippy of every feature set an embedder can pick (cli is the default)"
for features in "" nats http http,nats otel cli,otel; do
  echo "    --no-default-features --features '$features'"
  cargo clippy -q -p swarmbus --all-targets --no-default-features --features "$features" -- -D warnings
done
echo "    swarmbus-benchmarks --features otel (the header-cost bench's traced cases)"
cargo clippy -q -p swarmbus-benchmarks --all-targets --features otel -- -D warnings

echo "==> cargo test"
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR
cargo test --workspace --all-targets
cargo test --workspace --doc

echo "==> OpenTelemetry trace context (--features otel)"
cargo test -q -p swarmbus --features otel --lib --test otel --test conversations

echo "==> tests of the bus alone (--no-default-features)"
cargo test -q -p swarmbus --no-default-features

echo "==> docs (-D warnings) and the recorded public API"
RUSTDOCFLAGS="-D warnings" cargo doc -q -p swarmbus --no-deps --all-features
scripts/public_api.sh

echo "==> loom models of the mailbox (--cfg swarmbus_loom, own target directory)"
RUSTFLAGS="--cfg swarmbus_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR="$CARGO_TARGET_DIR/loom" \
  cargo test -q -p swarmbus --lib loom

echo "==> example: agent hub"
cargo run -q -p swarmbus --example agent_hub >/dev/null

if [ -x scripts/smoke.sh ]; then
  echo "==> smoke"
  scripts/smoke.sh
fi
