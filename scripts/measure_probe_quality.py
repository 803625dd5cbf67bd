"""Probe quality of every named feature set on the offline models, as a markdown table (README).

    .venv/bin/python scripts/measure_probe_quality.py [--models minilm,smollm2] [--hook resid_post]
        [--max-per-class 600] [--json out.json]

Each row: the held-out balanced accuracy of the probes at each measured layer (the K-way argmax
of the one-vs-rest probes for a multi-class set, the mean over features for text_features)
beside chance and the majority baseline, and whether the probes beat chance (see
``featgeom_core.probing.quality``). Uses the product's own path (``feature_geometry``), cached
in the featgeom cache, so a second run is quick.
"""

from __future__ import annotations

import argparse
import json
import time

from featgeom_core.data import list_feature_sets, load_feature_set
from featgeom_core.models import load_model
from featgeom_core.probing import GeometryParams, feature_geometry
from featgeom_core.store import Store

LAYERS = {"minilm": [0, 1, 2, 3, 4, 5], "smollm2": [0, 3, 6, 9, 12, 15, 18, 21, 24, 29]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,smollm2")
    parser.add_argument("--sets", default="", help="comma-separated feature sets (default: all)")
    parser.add_argument("--hook", default="resid_post", choices=["resid_post", "mlp_post"])
    parser.add_argument("--max-per-class", type=int, default=600)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    sets = [s for s in args.sets.split(",") if s] or [info.name for info in list_feature_sets()]
    store = Store()
    rows = []
    print(f"hook {args.hook}, at most {args.max_per_class} examples per class; balanced accuracy per layer, best in bold\n")
    print("| feature set | model | layers | balanced accuracy by layer | chance | majority | beats chance |")
    print("|---|---|---|---|---|---|---|")
    for model_id in args.models.split(","):
        model = load_model(model_id, device="cpu")
        layers = LAYERS.get(model_id, list(range(model.n_layers)))
        for name in sets:
            options = {} if name == "text_features" else {"max_per_class": args.max_per_class}
            feature_set = load_feature_set(name, tokenizer=model.tokenizer, **options)
            started = time.perf_counter()
            result = feature_geometry(model, feature_set, layers, GeometryParams(hook=args.hook), store=store, device="cpu")
            seconds = time.perf_counter() - started
            quality = result.quality
            best = max(range(len(quality)), key=lambda i: quality[i].balanced_accuracy)
            by_layer = " ".join(
                f"**{q.balanced_accuracy:.2f}**" if i == best else f"{q.balanced_accuracy:.2f}" for i, q in enumerate(quality)
            )
            beats = sum(q.encoded for q in quality)
            print(
                f"| {name} | {model_id} | {layers[0]}-{layers[-1]} | {by_layer} | {quality[0].chance:.2f} | "
                f"{max(q.majority for q in quality):.2f} | {beats} of {len(quality)} |",
                flush=True,
            )
            rows.append(
                {
                    "feature_set": name,
                    "model": model_id,
                    "hook": args.hook,
                    "layers": layers,
                    "balanced_accuracy": [q.balanced_accuracy for q in quality],
                    "accuracy": [q.accuracy for q in quality],
                    "chance": quality[0].chance,
                    "majority": [q.majority for q in quality],
                    "threshold": [q.threshold for q in quality],
                    "beats_chance": [q.encoded for q in quality],
                    "weak_features": [list(q.weak_features) for q in quality],
                    "n_examples": feature_set.n_examples,
                    "seconds": round(seconds, 1),
                }
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
