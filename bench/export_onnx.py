#!/usr/bin/env python3
"""Exports the full-size random model (generate.py --full-size) for the peers: a folder in the Hub's
layout that transformers.js and onnxruntime load, with the same weights and vocabulary.

    .venv/bin/python bench/export_onnx.py [--model tests/fixtures/full-size] [--out tests/fixtures/full-size-onnx]

Writes config.json, tokenizer.json, tokenizer_config.json and onnx/model.onnx (torch.onnx.export,
legacy exporter, opset 17, dynamic batch and sequence axes).
"""

import argparse
import shutil
from pathlib import Path

import torch
from transformers import AutoTokenizer, DistilBertForSequenceClassification

ROOT = Path(__file__).resolve().parent.parent


def export(model_dir: Path, out: Path):
    model = DistilBertForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)  # tokenizer.json (fast) + tokenizer_config.json
    shutil.copy(model_dir / "config.json", out / "config.json")
    enc = tok(["a premise"] * 2, ["This example is a label."] * 2, padding=True, return_tensors="pt")
    torch.onnx.export(
        model, (enc["input_ids"], enc["attention_mask"]), str(out / "onnx" / "model.onnx"),
        input_names=["input_ids", "attention_mask"], output_names=["logits"], opset_version=17,
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                      "logits": {0: "batch"}},
        dynamo=False,
    )
    print(f"ONNX export written to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "tests/fixtures/full-size")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/full-size-onnx")
    args = ap.parse_args()
    export(args.model, args.out)


if __name__ == "__main__":
    main()
