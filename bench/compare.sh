#!/usr/bin/env bash
# The benchmark, one command: zeroshot next to its peers on this machine, in one run.
#   native: the zeroshot CLI next to onnxruntime and transformers (bench/compare_cpu.py)
#   browser: zeroshot.js (each wasm build) next to transformers.js in headless Chromium (bench/compare_web.mjs)
# Makes what it needs first: a Python venv (torch, transformers, onnxruntime), the full-size random
# model and its ONNX export, transformers.js 4.3.2 under target/bench-npm, the release builds.
# Usage: bash bench/compare.sh        (about 10 minutes once everything is built)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q -r tests/fixtures/requirements.txt onnx onnxscript onnxruntime
fi
[ -f tests/fixtures/full-size/model.safetensors ] || .venv/bin/python tests/fixtures/generate.py --full-size
[ -f tests/fixtures/full-size-onnx/onnx/model.onnx ] || .venv/bin/python bench/export_onnx.py
if ! [ -d target/bench-npm/node_modules/@huggingface/transformers ]; then
    mkdir -p target/bench-npm
    echo '{"private": true}' >target/bench-npm/package.json
    # Its postinstall would download onnxruntime-node, which the browser bundle does not use.
    (cd target/bench-npm && ONNXRUNTIME_NODE_INSTALL=skip npm install -q --no-audit --no-fund @huggingface/transformers@4.3.2)
fi
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
cargo build --release --locked
bash scripts/build-web.sh >/dev/null
echo "== native"
.venv/bin/python bench/compare_cpu.py
echo
echo "== browser"
node bench/compare_web.mjs
