"""The modular-addition transformer the lab trained itself with the peer's recipe, shipped with the
package so that "trained here" at the default recipe opens at once instead of training for most of
an hour on a 2-core CPU. ``scripts/train_modadd_checkpoint.py`` wrote it; its JSON beside it keeps
the recipe, the seed, the final accuracies, the machine and the SHA-256 of the weights, which are
checked before use (a changed file is refused, never loaded)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_core.errors import DataError
from featgeom_core.interaction.params import ModAddTrainParams
from featgeom_core.interaction.result import TrainedModel

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_weights"
"""Where the shipped checkpoints live (package data)."""
MODADD_NAME = "modadd_seed0"
"""The shipped modular-addition checkpoint: ``<name>.safetensors`` and ``<name>.json``."""


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_record(name: str = MODADD_NAME) -> dict[str, Any] | None:
    """The shipped checkpoint's record (recipe, history, accuracies, hash), or None when not shipped."""
    path = SHIPPED_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _record_for(params: ModAddTrainParams, name: str) -> dict[str, Any] | None:
    record = shipped_record(name)
    return record if record is not None and record["params"] == params.normalised() else None


def ships(params: ModAddTrainParams, name: str = MODADD_NAME) -> bool:
    """Whether the package ships a checkpoint trained with exactly ``params`` (its record only; no weights read)."""
    return _record_for(params, name) is not None


def shipped_modadd(params: ModAddTrainParams, name: str = MODADD_NAME) -> TrainedModel | None:
    """The shipped model when ``params`` is exactly the recipe it was trained with, else None.
    Raises DataError when the weights on disk do not have the recorded hash."""
    from safetensors.numpy import load_file

    record = _record_for(params, name)
    if record is None:
        return None
    weights = SHIPPED_DIR / f"{name}.safetensors"
    if not weights.is_file() or sha256_of(weights) != record["sha256"]:
        raise DataError(f"the shipped checkpoint {weights.name} is missing or does not match its recorded SHA-256; reinstall featgeom")
    state = {key: np.asarray(value, dtype=np.float32) for key, value in load_file(str(weights)).items()}
    return TrainedModel("modadd", state, record["history"], record["params"])
