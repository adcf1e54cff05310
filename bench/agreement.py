#!/usr/bin/env python3
"""How far f16 and int8 checkpoints (zeroshot convert) move zeroshot's answers from fp32, in one command.

    .venv/bin/python bench/agreement.py [--models full-size spread-typeform spread-relu] [--threads N]
                                        [--limit N] [--binary target/release/zeroshot]

For each model: `zeroshot convert --to f16` and `--to int8` into target/agreement/<model>-<fmt>/,
then the CLI (--backend cpu) over bench/agreement_corpus.jsonl with the fp32, f16 and int8
folders, single-label and multi-label, one call per label set and mode, the formats interleaved
so that machine noise falls on all three alike. Prints, per model x format x mode, top-1
agreement with fp32 and the largest and mean |score difference| over every (text, label), labels
matched by name, against the targets below; the size of each model.safetensors; the CLI's wall
time per format and its ratio to fp32. Exits 1 when a target is missed.

Models: full-size is tests/fixtures/full-size (tests/fixtures/generate.py --full-size); the
spread-* ones are bench/spread_models.py's, written on first use. A folder path works too.
The full-size model over the whole corpus takes long on a small machine (6 passes of 630 texts
x 5 labels, many at 512 tokens: about 40 minutes at 2 threads); --limit N keeps the first N texts
of each label set (--limit 8: 48 texts, 3 minutes).
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "agreement"
sys.dont_write_bytecode = True  # no __pycache__ next to the imported scripts
sys.path.insert(0, str(ROOT / "bench"))
import spread_models  # noqa: E402

FORMATS = ("fp32", "f16", "int8")
MODES = ("single", "multi")
FIXED_MODELS = {"full-size": ROOT / "tests" / "fixtures" / "full-size"}

# The targets: f16 must be all but exact; int8 may flip near ties and move scores a little.
TARGETS = {
    "f16": dict(top1=99.9, max=2e-3),
    "int8": dict(top1=99.0, mean=1e-2),
}

# A top-1 change counts as a "flip" in its own column when fp32's top-1 led by at least this much
# (below it, the order of near-tied labels is a coin toss for any rounding).
CLEAR_MARGIN = 0.01


def die(message):
    sys.exit(f"agreement.py: {message}")


def check_convert(binary):
    """Checks the binary has the convert command; one without it would classify `convert` as a text."""
    if not binary.is_file():
        die(f"{binary} not found: build it with `cargo build --release`")
    probe = subprocess.run([str(binary), "convert", "--help"], capture_output=True, text=True)
    if probe.returncode != 0 or "--to" not in probe.stdout:
        die(f"{binary} has no `convert --to f16|int8` command: rebuild it (cargo build --release) "
            "from a tree that has it")


def model_folder(name):
    """A model name (full-size, spread-*) or folder path -> its fp32 folder, writing spread models when missing."""
    if name in FIXED_MODELS:
        folder = FIXED_MODELS[name]
        if not (folder / "model.safetensors").is_file():
            die(f"no {folder}: run .venv/bin/python tests/fixtures/generate.py --full-size")
        return folder
    if name in spread_models.SPREAD_MODELS:
        folder = OUT / name
        if not (folder / "model.safetensors").is_file():
            spread_models.build(name, OUT)
        return folder
    if (Path(name) / "model.safetensors").is_file():
        return Path(name)
    die(f"unknown model {name!r}: one of {sorted(FIXED_MODELS) + sorted(spread_models.SPREAD_MODELS)} or a folder")


def convert(binary, src, fmt, dst):
    """Runs zeroshot convert into a fresh dst, so that nothing a previous run wrote is left in it."""
    shutil.rmtree(dst, ignore_errors=True)
    done = subprocess.run([str(binary), "convert", "--to", fmt, str(src), str(dst)], capture_output=True, text=True)
    if done.returncode != 0 or not (dst / "model.safetensors").is_file():
        die(f"convert --to {fmt} {src} failed (exit {done.returncode}):\n{done.stderr}")


def run_cli(binary, folder, labels, texts, multi, threads):
    """One CLI call over texts -> ([{label: score}], truncated flags, wall seconds)."""
    cmd = [str(binary), "--model", str(folder), "--labels", ", ".join(labels), "--backend", "cpu"]
    cmd += ["--multi-label"] if multi else []
    cmd += ["--threads", str(threads)] if threads else []
    start = time.perf_counter()
    done = subprocess.run(cmd, input="".join(t + "\n" for t in texts), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        die(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr}")
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    if [a["sequence"] for a in answers] != texts:
        die(f"{folder}: the CLI's answers do not line up with the {len(texts)} texts sent")
    return [dict(zip(a["labels"], a["scores"])) for a in answers], [a["truncated"] for a in answers], seconds


def label_sets(corpus, limit):
    """Texts grouped by label set (one CLI call each), in corpus order, the first `limit` of each."""
    groups = defaultdict(list)
    for record in corpus:
        groups[tuple(record["labels"])].append(record["text"])
    return {labels: texts[:limit] if limit else texts for labels, texts in groups.items()}


def score_model(binary, folders, groups, threads):
    """Every format x mode over every label set, formats interleaved (the order rotates each call).

    Returns scores[fmt][mode] (one {label: score} per text), truncated flags (per format) and seconds per format."""
    scores = {fmt: {mode: [] for mode in MODES} for fmt in FORMATS}
    truncated = {fmt: [] for fmt in FORMATS}
    seconds = dict.fromkeys(FORMATS, 0.0)
    turn = 0
    for labels, texts in groups.items():
        for mode in MODES:
            for fmt in FORMATS[turn % 3:] + FORMATS[:turn % 3]:
                answers, flags, took = run_cli(binary, folders[fmt], labels, texts, mode == "multi", threads)
                scores[fmt][mode].extend(answers)
                truncated[fmt].extend(flags if mode == "single" else [])
                seconds[fmt] += took
            turn += 1
    return scores, truncated, seconds


def compare(reference, other):
    """Top-1 agreement (%), clear flips, max and mean |score difference| of other against reference."""
    agree = flips = 0
    diffs = []
    for ref, oth in zip(reference, other):
        ranked = sorted(ref.values(), reverse=True)
        top_ref, top_oth = max(ref, key=ref.get), max(oth, key=oth.get)
        agree += top_ref == top_oth
        flips += top_ref != top_oth and ranked[0] - ranked[1] >= CLEAR_MARGIN
        diffs.extend(abs(ref[label] - oth[label]) for label in ref)
    return dict(top1=100 * agree / len(reference), flips=flips, max=max(diffs), mean=sum(diffs) / len(diffs))


def verdict(fmt, stats):
    """The row's last column: ok, or which targets it missed."""
    target = TARGETS[fmt]
    missed = []
    if stats["top1"] < target["top1"]:
        missed.append(f"top-1 < {target['top1']}%")
    for key in ("max", "mean"):
        if key in target and stats[key] > target[key]:
            missed.append(f"{key} > {target[key]:g}")
    return "ok" if not missed else "MISSED: " + ", ".join(missed)


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def size_mb(folder):
    return (folder / "model.safetensors").stat().st_size / 1e6


