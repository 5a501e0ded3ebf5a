#!/usr/bin/env bash
# Builds the npm package `contextkit` and runs every JavaScript-side test:
# the size budget, the Node test suites (API, events, overlapping calls,
# timers, hostile input, model-based sequences, storages, read cache), the
# READMEs' JavaScript snippets, the session-server example, wasm memory under
# repeated create/drop, FileStorage's lock across processes and against the
# Rust crate's FileStorage (native/examples/file_interop.rs, built with
# cargo), the packed tarball with require/import/tsc, the package in headless
# Chromium through playwright-core (IndexedDB included), tabs of one origin
# sharing an IndexedDBStorage in Chromium, the IndexedDB shared-mode transport
# (wasm/npm/idb-shared.js) against the Redis library and in Chromium, and the
# wasm-side tests with wasm-pack in headless Chrome.
# Exits non-zero on the first failure.
#
# Needs what scripts/install-tools.sh installs (wasm target, wasm-bindgen-cli,
# wasm-pack, chromium + chromedriver, redis-server, js-tests/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

if [ ! -d js-tests/node_modules ] || [ js-tests/package-lock.json -nt js-tests/node_modules/.package-lock.json ]; then
  step "npm ci (js-tests)"
  (cd js-tests && npm ci --no-audit --no-fund --loglevel=error)
fi

step "build the npm package"
scripts/build-npm.sh >/dev/null

step "wasm size"
node js-tests/size/size.mjs

rm -rf js-tests/.tmp

step "Node: API, events, overlapping calls, timers, hostile input, model, storages (IndexedDBStorage over fake-indexeddb), read cache"
node --test js-tests/test/*.test.mjs

# Suites named by file, so a missing one fails the run instead of matching nothing.
step "README snippets: every js/mjs/cjs block of README.md and wasm/npm/README.md, in a fresh Node process"
node --test js-tests/snippets/snippets.test.mjs

step "examples/session-server.mjs against a scripted client"
node --test js-tests/examples/session-server.test.mjs

step "Node: wasm memory after 10,000 managers (with and without free())"
# --no-opt: under --expose-gc, Node 20's optimizing compiler sometimes aborts
# the process in its deoptimizer (V8_Fatal "unreachable code", SIGTRAP) during
# this test; without TurboFan it runs the same allocations reliably.
node --expose-gc --no-opt --test js-tests/memory/*.test.mjs

step "Node: FileStorage survives 50 SIGKILLs of a writing process"
node --test js-tests/crash/*.test.mjs

step "Node: FileStorage's directory lock across processes (refusal, takeover after SIGKILL, racing takeovers)"
node --test js-tests/lock/file-lock.test.mjs

step "one FileStorage for Rust and Node: each opens the other's directory exactly, and their locks exclude each other"
node --test js-tests/interop/file-interop.test.mjs js-tests/interop/earlier-format.test.mjs

step "shared mode over Redis: managers, Node processes, Node with Rust processes, node-redis 5 with 6 on one namespace"
# The Rust side of the cross-language race, built before the clock of the test starts.
cargo build -q -p contextkit --features redis --example shared_worker
node --test js-tests/shared/redis.test.mjs js-tests/shared/node-redis-versions.test.mjs

step "packed tarball: require, import, tsc --strict; runtime exports of each entry point against its declarations (index.d.ts, index.d.mts, browser.d.mts)"
node --test js-tests/packaging/*.test.mjs

step "headless Chromium (playwright-core)"
node --test js-tests/browser/browser.test.mjs

step "headless Chromium: 2 and 4 tabs on one IndexedDBStorage (shared mode), a tab reloaded mid-run, the elected sweeper"
node --test js-tests/browser/tabs.test.mjs

# wasm/npm's ES modules are plain .js files in a package that does not say
# "type": "module"; Node reads them as ESM after a warning, silenced here.
step "IndexedDBShared against the Redis library (redis-server, fake-indexeddb), and its own transport promises"
node --disable-warning=MODULE_TYPELESS_PACKAGE_JSON --test js-tests/idb-shared/differential.test.mjs js-tests/idb-shared/transport.test.mjs

step "IndexedDBShared in headless Chromium: 2 and 4 pages racing on one namespace"
node --test js-tests/idb-shared/chromium.test.mjs

step "wasm-pack test --headless --chrome"
(cd wasm && wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)")

rm -rf js-tests/.tmp
step "all JavaScript tests passed"
