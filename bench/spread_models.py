#!/usr/bin/env python3
"""Writes small random DistilBERT NLI checkpoints whose zero-shot scores are spread out, for bench/agreement.py.

    .venv/bin/python bench/spread_models.py [--out target/agreement] [--corpus bench/agreement_corpus.jsonl]

Agreement between fp32 and a quantised model says little when every label scores about 1/5:
top-1 then flips on noise and the score differences are small because the scores are. These
models have the shapes of two committed fixtures (tests/fixtures/generate.py: typeform-layout's
2 layers x 2 heads x dim 16 with GELU, f16-relu's 3 x 3 x 24 with ReLU), the real vocabulary,
and generate.py's large random weights, but F32 and 512 positions, so that long texts reach
truncation as with typeform's model. Each is written in the Hub layout zeroshot loads
(<out>/<name>/), and the spread of its top-1 scores over the corpus is printed as a check.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from transformers import DistilBertForSequenceClassification

ROOT = Path(__file__).resolve().parent.parent
sys.dont_write_bytecode = True  # no __pycache__ next to the imported scripts
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import generate  # noqa: E402  (tests/fixtures/generate.py)

TEMPLATE = "This example is {}."


def spec_like(fixture, seed, logit_gain):
    """A fixture's shapes and activation, in F32 with typeform's 512 positions and tokenizer config."""
    spec = dict(generate.FIXTURES[fixture])
    spec.update(max_pos=512, model_max_length=512, tokenizer="vocab", dtype="f32", seed=seed,
                logit_gain=logit_gain)
    return spec


# Gains chosen so that the median top-1 score is about 0.5 (1.0 leaves it near 0.25, flat).
SPREAD_MODELS = {
    "spread-typeform": spec_like("typeform-layout", seed=11, logit_gain=4.0),
    "spread-relu": spec_like("f16-relu", seed=13, logit_gain=6.0),
}


def sharpen(model, gain):
    """Scales the classifier's logits: with generate.randomise alone the labels' entailment logits
    differ by a few tenths, so a softmax over five of them stays near 1/5 (as a real MNLI model's do not)."""
    with torch.no_grad():
        model.classifier.weight.mul_(gain)
        model.classifier.bias.mul_(gain)


def build(name, out):
    """Random model -> <out>/<name>/ (config.json, model.safetensors, vocab.txt, tokenizer_config.json)."""
    spec = SPREAD_MODELS[name]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec["seed"])
    model = DistilBertForSequenceClassification(generate.make_config(spec)).eval()
    generate.randomise(model, spec["seed"])
    sharpen(model, spec["logit_gain"])
    generate.save_model(model, folder, spec)
    generate.save_tokenizer_files(folder, spec)
    return folder


def zero_shot_scores(model, tok, text, labels, multi_label):
    """The scores the pipeline (and zeroshot) give, label by label in input order."""
    ids = {k.lower(): v for k, v in model.config.label2id.items()}
    entail, contra = ids["entailment"], ids["contradiction"]
    enc = tok([text] * len(labels), [TEMPLATE.format(label) for label in labels], truncation="only_first",
              padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    if multi_label:
        return logits[:, [contra, entail]].softmax(-1)[:, 1].tolist()
    return logits[:, entail].softmax(0).tolist()


def summary(values):
    """min / p10 / median / p90 / max, as text."""
    q = statistics.quantiles(values, n=10)
    return f"{min(values):.3f} / {q[0]:.3f} / {statistics.median(values):.3f} / {q[-1]:.3f} / {max(values):.3f}"


def spread_report(folder, corpus):
    """How spread the scores are over the corpus: single-label top-1 scores, top-1 minus top-2
    margins (near ties are where top-1 may flip under quantisation), and multi-label scores."""
    model = DistilBertForSequenceClassification.from_pretrained(folder).eval()
    tok = generate.load_tokenizer(folder, model.config)
    top1, margins, multi = [], [], []
    for record in corpus:
        scores = sorted(zero_shot_scores(model, tok, record["text"], record["labels"], False), reverse=True)
        top1.append(scores[0])
        margins.append(scores[0] - scores[1])
        multi.extend(zero_shot_scores(model, tok, record["text"], record["labels"], True))
    return "\n".join([
        "  (min / p10 / median / p90 / max)",
        f"  single-label top-1 score:   {summary(top1)}",
        f"  top-1 - top-2 margin:       {summary(margins)}; "
        f"{sum(m < 0.01 for m in margins)} of {len(margins)} under 0.01",
        f"  multi-label score (all):    {summary(multi)}",
    ])


def load_corpus(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "agreement")
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "agreement_corpus.jsonl")
    ap.add_argument("--no-check", action="store_true", help="skip the spread check over the corpus")
    args = ap.parse_args()
    torch.set_num_threads(1)
    corpus = None if args.no_check else load_corpus(args.corpus)
    for name in SPREAD_MODELS:
        folder = build(name, args.out)
        print(f"{folder}" + ("" if corpus is None else f"\n{spread_report(folder, corpus)}"))


if __name__ == "__main__":
    main()
