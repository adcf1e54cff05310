#!/usr/bin/env bash
# Builds the browser package: www/pkg/zeroshot.js + zeroshot_bg.wasm (release, simd128).
# After it, www/ is a self-contained static site; any static host serves it (no special headers).
set -euo pipefail
cd "$(dirname "$0")/.."
WASM_BINDGEN_VERSION=0.2.130 # must equal the wasm-bindgen crate in Cargo.lock

rustup target add wasm32-unknown-unknown >/dev/null
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
    echo "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 5 minutes, once)"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
RUSTFLAGS="-C target-feature=+simd128" cargo build --release --lib --locked --target wasm32-unknown-unknown
rm -rf www/pkg
wasm-bindgen --target web --no-typescript --out-dir www/pkg target/wasm32-unknown-unknown/release/zeroshot.wasm
if [ -x node_modules/.bin/wasm-opt ]; then
    node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-mutable-globals www/pkg/zeroshot_bg.wasm -o www/pkg/zeroshot_bg.wasm
fi
ls -l www/pkg/zeroshot_bg.wasm | awk '{printf "www/pkg/zeroshot_bg.wasm: %.1f MB\n", $5 / 1e6}'
