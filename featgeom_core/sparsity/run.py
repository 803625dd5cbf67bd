"""The sparsity job kinds' computations: validated params in, a result out."""

from __future__ import annotations

import dataclasses

from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.progress import Progress, steps_progress, sub_progress
from featgeom_core.sparsity.model import model_sparsity
from featgeom_core.sparsity.params import ModelSparsityParams, SyntheticGridParams
from featgeom_core.sparsity.result import ModelSparsityResult, SyntheticSweepResult
from featgeom_core.sparsity.synthetic import (
    calibrated_a,
    calibration_curve,
    measure_synthetic,
)


def run_synthetic(params: SyntheticGridParams, report: Progress) -> JobOutput[SyntheticSweepResult]:
    """The ``sparsity.synthetic`` job: every data set of the grid, coded and measured in turn."""
    datasets = params.datasets()
    rows = []
    for k, data in enumerate(datasets):
        label = f"a = {data.a:g}" if data.dataset == "sparse_linear" else data.dataset
        rows.append(
            measure_synthetic(
                data, params.coding, params.p, steps_progress(report, k, len(datasets), f"{label} ({k + 1}/{len(datasets)}): ")
            )
        )
    return JobOutput(SyntheticSweepResult(rows))


def run_model(params: ModelSparsityParams, report: Progress) -> JobOutput[ModelSparsityResult]:
    """The ``sparsity.model`` job: dictionaries and metrics per layer, then (optionally) the
    synthetic calibration at each set's d. Under Appendix H's recipe the layers are measured at a
    decomposition lambda the synthetic curve does not use, so no set is given a calibrated a."""
    from featgeom_core.models import shared_model

    report(0.0, f"loading {params.model}")
    model = shared_model(params.model)
    weight = 0.7 if params.calibrate else 1.0
    result = model_sparsity(model, params, sub_progress(report, 0.0, weight))
    if not params.calibrate:
        return JobOutput(result, fingerprints={"model": model.fingerprint})
    dims = sorted({s.code.dictionary.shape[0] for s in result.sets})
    calibration, calibrated = [], {}
    for k, d in enumerate(dims):
        rows = calibration_curve(
            d,
            params.tokens,
            params.effective_coding(),
            params.calibration_a,
            seed=params.seed,
            progress=sub_progress(steps_progress(report, k, len(dims)), weight, 1.0),
        )
        calibration.extend(rows)
        for activation_set in result.sets:
            if activation_set.code.dictionary.shape[0] == d and params.recipe == "lab":
                calibrated[activation_set.name] = calibrated_a(rows, activation_set.metrics["normalized_loss"])
    sets = [dataclasses.replace(s, calibrated_a=calibrated.get(s.name)) for s in result.sets]
    return JobOutput(dataclasses.replace(result, sets=sets, calibration=calibration), fingerprints={"model": model.fingerprint})
