#!/usr/bin/env bash
# The public API of crate `swarmbus`, as `cargo public-api` lists it (all features, without
# blanket and auto-trait impls), checked against backend/public-api.txt. A change to the
# public surface shows in review and is a decision: rerun with --bless to record it.
#
#   scripts/public_api.sh           # check (exit 1 with a diff when the surface changed)
#   scripts/public_api.sh --bless   # record the current surface
#
# rustdoc JSON comes from the stable toolchain (RUSTC_BOOTSTRAP=1 unlocks the unstable
# output format); cargo-public-api 0.52.0 reads its format (57, rustc 1.95). A newer
# toolchain needs a cargo-public-api whose rustdoc-types matches its format.
set -euo pipefail
cd "$(dirname "$0")/.."

PUBLIC_API_VERSION=0.52.0
recorded=backend/public-api.txt
target="${CARGO_TARGET_DIR:-target}/public-api"

if ! cargo public-api --version 2>/dev/null | grep -q "$PUBLIC_API_VERSION"; then
  echo "==> installing cargo-public-api $PUBLIC_API_VERSION (about 3 min on 2 cores)"
  cargo install -q cargo-public-api --version "$PUBLIC_API_VERSION" --locked
fi

RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target" \
  cargo rustdoc -q -p swarmbus --lib --all-features -- -Z unstable-options --output-format json
current=$(mktemp)
trap 'rm -f "$current"' EXIT
cargo public-api --rustdoc-json "$target/doc/swarmbus.json" -ss --color never >"$current"

if [ "${1:-}" = "--bless" ]; then
  cp "$current" "$recorded"
  echo "recorded $(wc -l <"$recorded") lines in $recorded"
  exit 0
fi
if ! diff -u "$recorded" "$current"; then
  echo "The public API of swarmbus changed (diff above: - recorded, + now)." >&2
  echo "If the change is meant, record it with scripts/public_api.sh --bless and say why in CHANGELOG.md." >&2
  exit 1
fi
echo "public API unchanged ($(wc -l <"$recorded") lines)"
