"""Train the modular-addition transformer with the peer's recipe (the default ModAddTrainParams:
AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), full batch, 30% of the 113^2 pairs, seed 0,
stopping at test accuracy 0.999) and write the checkpoint the package ships:
featgeom_core/interaction/shipped_weights/modadd_seed0.{safetensors,json}.

Usage: python scripts/train_modadd_checkpoint.py [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import torch
from safetensors.numpy import save_file

from featgeom_core.interaction.modadd import modular_addition_data, train_modular_addition
from featgeom_core.interaction.params import ModAddTrainParams
from featgeom_core.interaction.shipped import MODADD_NAME, SHIPPED_DIR, sha256_of


def accuracy(model, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``tokens`` (n, 3) whose answer the model gets right."""
    with torch.no_grad():
        return float((model(tokens).argmax(-1) == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = ModAddTrainParams()
    start = time.perf_counter()
    last = [start]

    def report(fraction: float, message: str, metrics=None, /) -> None:
        if metrics is not None and time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"{time.perf_counter() - start:7.0f} s  {message}", flush=True)

    model, history = train_modular_addition(params, report)
    seconds = time.perf_counter() - start
    data = modular_addition_data(params.model.modulus, params.frac_train, params.seed)
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    weights = SHIPPED_DIR / f"{MODADD_NAME}.safetensors"
    save_file({k: v.detach().numpy().astype("float32") for k, v in model.tl_state_dict().items()}, str(weights))
    record = {
        "params": params.normalised(),
        "history": history,
        "epochs_trained": int(history["epoch"][-1]) + 1,
        "train_accuracy": accuracy(model, data.train_tokens, data.train_labels),
        "test_accuracy": accuracy(model, data.test_tokens, data.test_labels),
        "sha256": sha256_of(weights),
        "trained": {
            "date": date.today().isoformat(),
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {args.threads} torch thread(s)",
            "torch": torch.__version__,
            "seconds": round(seconds, 1),
        },
        "recipe": "the peer's (ApolloResearch/rib train_config.yaml): AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), "
        "full batch, 30% of the pairs, seed 0; stopped at test accuracy 0.999 instead of running all 60,000 epochs",
    }
    (SHIPPED_DIR / f"{MODADD_NAME}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("epochs_trained", "train_accuracy", "test_accuracy", "sha256", "trained")}))


if __name__ == "__main__":
    main()