def evaluate(binary, name, groups, threads):
    """Converts one model, scores it in all formats and prints its rows; returns (rows, size and time line)."""
    folders = {"fp32": model_folder(name)}
    for fmt in FORMATS[1:]:
        folders[fmt] = OUT / f"{name}-{fmt}"
        convert(binary, folders["fp32"], fmt, folders[fmt])
    scores, truncated, seconds = score_model(binary, folders, groups, threads)
    rows = []
    for fmt in FORMATS[1:]:
        for mode in MODES:
            stats = compare(scores["fp32"][mode], scores[fmt][mode])
            rows.append((name, fmt, mode, stats, verdict(fmt, stats)))
    n_texts = len(truncated["fp32"])
    mismatched = sum(len(set(flags)) > 1 for flags in zip(*truncated.values()))
    sizes = "  ".join(f"{fmt} {size_mb(folders[fmt]):7.1f} MB" for fmt in FORMATS)
    times = "  ".join(f"{fmt} {seconds[fmt]:7.1f} s" for fmt in FORMATS)
    ratios = f"f16/fp32 {seconds['f16'] / seconds['fp32']:.2f}  int8/fp32 {seconds['int8'] / seconds['fp32']:.2f}"
    info = (f"{name}: {n_texts} texts, {sum(truncated['fp32'])} truncated"
            + (f" ({mismatched} with a truncation flag that differs between formats!)" if mismatched else "")
            + f"\n  model.safetensors: {sizes}\n  CLI wall time:     {times}   {ratios}")
    return rows, info


def print_table(rows):
    print(f"{'model':<18}{'format':<8}{'mode':<8}{'top-1 agree':>12}{'clear flips':>13}{'max |d|':>10}"
          f"{'mean |d|':>10}  vs targets")
    for name, fmt, mode, s, result in rows:
        print(f"{name:<18}{fmt:<8}{mode:<8}{s['top1']:>11.2f}%{s['flips']:>13}{s['max']:>10.2e}{s['mean']:>10.2e}"
              f"  {result}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["full-size", *spread_models.SPREAD_MODELS])
    ap.add_argument("--threads", type=int, help="passed to the CLI (default: its own, all cores)")
    ap.add_argument("--limit", type=int, help="only the first N texts of each label set")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "zeroshot")
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "agreement_corpus.jsonl")
    args = ap.parse_args()
    check_convert(args.binary)
    groups = label_sets(spread_models.load_corpus(args.corpus), args.limit)
    print(f"CPU: {cpu_model()}; CLI threads: {args.threads or 'default'}; corpus {args.corpus.name}: "
          f"{len(groups)} label sets, {sum(map(len, groups.values()))} texts")
    rows = []
    for name in args.models:
        model_rows, info = evaluate(args.binary, name, groups, args.threads)
        print(info, flush=True)
        rows += model_rows
    print(f"\ntargets: f16 top-1 >= {TARGETS['f16']['top1']}% and max |d| <= {TARGETS['f16']['max']:g}; "
          f"int8 top-1 >= {TARGETS['int8']['top1']}% and mean |d| <= {TARGETS['int8']['mean']:g}. "
          f"clear flips: top-1 changed where fp32's lead was >= {CLEAR_MARGIN}")
    print_table(rows)
    missed = [row for row in rows if row[4] != "ok"]
    print("\nall targets met" if not missed else f"\n{len(missed)} of {len(rows)} rows missed their targets")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
