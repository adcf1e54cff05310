#!/usr/bin/env python3
"""Writes the fuzz targets' tiny model (fuzz/tiny-model/) and seed inputs (fuzz/corpus/*/seed-*).

Standard library only, deterministic: rerun it and the files are identical. The model is a
DistilBERT with a 40-token vocabulary, dim 8 and one layer, so a whole model folder is a few KB
and the fuzzer runs thousands of loads a second.
"""
import json
import random
import struct
from pathlib import Path

HERE = Path(__file__).parent
# Marks the end of one file in a `checkpoint` input (see fuzz_targets/checkpoint.rs).
SEP = b"\n\x00--\x00\n"
WORDS = "the a text about sports food politics money roads is this example , . ! ? ##s ##ing good bad love hate price page on board help bug report praise".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
D, H, P, LABELS = 8, 12, 32, 3

config = {
    "model_type": "distilbert", "vocab_size": len(VOCAB), "dim": D, "n_heads": 2, "n_layers": 1,
    "hidden_dim": H, "max_position_embeddings": P, "activation": "gelu",
    "id2label": {"0": "contradiction", "1": "neutral", "2": "entailment"},
    "label2id": {"contradiction": 0, "neutral": 1, "entailment": 2},
}


def tensors():
    rng = random.Random(7)
    shapes = {"distilbert.embeddings.word_embeddings.weight": [len(VOCAB), D],
              "distilbert.embeddings.position_embeddings.weight": [P, D]}
    for ln in ["distilbert.embeddings.LayerNorm", "distilbert.transformer.layer.0.sa_layer_norm",
               "distilbert.transformer.layer.0.output_layer_norm"]:
        shapes[f"{ln}.weight"], shapes[f"{ln}.bias"] = [D], [D]
    linears = {f"distilbert.transformer.layer.0.attention.{n}": (D, D) for n in ["q_lin", "k_lin", "v_lin", "out_lin"]}
    linears.update({"distilbert.transformer.layer.0.ffn.lin1": (H, D), "distilbert.transformer.layer.0.ffn.lin2": (D, H),
                    "pre_classifier": (D, D), "classifier": (LABELS, D)})
    for name, (out, inp) in linears.items():
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = [out, inp], [out]
    for name, shape in sorted(shapes.items()):
        n = 1
        for s in shape:
            n *= s
        yield name, shape, [rng.uniform(-0.5, 0.5) for _ in range(n)]


INT8 = ("_lin.weight", "lin1.weight", "lin2.weight", "classifier.weight", "word_embeddings.weight")


def quantize(shape, values):
    """Symmetric int8 per row with one F32 scale per row, as `zeroshot convert --to int8` writes."""
    rows, cols = shape
    q, scales = [], []
    for r in range(rows):
        row = values[r * cols:(r + 1) * cols]
        scale = max(abs(v) for v in row) / 127
        scales.append(scale)
        q += [max(-127, min(127, round(v / scale))) if scale else 0 for v in row]
    return struct.pack(f"<{len(q)}b", *q), struct.pack(f"<{rows}f", *scales)


def safetensors(int8=False):
    header, data = {}, b""

    def add(name, dtype, shape, raw):
        nonlocal data
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw

    for name, shape, values in tensors():
        if int8 and name.endswith(INT8):
            q, scales = quantize(shape, values)
            add(name, "I8", shape, q)
            add(f"{name}_scale", "F32", shape[:1], scales)
        else:
            add(name, "F32", shape, struct.pack(f"<{len(values)}f", *values))
    if int8:
        header["__metadata__"] = {"format": "pt", "zeroshot_weights": "int8"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # 8-byte aligned data, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + data


def main():
    model = HERE / "tiny-model"
    model.mkdir(exist_ok=True)
    files = {
        "config.json": json.dumps(config, indent=1).encode(),
        "model.safetensors": safetensors(),
        "vocab.txt": ("\n".join(VOCAB) + "\n").encode(),
        "tokenizer_config.json": json.dumps({"do_lower_case": True, "model_max_length": P}).encode(),
    }
    for name, data in files.items():
        (model / name).write_bytes(data)
    seeds = HERE / "corpus" / "checkpoint"
    seeds.mkdir(parents=True, exist_ok=True)
    order = ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"]
    (seeds / "seed-tiny").write_bytes(SEP.join(files[n] for n in order))
    (seeds / "seed-no-tokenizer-config").write_bytes(SEP.join(files[n] for n in order[:3]))
    int8 = {**files, "model.safetensors": safetensors(int8=True)}
    (seeds / "seed-tiny-int8").write_bytes(SEP.join(int8[n] for n in order))
    seeds = HERE / "corpus" / "classify"
    seeds.mkdir(parents=True, exist_ok=True)
    for i, (template, labels, text) in enumerate([
        ("This example is {}.", "sports, food, politics", "the text is about sports"),
        ("{}", "good,bad", "love this page ! ! ! " * 10),
        ("It is {0}!", "bug report", "help , the board is bad"),
    ]):
        (seeds / f"seed-{i}").write_bytes(bytes([i % 2]) + f"{template}\n{labels}\n{text}".encode())


main()
