#!/usr/bin/env bash
# Runs every test of zeroshot, installing what a fresh machine lacks first.
# Usage: bash scripts/test.sh        (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "toolchain: rustfmt, clippy, wasm32 target"
rustup component add rustfmt clippy >/dev/null
rustup target add wasm32-unknown-unknown >/dev/null

step "Vulkan software GPU (lavapipe) for the WGSL kernel tests"
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
    else
        echo "not root: cannot install mesa-vulkan-drivers; GPU tests will skip (ZEROSHOT_REQUIRE_GPU=1 fails them)"
    fi
fi
# Mesa's window-system probing wants a runtime dir; we render nothing.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (native, all targets)"
cargo clippy --all-targets --locked -- -D warnings

step "cargo clippy (wasm32 library: the simd128 build, and the relaxed SIMD + threads build on the pinned nightly)"
cargo clippy --lib --target wasm32-unknown-unknown --locked -- -D warnings
source scripts/wasm-threads.sh
# shellcheck disable=SC2086 # the argument list is meant to split
RUSTFLAGS="$THREADS_RUSTFLAGS" cargo "+$NIGHTLY" clippy --lib --target wasm32-unknown-unknown --locked \
    $THREADS_CARGO_ARGS --target-dir target/wasm-relaxed -- -D warnings

step "cargo test"
cargo test --locked

step "fuzzing: each target 60 s from the committed corpus (cargo-fuzz, pinned nightly, GPU feature off)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
for target in checkpoint classify; do
    # New finds go to a scratch folder: the committed corpus is only read.
    scratch=$(mktemp -d)
    if ! cargo "+$NIGHTLY" fuzz run -O "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time=60 -max_len=16384 -print_final_stats=1 >"$scratch.log" 2>&1; then
        tail -n 60 "$scratch.log"
        echo "fuzz target $target failed (the input is in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$scratch.log"
done

step "browser: Chromium, playwright-core, the wasm build"
if ! [ -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "not root: install Debian's chromium package for the browser tests" >&2
        exit 1
    fi
fi
npm ci --no-audit --no-fund
bash scripts/build-web.sh

step "browser tests (headless Chromium: wasm CPU and WebGPU on SwiftShader)"
# A test that stalls fails after 4 minutes with its name (the soak sets its own limit), so CI reports it.
node --test --test-timeout=240000 tests/browser/
