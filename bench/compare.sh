#!/usr/bin/env bash
# The benchmark, one command: zeroshot next to its peers on this machine, in one run.
#   native: the zeroshot CLI next to onnxruntime and transformers (bench/compare_cpu.py)
#   browser: zeroshot.js (each wasm build) next to transformers.js in headless Chromium (bench/compare_web.mjs)
# on five full-size random models, one after another: typeform-shaped DistilBERT (generate.py --full-size),
# then xtremedistil-shaped BERT, roberta-base-shaped RoBERTa, and DeBERTa-v3 xsmall- and base-shaped models
# (generate.py --full-size-family NAME).
# Makes what it needs first: a Python venv (torch, transformers, onnxruntime), the full-size random
# models and their ONNX exports, transformers.js 4.3.2 under target/bench-npm, the release builds.
# Usage: bash bench/compare.sh        (about 30 minutes once everything is built)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q -r tests/fixtures/requirements.txt onnx onnxscript onnxruntime
fi
FAMILIES=(xtremedistil roberta-base deberta-v3-xsmall deberta-v3-base)
MODELS=(tests/fixtures/full-size "${FAMILIES[@]/#/tests/fixtures/full-size-}")
[ -f tests/fixtures/full-size/model.safetensors ] || .venv/bin/python tests/fixtures/generate.py --full-size
for family in "${FAMILIES[@]}"; do
    [ -f "tests/fixtures/full-size-$family/model.safetensors" ] ||
        .venv/bin/python tests/fixtures/generate.py --full-size-family "$family"
done
for model in "${MODELS[@]}"; do
    [ -f "$model-onnx/onnx/model.onnx" ] || .venv/bin/python bench/export_onnx.py --model "$model"
done
if ! [ -d target/bench-npm/node_modules/@huggingface/transformers ]; then
    mkdir -p target/bench-npm
    echo '{"private": true}' >target/bench-npm/package.json
    # Its postinstall would download onnxruntime-node, which the browser bundle does not use.
    (cd target/bench-npm && ONNXRUNTIME_NODE_INSTALL=skip npm install -q --no-audit --no-fund @huggingface/transformers@4.3.2)
fi
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
cargo build --release --locked
bash scripts/build-web.sh >/dev/null
for model in "${MODELS[@]}"; do
    echo "== native, $(basename "$model")"
    .venv/bin/python bench/compare_cpu.py --model "$model"
    echo
done
for model in "${MODELS[@]}"; do
    echo "== browser, $(basename "$model")"
    node bench/compare_web.mjs --model "$model"
    echo
done
