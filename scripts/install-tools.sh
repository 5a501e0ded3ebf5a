#!/usr/bin/env bash
# Installs what the test suites need, skipping whatever is already present:
# the wasm target, wasm-bindgen-cli at the version in Cargo.lock, wasm-pack,
# Chromium with its driver, redis-server, and the npm packages of js-tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '== %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# cargo pkgid reads the version from Cargo.lock alone: no network, no build.
want=$(cargo pkgid -p wasm-bindgen)
want=${want##*@}
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $want" ]; then
  step "installing wasm-bindgen-cli $want"
  # Not --locked: the CLI's own lockfile pins dependency versions that a
  # registry mirror may not carry; its semver ranges resolve anywhere.
  cargo install wasm-bindgen-cli --version "$want" --force
fi

if ! command -v wasm-pack >/dev/null; then
  step "installing wasm-pack"
  cargo install wasm-pack
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  step "installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  step "installing redis-server (the shared-mode tests start their own servers)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
  # The tests start their own servers on free ports; the distribution's
  # service is not used.
  (service redis-server stop || true) >/dev/null 2>&1
fi

if [ -f js-tests/package-lock.json ]; then
  stamp=js-tests/node_modules/.package-lock.json
  if [ ! -f "$stamp" ] || [ js-tests/package-lock.json -nt "$stamp" ]; then
    step "installing js-tests npm packages"
    (cd js-tests && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
