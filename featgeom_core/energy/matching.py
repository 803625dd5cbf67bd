"""Permutation matching of PSMs: the order of one feature set that best matches another's PSM.

``match_permutation(T, S)`` returns p with ``S[np.ix_(p, p)]`` as close as possible to T in
Frobenius norm; ``psm_distance(T, S)`` is that minimum distance divided by N^2.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

from featgeom_core.errors import InvalidParameter

Method = Literal["faq", "sort_greedy", "exact"]
EXACT_MAX_N = 8


def _check(T: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T, S = np.asarray(T, dtype=np.float64), np.asarray(S, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape != S.shape:
        raise InvalidParameter(f"need two square PSMs of the same size, got {T.shape} and {S.shape}")
    if not (np.isfinite(T).all() and np.isfinite(S).all()):
        raise InvalidParameter("PSMs contain NaN or infinite values")
    return T, S


def _cost(T: np.ndarray, S: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum((T - S[np.ix_(p, p)]) ** 2))


def _best_swaps(T: np.ndarray, S: np.ndarray, p: np.ndarray) -> np.ndarray:
    """2-opt: apply the best improving transposition until none improves."""
    p = p.copy()
    best = _cost(T, S, p)
    n = len(p)
    while True:
        best_pair, best_value = None, best
        for i in range(n - 1):
            for j in range(i + 1, n):
                p[i], p[j] = p[j], p[i]
                value = _cost(T, S, p)
                p[i], p[j] = p[j], p[i]
                if value < best_value - 1e-12:
                    best_pair, best_value = (i, j), value
        if best_pair is None:
            return p
        i, j = best_pair
        p[i], p[j] = p[j], p[i]
        best = best_value


def _row_signature(M: np.ndarray) -> np.ndarray:
    """The thesis's sort key: sum over p = 1..5 of the p-norm of each row."""
    return sum(np.linalg.norm(M, ord=p, axis=1) for p in range(1, 6))


def match_permutation(T: np.ndarray, S: np.ndarray, method: Method = "faq", restarts: int = 16, seed: int = 0) -> np.ndarray:
    """Permutation p (N,) of S's features minimising ||T - S[p][:, p]||_F.

    ``sort_greedy``: the thesis's Appendix A (sort both by row signature, pair the sorted orders,
    then greedy best swaps), with the composition done right: target feature a[k] takes S's b[k].
    ``faq``: scipy's FAQ quadratic-assignment solver from ``restarts`` random starts and the
    barycentre, each polished with 2-opt swaps (the default). ``exact``: all N! orders (N <= 8).
    """
    T, S = _check(T, S)
    n = T.shape[0]
    if method == "exact":
        if n > EXACT_MAX_N:
            raise InvalidParameter(f"exact matching enumerates N! orders; N = {n} > {EXACT_MAX_N}: use 'faq'")
        perms = np.asarray(list(itertools.permutations(range(n))))
        costs = ((T[None] - S[perms[:, :, None], perms[:, None, :]]) ** 2).sum(axis=(1, 2))
        return perms[int(np.argmin(costs))]
    if method == "sort_greedy":
        order_t, order_s = np.argsort(_row_signature(T), kind="stable"), np.argsort(_row_signature(S), kind="stable")
        p = np.empty(n, dtype=int)
        p[order_t] = order_s
        return _best_swaps(T, S, p)
    if method == "faq":
        from scipy.optimize import quadratic_assignment

        rng = np.random.default_rng(seed)
        candidates = [np.arange(n)]
        for start in ["barycenter"] + ["randomized"] * max(0, restarts - 1):
            options = {"maximize": True, "P0": start, "rng": np.random.default_rng(int(rng.integers(2**31)))}
            # maximising trace(T P S P^T) minimises ||T - P S P^T||_F
            candidates.append(np.asarray(quadratic_assignment(T, S, method="faq", options=options).col_ind))
        polished = [_best_swaps(T, S, p) for p in candidates]
        return min(polished, key=lambda p: _cost(T, S, p))
    raise InvalidParameter(f"unknown matching method {method!r}; use faq, sort_greedy or exact")


def psm_distance(T: np.ndarray, S: np.ndarray, method: Method = "faq") -> float:
    """min over permutations of ||T - S[p][:, p]||_F / N^2."""
    T, S = _check(T, S)
    p = match_permutation(T, S, method)
    return float(np.sqrt(_cost(T, S, p)) / T.shape[0] ** 2)
