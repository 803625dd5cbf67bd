"""Validating the metrics on data of known sparsity (section 3.1, Appendix D and E), and the
calibration of a real activation set against them (the a whose sparse-linear data scores the same).

Every data set is centred and scaled to mean norm 1 before coding, so that final losses compare
across data sets (the paper's Appendix D); the scale-invariant metrics do not change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from featgeom_core.progress import Progress
from featgeom_core.sparsity.coding import sparse_code
from featgeom_core.sparsity.data import control_data, sparse_linear_data, unit_mean_norm
from featgeom_core.sparsity.metrics import sparsity_metrics
from featgeom_core.sparsity.params import SparseCodingParams, SyntheticParams

SCALARS = ("n0", "final_loss", "s_p", "normalized_loss", "explained_variance", "lambda", "average_max", "dead_atoms", "always_on_atoms")


def synthetic_activations(data: SyntheticParams, planted: dict | None = None) -> np.ndarray:
    """The data set ``data`` describes, centred and at mean norm 1: (n, d) float32."""
    if data.dataset == "sparse_linear":
        X, _ = sparse_linear_data(data.d, data.a, data.n, data.sigma, data.n_features(), data.seed, planted=planted)
    else:
        X = control_data(data.dataset, data.d, data.n, data.seed)
    return unit_mean_norm(X)


def measure_synthetic(
    data: SyntheticParams, coding: SparseCodingParams, p: float = 1.0, progress: Progress | None = None
) -> dict[str, Any]:
    """Code one synthetic data set and measure it: a row with the data set, a, the truth a/2 and
    the planted coefficients' own S1 (sparse-linear only), every metric, the coefficient histogram
    and the seconds spent coding."""
    planted: dict = {}
    X = synthetic_activations(data, planted)
    start = time.perf_counter()
    code = sparse_code(X, coding, progress)
    seconds = time.perf_counter() - start
    metrics = sparsity_metrics(code, X, p)
    sparse = data.dataset == "sparse_linear"
    return {
        "dataset": data.dataset,
        "a": data.a if sparse else None,
        "truth": data.a / 2 if sparse else None,
        "planted_s1": planted.get("s1"),
        "d": data.d,
        "n": data.n,
        "dictionary": code.dictionary_size,
        **{name: float(metrics[name]) for name in SCALARS},
        "p": p,
        "rounds": len(code.lambdas) - 1,
        "seconds": seconds,
        "histogram": metrics["histogram"].tolist(),
        "histogram_edges": metrics["histogram_edges"].tolist(),
    }


def calibrated_a(curve: Sequence[dict[str, Any]], value: float, metric: str = "normalized_loss") -> float | None:
    """The a at which the sparse-linear ``metric`` equals ``value`` (linear interpolation between
    the measured a; the metric rises with a). None when ``value`` lies outside the curve's range."""
    points = sorted((row["a"], row[metric]) for row in curve if row["dataset"] == "sparse_linear")
    for (a0, v0), (a1, v1) in zip(points, points[1:]):
        if min(v0, v1) <= value <= max(v0, v1) and v1 != v0:
            return float(a0 + (value - v0) * (a1 - a0) / (v1 - v0))
    return None
