"""Pairwise similarity matrices (PSMs) of feature directions, the permuted control, de-duplication."""

from __future__ import annotations

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.params import Similarity
from featgeom_core.probing.result import DedupResult


def psm(X: np.ndarray, kind: Similarity = "cosine", rbf_c: float = 200.0) -> np.ndarray:
    """Pairwise similarity matrix of the rows of X (N, d): (N, N), symmetric.

    ``cosine``: x_i . x_j / (|x_i| |x_j|), unit diagonal (a zero row gives zeros).
    ``rbf``: exp(-|x_i - x_j|^2 / rbf_c), so identical vectors give 1; directions are used
    unnormalised, so norms matter (``rbf_c`` is in squared activation-space units).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise InvalidParameter(f"psm needs a 2-D array of directions (N, d), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InvalidParameter("directions contain NaN or infinite values")
    if kind == "cosine":
        norms = np.linalg.norm(X, axis=1)
        unit = np.divide(X, norms[:, None], out=np.zeros_like(X), where=norms[:, None] > 0)
        similarity = np.clip(unit @ unit.T, -1.0, 1.0)
        np.fill_diagonal(similarity, np.where(norms > 0, 1.0, 0.0))
        return similarity
    if kind == "rbf":
        if not rbf_c > 0:
            raise InvalidParameter(f"rbf_c must be positive, got {rbf_c}")
        squared = np.sum(X**2, axis=1)
        distances = np.maximum(squared[:, None] + squared[None, :] - 2 * X @ X.T, 0.0)
        similarity = np.exp(-distances / rbf_c)
        np.fill_diagonal(similarity, 1.0)
        return (similarity + similarity.T) / 2
    raise InvalidParameter(f"unknown similarity {kind!r}; use 'cosine' or 'rbf'")


def permuted_control(X: np.ndarray, seed: int) -> np.ndarray:
    """The thesis's control: each direction's coordinates permuted independently. (N, d) -> (N, d).

    Keeps every direction's norm and value distribution and destroys alignment between them.
    """
    X = np.asarray(X)
    rng = np.random.default_rng(seed)
    return np.take_along_axis(X, rng.permuted(np.tile(np.arange(X.shape[1]), (X.shape[0], 1)), axis=1), axis=1)


def dedup(similarity: np.ndarray, threshold: float) -> DedupResult:
    """Greedy de-duplication: scan features in order; drop one whose similarity to an
    already-kept feature exceeds ``threshold`` (signed: anti-parallel features are not duplicates)."""
    similarity = np.asarray(similarity)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise InvalidParameter(f"dedup needs a square PSM, got shape {similarity.shape}")
    kept: list[int] = []
    dropped: list[tuple[int, int, float]] = []
    for i in range(similarity.shape[0]):
        duplicates = [(similarity[i, k], k) for k in kept if similarity[i, k] > threshold]
        if duplicates:
            value, k = max(duplicates)
            dropped.append((i, k, float(value)))
        else:
            kept.append(i)
    return DedupResult(kept=kept, dropped=dropped)


def psm_departure(real: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute off-diagonal difference between two PSMs of the same features."""
    real, reference = np.asarray(real), np.asarray(reference)
    if real.shape != reference.shape:
        raise InvalidParameter(f"PSM shapes differ: {real.shape} vs {reference.shape}")
    off = ~np.eye(real.shape[0], dtype=bool)
    return float(np.abs(real - reference)[off].mean()) if off.any() else 0.0
