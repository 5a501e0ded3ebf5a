#!/usr/bin/env bash
# Runs every benchmark once in smoke mode: tiny stores, one iteration each, no
# timing claims. It fails if any benchmark fails; the numbers it prints mean
# nothing. The full runs are in BENCHMARKS.md.
# Usage: scripts/bench-smoke.sh   (scripts/test.sh runs it after the JS tests)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CONTEXTKIT_BENCH_SMOKE=1

step() { printf '== %s\n' "$*"; }

# Criterion runs each benchmark once when the binary is run as a test
# (cargo test), which reuses the debug build of the test suites.
step "native throughput benchmarks, once each (criterion test mode)"
cargo test -q -p contextkit --bench throughput
step "shared-mode benchmark over a local redis-server, briefly"
cargo test -q -p contextkit --features redis --bench shared
step "native memory benchmark (2,000 contexts)"
cargo test -q -p contextkit --bench memory

# CONTEXTKIT_PKG may name another build of the package (the benchmarks read it too).
if [ -z "${CONTEXTKIT_PKG:-}" ] && [ ! -f wasm/pkg/index.cjs ]; then
  step "building the npm package (scripts/build-npm.sh)"
  if [ ! -x js-tests/node_modules/.bin/wasm-opt ] || [ ! -x js-tests/node_modules/.bin/esbuild ]; then
    (cd js-tests && npm ci --no-audit --no-fund --loglevel=error)
  fi
  ./scripts/build-npm.sh >/dev/null
fi

if [ ! -d js-bench/node_modules ] || [ js-bench/package-lock.json -nt js-bench/node_modules/.package-lock.json ]; then
  step "installing js-bench npm packages"
  (cd js-bench && npm ci --no-audit --no-fund --loglevel=error)
fi

step "Node benchmark, a few iterations each"
node js-bench/bench.mjs --smoke
step "Node benchmark over a local redis-server (contextkit, keyv, node-redis), a few calls each"
node js-bench/redis.mjs --smoke
step "Node memory benchmark (2,000 contexts)"
node --expose-gc js-bench/memory.mjs --smoke
step "IndexedDB in headless Chromium: shared mode, owned mode, memory, raw IndexedDB, a few calls each"
if [ ! -d js-tests/node_modules/playwright-core ]; then
  (cd js-tests && npm ci --no-audit --no-fund --loglevel=error)
fi
node js-bench/idb.mjs --smoke
step "benchmark smoke run passed"
