#!/usr/bin/env bash
# Builds the web package and serves www/ on http://localhost:8080 (PORT=... to change).
set -euo pipefail
cd "$(dirname "$0")/.."
# wasm-opt (npm's binaryen) shrinks the wasm when npm is there; the build works without it.
if command -v npm >/dev/null && ! [ -d node_modules/binaryen ]; then npm ci --no-audit --no-fund || true; fi
bash scripts/build-web.sh # www/ with the demo models in www/models/
PORT="${PORT:-8080}"
echo "zeroshot: serving www/ at http://localhost:$PORT/"
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory www
