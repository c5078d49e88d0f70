#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (Python and Node
# SDKs, Debian's chromium), builds, runs the Rust tests, then the SDK compatibility tests
# against a live `sluice serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

echo "== build"
cargo build --workspace --bins

echo "== rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== sdk compatibility tests"
SLUICE_BIN="$PWD/target/debug/sluice" tests/compat/.venv/bin/python -m pytest tests/compat -q
