#!/usr/bin/env bash
# Runs every test suite of contextkit, installing what it needs first.
# Usage: ./scripts/test.sh   (the README's test command; .ci/run calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "tools"
./scripts/install-tools.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p contextkit-core -p contextkit-wasm --target wasm32-unknown-unknown -- -D warnings
# The npm package's JavaScript (wasm/npm): formatting and lints, as cargo fmt
# and clippy for Rust (biome, pinned in js-tests; configuration in biome.json).
js-tests/node_modules/.bin/biome check .
# The API docs build without a broken or private link.
RUSTDOCFLAGS="-D warnings" cargo doc -q --workspace --no-deps
# The wasm binding stays a thin layer over the core (wasm/npm/HACKING.md).
node scripts/binding-lines.mjs

step "native tests: unit, doc, conformance on four executors, contention, cancellation, model, linearizability"
cargo test --workspace

step "the core is executor-free and builds for wasm32-unknown-unknown"
if cargo tree -p contextkit-core -e normal --target all | grep -q tokio; then
  echo "contextkit-core depends on tokio:" >&2
  cargo tree -p contextkit-core -e normal --target all -i tokio >&2
  exit 1
fi
cargo build -q -p contextkit-core --target wasm32-unknown-unknown

step "the core's conformance suite as wasm under Node"
wasm-pack test --node core

step "npm package: Node, browser, packaging, memory and size"
./scripts/test-js.sh

step "benchmarks, once each in smoke mode (no timing)"
./scripts/bench-smoke.sh

step "all suites passed"
