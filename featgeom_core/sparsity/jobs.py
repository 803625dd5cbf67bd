"""The sparsity analysis as jobs: ``sparsity.synthetic`` (the validation grid of section 3.1 and its
ablations) and ``sparsity.model`` (sparsity by layer of a model on real text, section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from featgeom_core.jobs.protocol import JobKind, JobOutput, Report, register
from featgeom_core.sparsity.model import ModelSparsityResult, model_sparsity
from featgeom_core.sparsity.params import ModelSparsityParams, SyntheticGridJob
from featgeom_core.sparsity.synthetic import calibrated_a, calibration_curve, measure_synthetic


@dataclass
class SyntheticSweepResult:
    """One row per data set (see ``measure_synthetic``): sparse-linear ones by a, then controls."""

    rows: list[dict[str, Any]]

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"rows": self.rows}

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "SyntheticSweepResult":
        return cls(rows=list(meta["rows"]))

    def summary(self) -> dict[str, Any]:
        keep = ("dataset", "a", "truth", "planted_s1", "s_p", "normalized_loss", "n0", "explained_variance", "seconds")
        return {"rows": [{k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in keep} for r in self.rows]}


def run_synthetic(params: SyntheticGridJob, report: Report) -> JobOutput:
    """Every data set of the grid, coded and measured in turn."""
    datasets = params.datasets()
    rows = []
    for k, data in enumerate(datasets):
        label = f"a = {data.a:g}" if data.dataset == "sparse_linear" else data.dataset
        rows.append(measure_synthetic(data, params.coding, params.p,
                                      lambda f, m, k=k, label=label: report((k + f) / len(datasets), f"{label} ({k + 1}/{len(datasets)}): {m}")))
    return JobOutput(SyntheticSweepResult(rows))


def run_model(params: ModelSparsityParams, report: Report) -> JobOutput:
    """Dictionaries and metrics per layer, then (optionally) the calibration at each set's d."""
    from featgeom_core.models import shared_model

    report(0.0, f"loading {params.model}")
    model = shared_model(params.model)
    weight = 0.7 if params.calibrate else 1.0
    result: ModelSparsityResult = model_sparsity(model, params, lambda f, m: report(weight * f, m))
    if params.calibrate:
        dims = sorted({s.code.dictionary.shape[0] for s in result.sets})
        for k, d in enumerate(dims):
            rows = calibration_curve(d, params.tokens, params.coding, params.calibration_a, seed=params.seed,
                                     progress=lambda f, m, k=k: report(weight + (1 - weight) * (k + f) / len(dims), m))
            result.calibration.extend(rows)
            for activation_set in result.sets:
                if activation_set.code.dictionary.shape[0] == d:
                    activation_set.calibrated_a = calibrated_a(rows, activation_set.metrics["normalized_loss"])
    return JobOutput(result, fingerprints={"model": model.fingerprint})


def _model_link(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    return {"job": job_id, "model": params["model"]}


SPARSITY_SYNTHETIC = register(JobKind(
    "sparsity.synthetic", "sparse coding of synthetic sparse-linear data and controls (the metrics' validation)", SyntheticGridJob,
    run_synthetic, SyntheticSweepResult, page="pages/sparsity_validation.py", wants_gpu=True,
    example={"a_values": [2.0], "controls": ["gaussian"], "d": 16, "n": 512, "coding": {"epochs": 1.0, "later_epochs": 0.5, "batch_size": 256}},
))
SPARSITY_MODEL = register(JobKind(
    "sparsity.model", "sparse coding of a model's token embeddings and layers, with the synthetic calibration", ModelSparsityParams,
    run_model, ModelSparsityResult, page="pages/sparsity_layers.py", wants_gpu=True, link=_model_link,
    example={"model": "tiny-native", "layers": [0], "tokens": 512, "embeddings": False, "calibration_a": [2.0, 8.0],
             "coding": {"dictionary_multiple": 2.0, "epochs": 1.0, "later_epochs": 0.5, "batch_size": 256, "max_rounds": 2}},
))
