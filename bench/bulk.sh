#!/usr/bin/env bash
# Bulk speed of the CLI: survey-length answers (1,000 by default) (bench/survey.py) x 5 labels on the full-size
# model, each text alone (--batch 1) next to texts batched (--batch 64, the default), interleaved,
# on the CPU and, where there is one, the GPU. Prints answers per second and the ratio.
# Needs tests/fixtures/full-size (bash bench/compare.sh makes it, or generate.py --full-size).
# Usage: [ANSWERS=1000] bash bench/bulk.sh [ROUNDS]    (default 2 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
model=tests/fixtures/full-size
[ -f "$model/model.safetensors" ] || { echo "no $model: run .venv/bin/python tests/fixtures/generate.py --full-size" >&2; exit 1; }
cargo build --release --locked -q
answers=$(mktemp)
n=${ANSWERS:-1000}
python3 bench/survey.py "$n" >"$answers"
labels="pricing, onboarding, support, bug report, praise"
backends=${BACKENDS:-cpu}
# run BACKEND BATCH: answers per second for the whole file.
run() {
    local start end
    start=$(date +%s.%N)
    ./target/release/zeroshot --model "$model" --labels "$labels" --backend "$1" --batch "$2" <"$answers" >/dev/null 2>&1
    end=$(date +%s.%N)
    python3 -c "print($n / ($end - $start))"
}
for backend in $backends; do
    for round in $(seq "${1:-2}"); do
        alone=$(run "$backend" 1)
        batched=$(run "$backend" 64)
        printf '%-4s round %d: each text alone %6.1f answers/s, batched %6.1f answers/s: %.2fx\n' \
            "$backend" "$round" "$alone" "$batched" "$(python3 -c "print($batched / $alone)")"
    done
done
