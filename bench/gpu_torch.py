#!/usr/bin/env python3
"""PyTorch CUDA fp32 eager on the shapes of `zeroshot bench`, for the GPU comparison: a
typeform-shaped DistilBertForSequenceClassification with random weights, median ms per forward.

    python3 bench/gpu_torch.py [--shapes 5x24,5x128,32x128,256x128] [--runs 20]
"""
import argparse
import statistics

import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="5x24,5x128,32x128,256x128")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # true fp32, as our WGSL computes
    torch.backends.cudnn.allow_tf32 = False
    config = DistilBertConfig(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072,
                              max_position_embeddings=512, activation="gelu",
                              id2label={0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"},
                              label2id={"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2})
    model = DistilBertForSequenceClassification(config).cuda().eval()
    print(f"PyTorch {torch.__version__} CUDA fp32 eager on {torch.cuda.get_device_name()}")
    for spec in args.shapes.split(","):
        b, l = map(int, spec.split("x"))
        ids = torch.randint(1000, 20000, (b, l), device="cuda")
        mask = torch.ones_like(ids)
        times = []
        with torch.inference_mode():
            for i in range(args.runs + 3):
                torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(input_ids=ids, attention_mask=mask).logits.cpu()  # includes the logits readback
                end.record()
                torch.cuda.synchronize()
                if i >= 3:
                    times.append(start.elapsed_time(end))
        print(f"torch    {spec:>10}{statistics.median(times):>12.2f} ms")


if __name__ == "__main__":
    main()
