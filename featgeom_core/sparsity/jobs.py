"""The sparsity analysis as jobs: ``sparsity.synthetic`` (the validation grid of section 3.1 and its
ablations) and ``sparsity.model`` (sparsity by layer of a model on real text, section 4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from featgeom_core.jobs.protocol import JobKind, register
from featgeom_core.sparsity.params import ModelSparsityParams, SyntheticGridParams
from featgeom_core.sparsity.result import ModelSparsityResult, SyntheticSweepResult
from featgeom_core.sparsity.run import run_model, run_synthetic


def _model_link(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    return {"job": job_id, "model": params["model"]}


SPARSITY_SYNTHETIC = register(
    JobKind(
        "sparsity.synthetic",
        "sparse coding of synthetic sparse-linear data and controls (the metrics' validation)",
        SyntheticGridParams,
        run_synthetic,
        SyntheticSweepResult,
        page="pages/sparsity_validation.py",
        wants_gpu=True,
        example={
            "a_values": [2.0],
            "controls": ["gaussian"],
            "d": 16,
            "n": 512,
            "coding": {"epochs": 1.0, "later_epochs": 0.5, "batch_size": 256},
        },
    )
)
SPARSITY_MODEL = register(
    JobKind(
        "sparsity.model",
        "sparse coding of a model's token embeddings and layers, with the synthetic calibration",
        ModelSparsityParams,
        run_model,
        ModelSparsityResult,
        page="pages/sparsity_layers.py",
        wants_gpu=True,
        link=_model_link,
        example={
            "model": "tiny-native",
            "layers": [0],
            "tokens": 512,
            "embeddings": False,
            "calibration_a": [2.0, 8.0],
            "coding": {"dictionary_multiple": 2.0, "epochs": 1.0, "later_epochs": 0.5, "batch_size": 256, "max_rounds": 2},
        },
    )
)
