"""The energy analysis's result types (frozen dataclasses; job results are stored by the store's
one mechanism, :mod:`featgeom_core.codec`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from featgeom_core.energy.params import JointConfig, ReoptConfig


@dataclass(frozen=True)
class JointResult:
    """Best restart of one joint configuration.

    ``features`` (N, dim); ``weights`` (N,) normalised importance weights; ``psm`` (N, N) of the
    features; ``error`` = ||psm - target||_F / N^2 (error per feature pair); ``energy`` E(X, w);
    ``objective`` the joint objective; ``objectives`` (restarts,); ``trace`` (iterations,) of the
    best restart's objective; ``minima`` (M, N, dim) and ``minima_weights`` (M, N): the features and
    weights of the M restarts that reach the best objective (within ``EQUAL_OBJECTIVE``, relative),
    the best first. Similarities and energies are unchanged by rotations and reflections, so a fit
    has many equally good minima, and a re-optimisation from each ends at its own distance.
    """

    config: JointConfig
    target: np.ndarray
    features: np.ndarray
    weights: np.ndarray
    psm: np.ndarray
    error: float
    energy: float
    objective: float
    objectives: np.ndarray
    trace: np.ndarray
    minima: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    minima_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def from_minimum(self, index: int) -> JointResult:
        """This fit with its ``index``-th equally good minimum (cycling through them) as its features
        and weights: a re-optimisation then starts there. Index 0, or a fit without minima, is itself."""
        if len(self.minima) == 0 or index % len(self.minima) == 0:
            return self
        k = index % len(self.minima)
        return replace(self, features=self.minima[k], weights=self.minima_weights[k])


@dataclass(frozen=True)
class ReoptResult:
    """One re-optimisation of a joint result (same fields, plus where it started).

    ``distance`` = ||psm(re-optimised) - target||_F / N^2: how far the energy alone moves the
    configuration away from the target's geometry.
    """

    joint: JointResult
    config: ReoptConfig
    start: np.ndarray
    features: np.ndarray
    psm: np.ndarray
    distance: float
    energy: float
    objective: float
    trace: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class ReferenceResult:
    """The best of ``restarts`` runs: ``X`` (N, dim) unit rows; ``energy`` = sum over unordered
    pairs i < j of K(x_i, x_j) (the Thomson convention); ``energies`` (restarts,) of every run."""

    X: np.ndarray
    energy: float
    energies: np.ndarray
    kernel: str
    s: float


@dataclass(frozen=True)
class MatchedReference:
    """A reference configuration's cosine PSM (N, N), reordered to best match a target, and
    ``distance`` = ||psm - target||_F / N^2 (NaN unless the target is a cosine PSM)."""

    psm: np.ndarray
    distance: float
    reference: ReferenceResult


@dataclass(frozen=True)
class SweepRun:
    """``rows`` (one per configuration and re-optimisation setting; see ``run_sweep``) and
    ``joints``, the joint fits the rows point to through their ``fit`` index."""

    rows: list[dict]
    joints: list[JointResult]


@dataclass(frozen=True)
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

    def summary(self) -> dict[str, Any]:
        """The fit's error per pair, energy, objective, weights and the reference's distance."""
        return {
            "error": self.joint.error,
            "energy": self.joint.energy,
            "objective": self.joint.objective,
            "weights": [round(float(w), 4) for w in self.joint.weights],
            "reference_distance": self.reference_distance,
        }


@dataclass(frozen=True)
class BestFit:
    """The arrays of one best configuration of a sweep: its abstract PSM (N, N), features (N, dim),
    weights (N,) and the target it fitted (N, N)."""

    psm: np.ndarray
    features: np.ndarray
    weights: np.ndarray
    target: np.ndarray


@dataclass(frozen=True)
class EnergySweepResult:
    """``rows``: one per (target, layer, configuration, lambda_x, sigma) (see ``run_sweep``); ``best``:
    the best configuration per (target, layer, similarity, kernel), each with a ``best_index`` k
    into ``fits``, its arrays; ``names``: feature names per layer."""

    rows: list[dict[str, Any]]
    best: list[dict[str, Any]]
    fits: list[BestFit] = field(default_factory=list)
    label: str = ""
    names: dict[str, list[str]] = field(default_factory=dict)
    probe_warning: str = ""

    def summary(self) -> dict[str, Any]:
        """Rows, the real targets' best configurations, the distances by layer against the controls, and
        the warning when the targets' probes do not beat chance."""
        from featgeom_core.energy.controls import control_summary

        keep = ("target", "layer", "similarity", "kernel", "dim", "lambda_d", "joint_error")
        real_best = [{k: b.get(k) for k in keep} for b in self.best if b["target"] == "real"]
        summary = {"rows": len(self.rows), "best_real": real_best, "distance_by_layer": control_summary(self.rows)}
        return {**summary, "warning": self.probe_warning} if self.probe_warning else summary
