#!/usr/bin/env bash
# Builds the npm package `contextkit` into wasm/pkg/: a size-tuned release
# .wasm, wasm-bindgen glue for Node (CommonJS) and for browsers (ES module),
# wasm-opt -Oz from the npm package `binaryen`, and the hand-written entry
# points and types of wasm/npm/ (see wasm/npm/HACKING.md).
#
# Usage: scripts/build-npm.sh        (prints the path of the package directory last)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '== %s\n' "$*" >&2; }

target_dir=$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')

step "cargo build (wasm32, profile wasm-release)"
# Panic locations name source files; with the registry's directory cut from
# them they take less room in the .wasm. The changed flags get a target
# directory of their own, so other builds keep their cache.
sep=$(printf '\037')
flags=$(printf '%s' "${RUSTFLAGS:-}" | xargs | tr ' ' "$sep")
for registry in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
  if [ -d "$registry" ]; then flags="${flags:+$flags$sep}--remap-path-prefix=$registry="; fi
done
npm_target="$target_dir/npm-wasm"
CARGO_ENCODED_RUSTFLAGS="$flags" cargo build -p contextkit-wasm --target wasm32-unknown-unknown \
  --profile wasm-release --target-dir "$npm_target" >&2
wasm="$npm_target/wasm32-unknown-unknown/wasm-release/contextkit_wasm.wasm"

want=$(cargo pkgid -p wasm-bindgen)
want=${want##*@}
have=$(wasm-bindgen --version 2>/dev/null || true)
if [ "$have" != "wasm-bindgen $want" ]; then
  echo "wasm-bindgen $want is needed (found: ${have:-none}); run scripts/install-tools.sh" >&2
  exit 1
fi

wasm_opt="$root/js-tests/node_modules/.bin/wasm-opt"
if [ ! -x "$wasm_opt" ]; then
  echo "wasm-opt (npm package binaryen) is missing: run (cd js-tests && npm ci)" >&2
  exit 1
fi
esbuild="$root/js-tests/node_modules/.bin/esbuild"
if [ ! -x "$esbuild" ]; then
  echo "esbuild (npm package esbuild) is missing: run (cd js-tests && npm ci)" >&2
  exit 1
fi

pkg="$root/wasm/pkg"
stage="$pkg.tmp"
rm -rf "$stage"
mkdir -p "$stage"

step "wasm-bindgen (nodejs, web)"
for target in nodejs web; do
  dir=$([ "$target" = nodejs ] && echo node || echo web)
  wasm-bindgen --target "$target" --out-dir "$stage/$dir" --no-typescript \
    --remove-name-section --remove-producers-section "$wasm"
done

step "wasm-opt -Oz"
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-reference-types --enable-multivalue --enable-mutable-globals
  # wasm-bindgen modules own their memory, which starts zeroed.
  --zero-filled-memory --converge --strip-target-features
  # Nothing lives in the lowest 1 KB of memory: Rust's stack grows down
  # towards it from 1 MiB, and contextkit's recursion is bounded by the
  # 128-level depth limit. Lets address arithmetic fold into load and store
  # offsets (about 0.6 KB gzipped).
  --low-memory-unused)
# Both glues load the same module: the package ships it once, in node/ (the
# Node glue reads it from its own directory; browser.mjs fetches it there).
if ! cmp -s "$stage/node/contextkit_wasm_bg.wasm" "$stage/web/contextkit_wasm_bg.wasm"; then
  echo "wasm-bindgen made different .wasm files for nodejs and web; browser.mjs needs its own" >&2
  exit 1
fi
"$wasm_opt" -Oz "${features[@]}" --strip-debug --strip-producers \
  "$stage/node/contextkit_wasm_bg.wasm" -o "$stage/node/contextkit_wasm_bg.wasm"
rm "$stage/web/contextkit_wasm_bg.wasm"

step "entry points and types"
src="$root/wasm/npm"
cp "$src"/{package.json,README.md,index.cjs,index.mjs,browser.mjs,file-storage.cjs,file-lock.cjs,redis-backend.cjs} "$stage/"
# The types, as they are: the entry files index.d.ts (require), index.d.mts
# (import) and browser.d.mts re-export common.d.cts, and all but the
# browser's node-only.d.cts too.
cp "$src"/{index.d.ts,index.d.mts,browser.d.mts,common.d.cts,node-only.d.cts} "$stage/"
# The Redis library that RedisBackend loads: the Rust crate's very file.
cp "$root/native/redis/contextkit.lua" "$stage/"
# support.js and storage.js are ES modules; in the package they are .mjs (the
# package is not "type": "module"), and esbuild writes the CommonJS copies.
for name in support storage; do
  cp "$src/$name.js" "$stage/$name.mjs"
  "$esbuild" "$src/$name.js" --format=cjs --platform=neutral --banner:js="'use strict';" --log-level=warning \
    --outfile="$stage/$name.cjs"
done
# idb-tabs.js (IndexedDBStorage in shared mode) imports idb-shared.js, which
# imports the other idb-shared-*.js: esbuild bundles the four into one file
# per module format, idb-tabs.mjs for browser.mjs and idb-tabs.cjs for
# index.cjs (Node has no IndexedDB of its own, but a polyfill serves).
for ext in mjs cjs; do
  "$esbuild" "$src/idb-tabs.js" --bundle --platform=neutral --format="$([ "$ext" = mjs ] && echo esm || echo cjs)" \
    --log-level=warning --outfile="$stage/idb-tabs.$ext"
done
printf '{ "type": "module" }\n' > "$stage/web/package.json"
# The tools' own .gitignore files are not part of the package.
rm -f "$stage"/node/.gitignore "$stage"/web/.gitignore

rm -rf "$pkg"
mv "$stage" "$pkg"
echo "$pkg"
