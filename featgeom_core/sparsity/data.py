"""Synthetic activations with a known level of sparsity, and the non-sparse controls (Deng, Tao
and Benton 2023, Appendix D).

Sparse-linear data: ``n_features`` (default 4d) unit feature vectors uniform on the sphere; each
coefficient uniform on [0, 1] with probability a / n_features, else 0; the proto-activations
x = sum_i alpha_i f_i are centred and Gaussian noise of variance a sigma^2 / d is added. Each active
feature is weighted by a U(0, 1) factor, so the "true" value of a sparsity metric is a / 2.

Controls, each scaled to identity covariance: a standard Gaussian (not sparse), a heavy-tailed
isotropic distribution (a Gaussian direction with a Cauchy-distributed norm: heavy-tailed, not
sparse) and a Rademacher distribution (sparse-looking, but not a sparse linear combination).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from featgeom_core.errors import InvalidParameter

ControlKind = Literal["gaussian", "heavy_tailed", "rademacher"]
CONTROL_KINDS: tuple[str, ...] = ("gaussian", "heavy_tailed", "rademacher")
ROWS_PER_CHUNK = 2048


def sparse_linear_data(
    d: int,
    a: float,
    n: int,
    sigma: float = 0.1,
    n_features: int | None = None,
    seed: int = 0,
    planted: dict | None = None,
) -> tuple[np.ndarray, float]:
    """``(X (n, d) float32, truth = a / 2)``: sparse-linear activations with ``a`` features active
    on average out of ``n_features`` (default 4d).

    ``planted`` (optional, filled in): ``features`` (n_features, d), and the metrics of the planted
    coefficients themselves, ``s1`` (sum over the average largest) and ``n0``. The paper's a / 2
    ignores that the largest of few U(0, 1) coefficients is well below 1, so at small a the planted
    S1 exceeds a / 2 (for a = 2, about 1.75)."""
    n_features = 4 * d if n_features is None else int(n_features)
    if d < 1 or n < 1:
        raise InvalidParameter(f"need d >= 1 and n >= 1, got d = {d}, n = {n}")
    if not 0 < a < n_features:
        raise InvalidParameter(f"a (features active on average) must be in (0, {n_features}) for {n_features} features, got {a}")
    if sigma < 0:
        raise InvalidParameter(f"the noise level sigma must be >= 0, got {sigma}")
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_features, d))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    proto = np.empty((n, d))
    l1 = largest = nonzero = 0.0
    for start in range(0, n, ROWS_PER_CHUNK):  # bounded memory: (chunk, n_features) at a time
        rows = min(ROWS_PER_CHUNK, n - start)
        active = rng.random((rows, n_features), dtype=np.float32) < a / n_features
        coefficients = active * rng.random((rows, n_features), dtype=np.float32)
        proto[start : start + rows] = coefficients @ features
        l1 += float(coefficients.sum())
        largest += float(coefficients.max(axis=1).sum())
        nonzero += float(active.sum())
    if planted is not None:
        planted.update(features=features, s1=l1 / largest if largest else float("nan"), n0=nonzero / n)
    proto -= proto.mean(axis=0)
    X = proto + rng.normal(scale=np.sqrt(a * sigma**2 / d), size=proto.shape)
    return X.astype(np.float32), a / 2


def control_data(kind: ControlKind, d: int, n: int, seed: int = 0) -> np.ndarray:
    """A non-sparse control (n, d) float32 with identity covariance (empirically, for the
    heavy-tailed one, whose norm has no finite variance)."""
    if d < 1 or n < 1:
        raise InvalidParameter(f"need d >= 1 and n >= 1, got d = {d}, n = {n}")
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        X = rng.normal(size=(n, d))
    elif kind == "heavy_tailed":
        direction = rng.normal(size=(n, d))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        X = direction * np.abs(rng.standard_cauchy(size=(n, 1)))
        X *= np.sqrt(d / np.mean(np.sum(X**2, axis=1)))  # isotropic, so this makes the covariance the identity
    elif kind == "rademacher":
        X = rng.choice(np.asarray([-1.0, 1.0]), size=(n, d))
    else:
        raise InvalidParameter(f"unknown control {kind!r}; use one of {', '.join(CONTROL_KINDS)}")
    return X.astype(np.float32)


def unit_mean_norm(X: np.ndarray) -> np.ndarray:
    """X centred and scaled to mean L2 norm 1 (the scale for comparing final losses across datasets)."""
    centred = np.asarray(X, dtype=np.float64) - np.mean(X, axis=0)
    return (centred / np.mean(np.linalg.norm(centred, axis=1))).astype(np.float32)
