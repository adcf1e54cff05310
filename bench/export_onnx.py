#!/usr/bin/env python3
"""Exports a full-size random model (generate.py --full-size, or --full-size-family NAME) for the peers:
a folder in the Hub's layout that transformers.js and onnxruntime load, with the same weights and vocabulary.

    .venv/bin/python bench/export_onnx.py [--model tests/fixtures/full-size] [--out MODEL-onnx]
    .venv/bin/python bench/export_onnx.py --model tests/fixtures/full-size-xtremedistil   (BERT)
    .venv/bin/python bench/export_onnx.py --model tests/fixtures/full-size-roberta-base  (RoBERTa)
    .venv/bin/python bench/export_onnx.py --model tests/fixtures/full-size-deberta-v3-base  (DeBERTa-v3)

Writes config.json, tokenizer.json, tokenizer_config.json and onnx/model.onnx (torch.onnx.export,
legacy exporter, opset 17, dynamic batch and sequence axes), for any *ForSequenceClassification that
AutoModelForSequenceClassification loads. Inputs: input_ids and attention_mask, and token_type_ids where
the model reads token types (BERT: type_vocab_size > 1). transformers.js feeds the inputs the ONNX
session names (zeros for a token_type_ids its tokenizer does not make; BertTokenizer makes them).
Then checks the export against PyTorch on another batch and length, with padding.
"""

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent


def input_names(model):
    types = getattr(model.config, "type_vocab_size", 0) > 1
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if types else [])


def export(model_dir: Path, out: Path):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)  # tokenizer.json (fast) + tokenizer_config.json
    shutil.copy(model_dir / "config.json", out / "config.json")
    names = input_names(model)
    enc = tok(["a premise"] * 2, ["This example is a label."] * 2, padding=True, return_tensors="pt",
              return_token_type_ids="token_type_ids" in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    torch.onnx.export(
        model, tuple(enc[name] for name in names), str(out / "onnx" / "model.onnx"),
        input_names=names, output_names=["logits"], opset_version=17,
        dynamic_axes=axes | {"logits": {0: "batch"}},
        dynamo=False,
    )
    check(model, tok, out, names)
    print(f"ONNX export written to {out} (inputs: {', '.join(names)})")


def check(model, tok, out, names):
    """The export against PyTorch on another batch and length than the traced one, padding included."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in sess.get_inputs()) == sorted(names), [i.name for i in sess.get_inputs()]
    premises = ["I loved the onboarding, but the pricing page is confusing."] * 3
    hyps = ["This example is pricing.", "This example is bug report and a much longer label.", "x"]
    enc = tok(premises, hyps, padding=True, return_tensors="pt", return_token_type_ids="token_type_ids" in names)
    with torch.no_grad():
        want = model(**{k: enc[k] for k in names}).logits.numpy()
    got = sess.run(None, {k: enc[k].numpy().astype(np.int64) for k in names})[0]
    err = float(np.abs(got - want).max())
    assert err < 1e-3, f"ONNX logits differ from PyTorch's by {err}"
    print(f"ONNX vs PyTorch, batch 3 x {enc['input_ids'].shape[1]} tokens with padding: max logit error {err:.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "tests/fixtures/full-size")
    ap.add_argument("--out", type=Path, help="default: the model's folder with -onnx appended")
    args = ap.parse_args()
    export(args.model, args.out or args.model.with_name(args.model.name + "-onnx"))


if __name__ == "__main__":
    main()
