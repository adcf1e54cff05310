#!/usr/bin/env python3
"""Native CPU benchmark: one text x 5 labels on the full-size random model, zeroshot's CLI next to
onnxruntime (the same model exported to ONNX) and transformers' pipeline, at 1 and 2 threads,
timed in interleaved rounds in one run. Ratios are engine / zeroshot at the same thread count.

    bash bench/compare.sh                      (builds and exports what this needs, then runs it)
    .venv/bin/python bench/compare_cpu.py [--model tests/fixtures/full-size] [--onnx MODEL-onnx] [--rounds 4] [--runs 10]

--model: any full-size folder (generate.py --full-size, or --full-size-family NAME: xtremedistil, roberta-base,
deberta-v3-xsmall, deberta-v3-base);
--onnx defaults to its bench/export_onnx.py export, the folder's name with -onnx appended.

--explain: instead, one explanation (each word's effect on each label: a 25-word answer x 5 labels, 130 pairs)
next to one classification of the same answer, the CLI at 1 and 2 threads, interleaved: ms per text and the
ratio of the two.

zeroshot is timed as a process reading N texts from stdin: the per-text time is
(T(N+1 texts) - T(1 text)) / N, which leaves out loading (reported separately). It includes
tokenization; onnxruntime's figure is its b5 forward alone. The CLI runs with --batch 1, each text
alone: batched, its N identical texts would share one forward (pairs with the same ids run once).
"""

import argparse
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

ROOT = Path(__file__).resolve().parent.parent
TEXT = "I loved the onboarding, but the pricing page is confusing."
LABELS = ["pricing", "onboarding", "support", "bug report", "praise"]
# --explain: a 25-word survey answer (130 pairs with 5 labels, where a classification has 5).
EXPLAIN_TEXT = ("The parcel arrived two weeks late, the box was crushed, and support never answered my emails, "
                "so I want a refund for the broken blender.")
THREADS = (1, 2)


def median_ms(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def onnx_runner(onnx_dir, threads):
    import onnxruntime as ort

    tok = AutoTokenizer.from_pretrained(onnx_dir)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(onnx_dir / "onnx/model.onnx"), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]  # token_type_ids too where the export has it (BERT)
    e = tok([TEXT] * 5, [f"This example is {label}." for label in LABELS], padding=True, truncation="only_first",
            return_tensors="np", return_token_type_ids="token_type_ids" in names)
    feeds = {name: e[name].astype(np.int64) for name in names}
    return lambda: sess.run(None, feeds)


def torch_runner(model_dir, threads):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    clf = pipeline("zero-shot-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(model_dir),
                   device="cpu")

    def run():
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return clf(TEXT, candidate_labels=LABELS)

    return run


def run_cli(binary, model_dir, threads, n_texts, text=TEXT, extra=()):
    t = time.perf_counter()
    out = subprocess.run([binary, "--model", str(model_dir), "--labels", ",".join(LABELS), "--backend", "cpu",
                          "--threads", str(threads), "--batch", "1", *extra], input=(text + "\n") * n_texts,
                         capture_output=True, text=True, check=True)
    return (time.perf_counter() - t) * 1000, out.stdout.splitlines()[0]


def cli_per_text(binary, model_dir, threads, runs, text=TEXT, extra=()):
    # Many texts per process, so that process start-up noise is small next to them.
    n = 4 * runs
    one = statistics.median(run_cli(binary, model_dir, threads, 1, text, extra)[0] for _ in range(3))
    many = run_cli(binary, model_dir, threads, n + 1, text, extra)[0]
    return (many - one) / n, one


def explain_mode(args):
    """One explanation next to one classification of EXPLAIN_TEXT, per thread count, interleaved."""
    times = {(kind, t): [] for t in THREADS for kind in ("classify", "explain")}
    for _ in range(args.rounds):
        for t in THREADS:
            times[("classify", t)].append(cli_per_text(args.zeroshot, args.model, t, args.runs, EXPLAIN_TEXT)[0])
            times[("explain", t)].append(cli_per_text(args.zeroshot, args.model, t, 1, EXPLAIN_TEXT, ["--explain"])[0])
    words = len(EXPLAIN_TEXT.split())
    print(f"a {words}-word answer x {len(LABELS)} labels ({words * len(LABELS) + len(LABELS)} pairs to explain it), "
          f"{args.model.name} model, {cpu_model()}, {os.cpu_count()} cores")
    print(f"{args.rounds} interleaved rounds; ms per text (median of rounds, range); ratio = explain / classify\n")
    print(f"{'zeroshot CLI':<30}{'threads':>8}{'ms/text':>10}{'range':>16}{'ratio':>9}")
    for (kind, t), xs in times.items():
        ratio = statistics.median(xs) / statistics.median(times[("classify", t)])
        span = f"{min(xs):.1f}-{max(xs):.1f}"
        print(f"{kind:<30}{t:>8}{statistics.median(xs):>10.1f}{span:>16}{ratio:>8.2f}x")


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ROOT / "tests/fixtures/full-size")
    ap.add_argument("--onnx", type=Path, help="default: the --model folder's name with -onnx appended")
    ap.add_argument("--zeroshot", type=Path, default=ROOT / "target/release/zeroshot")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--explain", action="store_true", help="time one explanation next to one classification")
    args = ap.parse_args()
    if args.explain:
        return explain_mode(args)
    args.onnx = args.onnx or args.model.with_name(args.model.name + "-onnx")
    onnx = {t: onnx_runner(args.onnx, t) for t in THREADS}
    pt = torch_runner(args.model, 1)
    times = {(name, t): [] for name in ("zeroshot", "onnxruntime") for t in THREADS} | {("transformers", 1): []}
    loads = []
    for _ in range(args.rounds):  # interleaved, so drifting clocks and noise hit every engine alike
        for t in THREADS:
            per_text, one = cli_per_text(args.zeroshot, args.model, t, args.runs)
            times[("zeroshot", t)].append(per_text)
            loads.append(one - per_text)
            times[("onnxruntime", t)].append(median_ms(onnx[t], args.runs))
        times[("transformers", 1)].append(median_ms(pt, args.runs))
    print(f"one text x {len(LABELS)} labels, {args.model.name} model, {cpu_model()}, {os.cpu_count()} cores")
    print(f"{args.rounds} interleaved rounds; ms per text (median of rounds, range); ratio = engine / zeroshot\n")
    print(f"{'engine':<30}{'threads':>8}{'ms/text':>10}{'range':>16}{'ratio':>9}")
    for (name, t), xs in times.items():
        ours = statistics.median(times[("zeroshot", t)])
        label = {"zeroshot": "zeroshot CLI (cpu)", "onnxruntime": "onnxruntime (b5 forward)",
                 "transformers": "transformers pipeline"}[name]
        span = f"{min(xs):.1f}-{max(xs):.1f}"
        print(f"{label:<30}{t:>8}{statistics.median(xs):>10.1f}{span:>16}{statistics.median(xs) / ours:>8.2f}x")
    print(f"\nzeroshot load per process: {statistics.median(loads):.0f} ms")
    print("zeroshot:", run_cli(args.zeroshot, args.model, 1, 1)[1])
    print("torch:   ", {k: pt()[k] for k in ("labels", "scores")})


if __name__ == "__main__":
    main()
