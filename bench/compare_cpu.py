#!/usr/bin/env python3
"""CPU benchmark: one text x 5 labels on a typeform-shaped model, zeroshot's CLI next to
transformers' pipeline (PyTorch) and onnxruntime, one thread each, same inputs.

    cargo build --release
    .venv/bin/pip install -r tests/fixtures/requirements.txt onnx onnxscript onnxruntime
    .venv/bin/python tests/fixtures/generate.py --full-size
    .venv/bin/python bench/compare_cpu.py [--model tests/fixtures/full-size] [--runs 20]

zeroshot is timed as a process reading N texts from stdin: the per-text time is
(T(N+1 texts) - T(1 text)) / N, which leaves out loading; loading is reported separately.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, DistilBertForSequenceClassification, pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEXT = ("I ordered the blue jacket two weeks ago and it still has not arrived; the tracking page "
        "has said 'in transit' for nine days and nobody answers my emails.")
LABELS = ["shipping delay", "refund request", "product quality", "praise", "billing"]


def median_ms(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_torch(model_dir, runs):
    torch.set_num_threads(1)
    model = DistilBertForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    clf = pipeline("zero-shot-classification", model=model, tokenizer=tok, device="cpu")
    with torch.inference_mode():
        return median_ms(lambda: clf(TEXT, candidate_labels=LABELS), runs), clf(TEXT, candidate_labels=LABELS)


def bench_onnx(model_dir, runs):
    import onnxruntime as ort

    model = DistilBertForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    enc = tok([TEXT] * 5, [f"This example is {l}." for l in LABELS], padding=True, return_tensors="pt")
    torch.onnx.export(
        model, (enc["input_ids"], enc["attention_mask"]), str(path), input_names=["input_ids", "attention_mask"],
        output_names=["logits"], dynamic_axes={"input_ids": {0: "b", 1: "l"}, "attention_mask": {0: "b", 1: "l"}},
        dynamo=False,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    entail = model.config.label2id.get("ENTAILMENT", 0)

    def run():
        e = tok([TEXT] * 5, [f"This example is {l}." for l in LABELS], padding=True, truncation="only_first",
                return_tensors="np")
        logits = sess.run(None, {"input_ids": e["input_ids"].astype(np.int64),
                                 "attention_mask": e["attention_mask"].astype(np.int64)})[0]
        x = logits[:, entail]
        return np.exp(x - x.max()) / np.exp(x - x.max()).sum()

    return median_ms(run, runs)


def run_cli(binary, model_dir, n_texts):
    t = time.perf_counter()
    out = subprocess.run([binary, "--model", str(model_dir), "--labels", ",".join(LABELS), "--backend", "cpu",
                          "--threads", "1"], input=(TEXT + "\n") * n_texts, capture_output=True, text=True, check=True)
    return (time.perf_counter() - t) * 1000, out.stdout.splitlines()[0]


def bench_cli(binary, model_dir, runs):
    one = statistics.median(run_cli(binary, model_dir, 1)[0] for _ in range(3))
    many = statistics.median(run_cli(binary, model_dir, runs + 1)[0] for _ in range(3))
    per_text = (many - one) / runs
    return per_text, one - per_text, run_cli(binary, model_dir, 1)[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ROOT / "tests/fixtures/full-size")
    ap.add_argument("--zeroshot", type=Path, default=ROOT / "target/release/zeroshot")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    ours, load, ours_out = bench_cli(args.zeroshot, args.model, args.runs)
    torch_ms, torch_out = bench_torch(args.model, args.runs)
    onnx_ms = bench_onnx(args.model, args.runs)
    print(f"one text x {len(LABELS)} labels, 1 thread, median of {args.runs}")
    print(f"{'runtime':<28}{'ms/text':>10}{'vs zeroshot':>14}")
    print(f"{'zeroshot CLI (cpu)':<28}{ours:>10.1f}{1.0:>13.2f}x   (+ {load:.0f} ms load per process)")
    print(f"{'transformers pipeline':<28}{torch_ms:>10.1f}{torch_ms / ours:>13.2f}x")
    print(f"{'onnxruntime':<28}{onnx_ms:>10.1f}{onnx_ms / ours:>13.2f}x")
    print("zeroshot:", ours_out)
    print("torch:   ", {k: torch_out[k] for k in ("labels", "scores")})


if __name__ == "__main__":
    main()
