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
    if not (np.allclose(T, T.T, atol=1e-8) and np.allclose(S, S.T, atol=1e-8)):
        raise InvalidParameter("PSMs must be symmetric")
    return T, S


def _cost(T: np.ndarray, S: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum((T - S[np.ix_(p, p)]) ** 2))


def _swap_gains(T: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(N, N): the change of ||T - M||^2 when indices i and j of M swap (rows and columns), for
    every pair at once; T and M symmetric. For b outside {i, j} the swap changes row i's terms by
    2 (T_ib - T_jb)(M_ib - M_jb) (and as much again through the columns), so with G = T M:
    4 (G_ii + G_jj - G_ij - G_ji - [b = i, j terms]) plus the change on the diagonal pair."""
    G = T @ M
    g = np.diag(G)
    dT, dM = np.diag(T), np.diag(M)
    cross = g[:, None] + g[None, :] - G - G.T
    # remove b = i and b = j from the sum over b
    cross -= (dT[:, None] - T) * (dM[:, None] - M) + (T - dT[None, :]) * (M - dM[None, :])
    diagonal = (dT[:, None] - dM[None, :]) ** 2 + (dT[None, :] - dM[:, None]) ** 2 - (dT - dM)[:, None] ** 2 - (dT - dM)[None, :] ** 2
    gains = 4 * cross + diagonal
    np.fill_diagonal(gains, 0.0)
    return gains


def _best_swaps(T: np.ndarray, S: np.ndarray, p: np.ndarray) -> np.ndarray:
    """2-opt: apply the best improving transposition until none improves (all pairs scored at once)."""
    p = p.copy()
    for _ in range(10 * len(p) ** 2):  # each step strictly improves; the bound only guards against float noise
        gains = _swap_gains(T, S[np.ix_(p, p)])
        i, j = np.unravel_index(int(np.argmin(gains)), gains.shape)
        if gains[i, j] >= -1e-12 * max(1.0, _cost(T, S, p)):
            break
        p[i], p[j] = p[j], p[i]
    return p


def _row_signature(M: np.ndarray) -> np.ndarray:
    """The thesis's sort key: sum over p = 1..5 of the p-norm of each row."""
    return sum(np.linalg.norm(M, ord=p, axis=1) for p in range(1, 6))


def _sort_greedy(T: np.ndarray, S: np.ndarray) -> np.ndarray:
    order_t, order_s = np.argsort(_row_signature(T), kind="stable"), np.argsort(_row_signature(S), kind="stable")
    p = np.empty(T.shape[0], dtype=int)
    p[order_t] = order_s
    return _best_swaps(T, S, p)


def match_permutation(T: np.ndarray, S: np.ndarray, method: Method = "faq", restarts: int = 16, seed: int = 0) -> np.ndarray:
    """Permutation p (N,) of S's features minimising ||T - S[p][:, p]||_F.

    ``sort_greedy``: the thesis's Appendix A (sort both by row signature, pair the sorted orders,
    then greedy best swaps), with the composition done right: target feature a[k] takes S's b[k].
    ``faq`` (the default): scipy's FAQ quadratic-assignment solver from sort_greedy's answer, the
    barycentre and ``restarts - 1`` random starts, each polished with 2-opt swaps, and sort_greedy's
    answer itself; the best is kept, so it is never worse than sort_greedy (FAQ alone misses the
    planted permutation of about 1% of noisy N = 20 cases). ``exact``: all N! orders (N <= 8).
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
        return _sort_greedy(T, S)
    if method == "faq":
        from scipy.optimize import quadratic_assignment

        rng = np.random.default_rng(seed)
        greedy = _sort_greedy(T, S)
        candidates = [greedy, _best_swaps(T, S, np.arange(n))]
        starts: list[object] = [np.eye(n)[greedy], "barycenter"] + ["randomized"] * max(0, restarts - 1)
        for start in starts:
            options = {"maximize": True, "P0": start, "rng": np.random.default_rng(int(rng.integers(2**31)))}
            # maximising trace(T P S P^T) minimises ||T - P S P^T||_F
            candidates.append(_best_swaps(T, S, np.asarray(quadratic_assignment(T, S, method="faq", options=options).col_ind)))
        return min(candidates, key=lambda p: _cost(T, S, p))
    raise InvalidParameter(f"unknown matching method {method!r}; use faq, sort_greedy or exact")


def psm_distance(T: np.ndarray, S: np.ndarray, method: Method = "faq") -> float:
    """min over permutations of ||T - S[p][:, p]||_F / N^2."""
    T, S = _check(T, S)
    p = match_permutation(T, S, method)
    return float(np.sqrt(_cost(T, S, p)) / T.shape[0] ** 2)
