#!/usr/bin/env bash
# Builds the browser package: two wasm builds of the same crate, each with its wasm-bindgen glue,
#   www/pkg/relaxed/  relaxed SIMD (fused multiply-add) + threads (rayon on Web Workers, one shared
#                     memory): browsers with relaxed SIMD (Chrome and Edge 114+). Threads run where
#                     the page is cross-origin isolated (www/sw.js makes it so on any static host);
#                     elsewhere this build runs on one thread.
#   www/pkg/simd128/  simd128, one thread: Safari, Firefox and older browsers.
# The worker validates a tiny relaxed-SIMD module at load and imports the build the browser can
# run. After this, www/ is a self-contained static site; any static host serves it (no special headers),
# with the demo models in www/models/ and the service worker's shell list in www/pkg/shell.js.
set -euo pipefail
cd "$(dirname "$0")/.."
WASM_BINDGEN_VERSION=0.2.130 # must equal the wasm-bindgen crate in Cargo.lock

rustup target add wasm32-unknown-unknown >/dev/null
source scripts/wasm-threads.sh # NIGHTLY, THREADS_RUSTFLAGS, THREADS_CARGO_ARGS
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
    echo "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 5 minutes, once)"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
rm -rf www/pkg

# build NAME TOOLCHAIN CARGO_ARGS RUSTFLAGS WASM_OPT_FLAGS: one release build into www/pkg/NAME/.
# Each build has its own target dir, so rebuilding one leaves the other's cache intact.
build() {
    local name=$1 toolchain=$2 cargo_args=$3 rustflags=$4 opt_flags=$5
    # shellcheck disable=SC2086 # the argument lists are meant to split
    RUSTFLAGS="$rustflags" cargo "+$toolchain" build --release --lib --locked $cargo_args \
        --target wasm32-unknown-unknown --target-dir "target/wasm-$name"
    wasm-bindgen --target web --no-typescript --out-dir "www/pkg/$name" \
        "target/wasm-$name/wasm32-unknown-unknown/release/zeroshot.wasm"
    if [ -x node_modules/.bin/wasm-opt ]; then
        # shellcheck disable=SC2086
        node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
            --enable-sign-ext --enable-mutable-globals $opt_flags \
            "www/pkg/$name/zeroshot_bg.wasm" -o "www/pkg/$name/zeroshot_bg.wasm"
    fi
    ls -l "www/pkg/$name/zeroshot_bg.wasm" | awk -v n="$name" '{printf "www/pkg/%s/zeroshot_bg.wasm: %.1f MB\n", n, $5 / 1e6}'
}
build simd128 stable "" "-C target-feature=+simd128" ""
build relaxed "$NIGHTLY" "$THREADS_CARGO_ARGS" "$THREADS_RUSTFLAGS" "--enable-relaxed-simd --enable-threads"

# Tiny demo models (random weights, real vocabulary): the built site works with no network.
mkdir -p www/models
for m in typeform-layout typeform-layout-int8 tokenizer-json f16-relu bert-vocab roberta-bpe roberta-json xlmr-unigram deberta-v3; do
    rm -rf "www/models/$m" && cp -r "tests/fixtures/$m" "www/models/$m"
done

# The service worker's app shell (www/sw.js imports it): every file the page runs on, and a version
# that changes with any byte of them, so a deploy is one new shell and never a mix of two.
(
    cd www
    files=$(printf '%s\n' index.html app.js why.js style.css zeroshot.js zeroshot.worker.js; find pkg -type f ! -name shell.js | sort)
    version=$(echo "$files" | xargs cat | sha256sum | cut -c1-16)
    list=$(echo "$files" | sed 's/.*/"&"/' | paste -sd, -)
    printf 'self.SHELL = { version: "%s", files: [%s] };\n' "$version" "$list" >pkg/shell.js
    echo "www/pkg/shell.js: shell $version, $(echo "$files" | wc -l) files"
)
