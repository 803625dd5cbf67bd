"""The energy analysis as jobs: ``energy.fit`` (one joint optimisation and its reference
configuration) and ``energy.sweep`` (the hyper-parameter search and perturbation grid)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Mapping

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from featgeom_core.energy.joint import JointResult, check_target
from featgeom_core.energy.params import FitRestarts, JointFields, Label, NoiseDraws, Seed, Similarity, SweepGrid, SweepRestarts
from featgeom_core.energy.reference import validate_sizes
from featgeom_core.jobs.protocol import JobKind, JobOutput, Report, register
from featgeom_core.params import Params

MAX_FEATURES = 256
MAX_TARGETS = 512


def _as_psm(value: Any) -> list[list[float]]:
    """A checked target PSM (square, >= 2 x 2, finite, symmetric), rounded to 12 decimals so
    that equal targets give equal job ids."""
    matrix = check_target(np.asarray(value, dtype=float))
    if matrix.shape[0] > MAX_FEATURES:
        raise ValueError(f"at most {MAX_FEATURES} features, got {matrix.shape[0]}")
    return matrix.round(12).tolist()


def _as_matrix_input(value: Any) -> Any:
    try:
        return np.asarray(value, dtype=float).tolist()
    except (TypeError, ValueError):
        raise ValueError("a PSM is a square matrix of numbers (a list of rows)") from None


PsmMatrix = Annotated[list[list[float]], BeforeValidator(_as_matrix_input), AfterValidator(_as_psm)]
FeatureNames = Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=MAX_FEATURES, description="feature names, one per PSM row (optional)")]


class EnergyFitJob(JointFields):
    """One joint optimisation (thesis 3.5-3.6) of a target PSM, with the kernel's reference configuration."""

    target: PsmMatrix = Field(..., description="the target PSM T (N x N, symmetric), as a list of rows")
    features: FeatureNames = []
    restarts: FitRestarts = 16
    seed: Seed = 0
    label: Label = ""

    @model_validator(mode="after")
    def _sizes_agree(self) -> "EnergyFitJob":
        n = len(self.target)
        validate_sizes(n, self.dim)
        if self.features and len(self.features) != n:
            raise ValueError(f"{len(self.features)} feature names for an {n} x {n} target")
        return self


@dataclass
class EnergyFitResult:
    """A joint fit, the kernel's minimum-energy configuration matched to the target
    (``reference_psm`` (N, N), ``reference_features`` (N, dim), ``reference_distance`` per pair),
    and the names and label the fit was made with."""

    joint: JointResult
    reference_psm: np.ndarray
    reference_features: np.ndarray
    reference_distance: float
    reference_energy: float
    feature_names: list[str]
    label: str

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = self.joint.to_store()
        arrays.update({"reference_psm": self.reference_psm, "reference_features": self.reference_features})
        meta.update({"reference_distance": self.reference_distance, "reference_energy": self.reference_energy,
                     "features": list(self.feature_names), "label": self.label})
        return arrays, meta

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "EnergyFitResult":
        return cls(
            joint=JointResult.from_store(arrays, meta), reference_psm=np.asarray(arrays["reference_psm"]),
            reference_features=np.asarray(arrays["reference_features"]), reference_distance=float(meta["reference_distance"]),
            reference_energy=float(meta["reference_energy"]), feature_names=list(meta.get("features", [])), label=str(meta.get("label", "")),
        )

    def summary(self) -> dict[str, Any]:
        return {"error": self.joint.error, "energy": self.joint.energy, "objective": self.joint.objective,
                "weights": [round(float(w), 4) for w in self.joint.weights], "reference_distance": self.reference_distance}


def run_fit(params: EnergyFitJob, report: Report) -> JobOutput:
    """``joint_optimize`` and ``matched_reference`` on the worker."""
    from featgeom_core.energy.joint import solve_joint
    from featgeom_core.energy.reference import matched_reference

    target = np.asarray(params.target)
    report(0.1, f"joint optimisation, {params.restarts} restarts")
    joint = solve_joint([target], [(0, params.joint_config())], restarts=params.restarts, seed=params.seed)[0]
    report(0.7, "reference configuration")
    reference = matched_reference(target, params.dim, params.kernel, s=params.s, similarity=params.similarity,
                                  restarts=params.restarts, seed=params.seed)
    return JobOutput(EnergyFitResult(
        joint=joint, reference_psm=reference.psm, reference_features=reference.reference.X, reference_distance=reference.distance,
        reference_energy=reference.reference.energy, feature_names=list(params.features), label=params.label,
    ))


class SweepTargetSpec(Params):
    """One target of a sweep: its name (real, permuted, ...), layer, feature names and PSMs."""

    name: str = Field("real", min_length=1, max_length=100, description="which target this is: real, permuted, shuffled_labels, ...")
    layer: int | None = Field(None, ge=0, le=10_000, description="the layer the PSMs come from (None for none)")
    replicate: int = Field(0, ge=0, le=100, description="which seed of a control this is (0 for the real target)")
    features: FeatureNames = []
    psms: dict[Similarity, PsmMatrix] = Field(..., min_length=1, description="{similarity: PSM}")

    @model_validator(mode="after")
    def _consistent(self) -> "SweepTargetSpec":
        sizes = {len(matrix) for matrix in self.psms.values()}
        if len(sizes) != 1:
            raise ValueError(f"the PSMs of target {self.name!r} (layer {self.layer}) differ in size")
        n = sizes.pop()
        if self.features and len(self.features) != n:
            raise ValueError(f"target {self.name!r} (layer {self.layer}) names {len(self.features)} features for an {n} x {n} PSM")
        return self

    @property
    def n_features(self) -> int:
        """N, the side of the target's PSMs."""
        return len(next(iter(self.psms.values())))


