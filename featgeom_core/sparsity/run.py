"""The sparsity job kinds' computations: validated params in, a result out."""

from __future__ import annotations

import dataclasses

from featgeom_core.jobs.protocol import JobOutput, StoreEntry
from featgeom_core.progress import Progress, steps_progress, sub_progress
from featgeom_core.sparsity.model import model_sparsity
from featgeom_core.sparsity.params import ModelSparsityParams, SyntheticGridParams
from featgeom_core.sparsity.result import ModelSparsityResult, SyntheticSweepResult
from featgeom_core.sparsity.synthetic import calibrated_a, measure_synthetic
from featgeom_core.store import Store

CALIBRATION_SIGMA = 0.1
"""The calibration data's noise level: the paper's section 3.1 setting."""


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


def calibration_grid(d: int, params: ModelSparsityParams) -> SyntheticGridParams:
    """The synthetic calibration of a model's sets of width ``d``: sparse-linear data at each of
    ``params.calibration_a`` and the Gaussian control, at the model's tokens, coding and seed. It
    depends on no model, so it is the validation grid's job, stored once and shared by every model,
    layer choice and rerun with the same width (otherwise 40% of MiniLM's default job, a third of SmolLM2's)."""
    return SyntheticGridParams(
        a_values=params.calibration_a,
        controls=["gaussian"],
        d=d,
        n=params.tokens,
        sigma=CALIBRATION_SIGMA,
        coding=params.effective_coding(),
        seed=params.seed,
    )


def calibration_stored(params: ModelSparsityParams, widths: set[int], store: Store) -> bool:
    """Whether an earlier job stored the calibration at every one of ``widths`` (then it is read, not
    run). A look for the entries, not a read: the page asks on every rerun."""
    from featgeom_core.sparsity.jobs import SPARSITY_SYNTHETIC

    return all(store.contains(SPARSITY_SYNTHETIC.result_key(calibration_grid(width, params).normalised(), {})) for width in widths)


def _calibration(d: int, params: ModelSparsityParams, store: Store, report: Progress) -> tuple[list[dict], StoreEntry | None]:
    """The calibration rows at width ``d`` (stored, or computed now with the entry that stores them)."""
    from featgeom_core.sparsity.jobs import SPARSITY_SYNTHETIC

    grid = calibration_grid(d, params)
    cached = SPARSITY_SYNTHETIC.cached(grid, store)
    if cached is not None:
        report(1.0, f"calibration at d = {d}: stored")
        return cached.rows, None
    result = SPARSITY_SYNTHETIC.run(grid, lambda f, m, *_: report(f, f"calibration, {m}")).result
    return result.rows, SPARSITY_SYNTHETIC.entry(grid, result)


def run_model(params: ModelSparsityParams, report: Progress, store: Store | None = None) -> JobOutput[ModelSparsityResult]:
    """The ``sparsity.model`` job: dictionaries and metrics per layer, then (optionally) the
    synthetic calibration at each set's d (:func:`calibration_grid`, reused from the store where
    an earlier job made it). Under Appendix H's recipe the layers are measured at a decomposition
    lambda the synthetic curve does not use, so no set is given a calibrated a."""
    from featgeom_core.models import shared_model

    report(0.0, f"loading {params.model}")
    model = shared_model(params.model)
    weight = 0.7 if params.calibrate else 1.0
    result = model_sparsity(model, params, sub_progress(report, 0.0, weight))
    if not params.calibrate:
        return JobOutput(result, fingerprints={"model": model.fingerprint})
    store = store or Store()
    dims = sorted({s.code.dictionary.shape[0] for s in result.sets})
    calibration: list[dict] = []
    calibrated: dict[str, float | None] = {}
    stored: list[StoreEntry] = []
    for k, d in enumerate(dims):
        rows, entry = _calibration(d, params, store, sub_progress(steps_progress(report, k, len(dims)), weight, 1.0))
        stored += [entry] if entry is not None else []
        calibration.extend(rows)
        for activation_set in result.sets:
            if activation_set.code.dictionary.shape[0] == d and params.recipe == "lab":
                calibrated[activation_set.name] = calibrated_a(rows, activation_set.metrics["normalized_loss"])
    sets = [dataclasses.replace(s, calibrated_a=calibrated.get(s.name)) for s in result.sets]
    return JobOutput(
        dataclasses.replace(result, sets=sets, calibration=calibration), fingerprints={"model": model.fingerprint}, extra=tuple(stored)
    )
