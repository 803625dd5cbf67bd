"""Extraction throughput with hooks vs a plain forward pass of the same model on the same batches.

Baseline: the plain Hugging Face forward (no hooks, every layer, activations discarded).
Ours: featgeom_core.activations.extract for every layer (``--model minilm``: 6; ``smollm2``: 30) at the
probe positions, both engines.
Target (issue 2): ours >= 0.8x the baseline's throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from featgeom_core.activations import extract
from featgeom_core.data import load_feature_set
from featgeom_core.models import load_model
from featgeom_core.tokens import encode


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feature-set", default="news_topic", help="news_topic has long texts; athlete_sport short names")
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()

    model = load_model(args.model, device=args.device)
    fs = load_feature_set(args.feature_set, max_per_class=args.per_class)
    layers = list(range(model.n_layers))
    encoded = encode(model.tokenizer, list(fs.texts))
    order = encoded["attention_mask"].sum(1).argsort()[::-1]

    def plain_forward() -> None:
        with torch.inference_mode():
            for start in range(0, len(order), args.batch_size):
                rows = order[start : start + args.batch_size]
                seq = int(encoded["attention_mask"][rows].sum(1).max())
                model.plain_model(
                    input_ids=torch.as_tensor(encoded["input_ids"][rows, :seq], device=model.device),
                    attention_mask=torch.as_tensor(encoded["attention_mask"][rows, :seq], device=model.device),
                )
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    def ours(engine: str):
        return lambda: extract(model, fs, layers, engine=engine, batch_size=args.batch_size)

    n = fs.n_examples
    baseline = timed(plain_forward, args.repeats)
    plain = timed(ours("plain"), args.repeats)
    bridge = timed(ours("bridge"), args.repeats)
    print(f"model {args.model} on {model.device}; {n} texts of {args.feature_set}; layers 0-{layers[-1]}; batch {args.batch_size}")
    print(f"plain HF forward (baseline)   {baseline:7.3f} s   {n / baseline:8.1f} texts/s")
    print(f"extract, engine=plain         {plain:7.3f} s   {n / plain:8.1f} texts/s   ratio {baseline / plain:.2f}x (target >= 0.8x)")
    print(f"extract, engine=bridge        {bridge:7.3f} s   {n / bridge:8.1f} texts/s   ratio {baseline / bridge:.2f}x")


if __name__ == "__main__":
    main()