def _targets_from_mapping(value: Any) -> Any:
    """{name: {similarity: PSM}} is accepted for a layer-less sweep."""
    if isinstance(value, Mapping):
        return [{"name": name, "layer": None, "psms": psms} for name, psms in value.items()]
    return value


class EnergySweepJob(SweepGrid):
    """The grid (thesis 4.2-4.3) over every target; targets with equal N are solved as one batched problem."""

    targets: Annotated[list[SweepTargetSpec], BeforeValidator(_targets_from_mapping)] = Field(
        ..., min_length=1, max_length=MAX_TARGETS, description="targets: [{name, layer, features, psms: {similarity: PSM}}]")
    restarts: SweepRestarts = 8
    repeats: NoiseDraws = 3
    seed: Seed = 0
    label: Label = ""

    @model_validator(mode="after")
    def _every_target_has_a_configuration(self) -> "EnergySweepJob":
        for target in self.targets:
            self.joint_configs(target.n_features)  # raises when no dim is below this N
        return self

    def grid(self) -> SweepGrid:
        """The grid alone."""
        return SweepGrid(**{name: getattr(self, name) for name in SweepGrid.model_fields})


@dataclass
class SweepJobResult:
    """``rows``: one per (target, layer, configuration, lambda_x, sigma) (see ``run_sweep``); ``best``:
    the best configuration per (target, layer, similarity, kernel), each with a ``best_index`` k
    naming its arrays ``psm_k``, ``features_k``, ``weights_k`` and ``target_k``; ``names``:
    feature names per layer."""

    rows: list[dict[str, Any]]
    best: list[dict[str, Any]]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    label: str = ""
    names: dict[str, list[str]] = field(default_factory=dict)

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return dict(self.arrays), {"rows": self.rows, "best": self.best, "label": self.label, "names": self.names}

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "SweepJobResult":
        return cls(rows=list(meta["rows"]), best=list(meta["best"]), arrays={k: np.asarray(v) for k, v in arrays.items()},
                   label=str(meta.get("label", "")), names=dict(meta.get("names", {})))

    def summary(self) -> dict[str, Any]:
        from featgeom_core.energy.controls import control_summary

        keep = ("target", "layer", "similarity", "kernel", "dim", "lambda_d", "joint_error")
        real_best = [{k: b.get(k) for k in keep} for b in self.best if b["target"] == "real"]
        return {"rows": len(self.rows), "best_real": real_best, "distance_by_layer": control_summary(self.rows)}


def run_sweep_job(params: EnergySweepJob, report: Report) -> JobOutput:
    """The whole grid (one batched problem per N) on the worker."""
    from featgeom_core.energy.sweep import SweepTarget, best_configurations, run_sweep

    grid = params.grid()
    targets = [
        SweepTarget(t.name, {kind: np.asarray(m) for kind, m in t.psms.items() if kind in grid.similarities}, t.layer, t.replicate)
        for t in params.targets
    ]
    sweep = run_sweep(targets, grid, restarts=params.restarts, repeats=params.repeats, seed=params.seed, progress=report)
    best = [{**row, "best_index": k} for k, row in enumerate(best_configurations(sweep.rows))]
    arrays: dict[str, np.ndarray] = {}
    for row in best:
        fit = sweep.joints[row["fit"]]
        k = row["best_index"]
        arrays.update({f"psm_{k}": fit.psm, f"features_{k}": fit.features, f"weights_{k}": fit.weights, f"target_{k}": fit.target})
    names = {str(t.layer): list(t.features) for t in params.targets if t.features}
    return JobOutput(SweepJobResult(rows=sweep.rows, best=best, arrays=arrays, label=params.label, names=names))


_EXAMPLE_PSM = [[1.0, 0.2, -0.4], [0.2, 1.0, 0.1], [-0.4, 0.1, 1.0]]

ENERGY_FIT = register(JobKind(
    "energy.fit", "one joint optimisation of abstract features, with its reference", EnergyFitJob, run_fit, EnergyFitResult,
    page="pages/energy.py", example={"target": _EXAMPLE_PSM, "features": ["a", "b", "c"], "dim": 2, "restarts": 2},
))
ENERGY_SWEEP = register(JobKind(
    "energy.sweep", "energy hyper-parameter search and perturbation grid", EnergySweepJob, run_sweep_job, SweepJobResult,
    page="pages/perturbation.py", wants_gpu=True,
    example={"targets": [{"name": "real", "layer": 0, "features": ["a", "b", "c"], "psms": {"cosine": _EXAMPLE_PSM}}],
             "kernels": ["riesz"], "similarities": ["cosine"], "dims": [2], "lambda_d": [100.0], "lambda_x": [10.0], "sigmas": [0.01],
             "restarts": 2, "repeats": 1},
))
