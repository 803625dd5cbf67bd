"""The paper's greedy coefficient step (Appendix C), compiled.

For each activation x: take the atom f with the largest dot product with the residual, set its
coefficient to x.f - lambda/2 (the L1 projection); if that is positive, subtract it from the
residual and repeat with the atom of the next largest dot product among those not yet taken; stop at
the first non-positive value. Coefficients are non-negative and each atom is taken at most once
("the next largest"): letting an atom be taken again turns the step into matching pursuit, which
re-takes the same few atoms with ever smaller increments and does not stop.

The dot products of the residual with every atom are kept up to date through the Gram matrix
(c <- c - v G[i] after subtracting v f_i), so a step costs O(m) instead of O(d m); the result is the
same as recomputing them (``greedy_reference`` is that plain loop, used by the tests).
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse

try:
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba is a pinned dependency
    numba = None  # type: ignore[assignment]

_LAUNCH = threading.Lock()  # numba's default threading layer is not safe for concurrent launches
_TAKEN = -1e30  # the dot product of an atom already taken: never the largest
_BLOCK = 16


def greedy_reference(X: np.ndarray, Phi: np.ndarray, lam: float, max_atoms: int) -> np.ndarray:
    """The plain per-column loop of Appendix C, recomputing every dot product: codes (n, m) float64.

    X (n, d); Phi (d, m) with unit columns; at most ``max_atoms`` atoms per row.
    """
    X = np.asarray(X, dtype=np.float64)
    Phi = np.asarray(Phi, dtype=np.float64)
    codes = np.zeros((X.shape[0], Phi.shape[1]))
    for j in range(X.shape[0]):
        residual = X[j].copy()
        taken = np.zeros(Phi.shape[1], dtype=bool)
        for _ in range(min(max_atoms, Phi.shape[1])):
            dots = np.where(taken, -np.inf, Phi.T @ residual)
            i = int(np.argmax(dots))
            value = dots[i] - lam / 2
            if value <= 0:
                break
            codes[j, i] = value
            taken[i] = True
            residual -= value * Phi[:, i]
    return codes


if numba is not None:

    @njit(parallel=True, cache=True, fastmath=True)
    def _greedy(C, G, norms2, half, taken, max_atoms, idx, val, count, residual2):  # pragma: no cover - compiled
        # The dot products live in blocks of _BLOCK (m is padded to a multiple of it with zero atoms,
        # which can never give a positive coefficient) with a running maximum per block, so finding
        # the largest is a scan of m / _BLOCK block maxima and one block, and the O(m) update is a
        # vectorisable loop. Data are checked finite beforehand (fastmath assumes no NaN); taken
        # atoms get the large negative ``taken``. ``half`` (lambda / 2) and ``taken`` come in C's
        # dtype so that the loops stay in one precision.
        n, m = C.shape
        nblocks = m // _BLOCK
        for j in prange(n):
            c = C[j].copy()
            block_max = np.empty(nblocks, dtype=C.dtype)
            for b in range(nblocks):
                top = c[b * _BLOCK]
                for i in range(b * _BLOCK + 1, (b + 1) * _BLOCK):
                    top = max(top, c[i])
                block_max[b] = top
            k = 0
            while k < max_atoms:
                best_block = 0
                top = block_max[0]
                for b in range(1, nblocks):
                    if block_max[b] > top:
                        top = block_max[b]
                        best_block = b
                value = top - half
                if value <= 0.0:
                    break
                best = best_block * _BLOCK
                for i in range(best_block * _BLOCK, (best_block + 1) * _BLOCK):
                    if c[i] == top:
                        best = i
                        break
                idx[j, k] = best
                val[j, k] = value
                k += 1
                c[best] = taken  # each atom at most once
                row = G[best]
                for b in range(nblocks):
                    top = taken
                    for i in range(b * _BLOCK, (b + 1) * _BLOCK):
                        ci = c[i] - value * row[i]
                        c[i] = ci
                        top = max(top, ci)
                    block_max[b] = top
            count[j] = k
            # ||x - sum a_i f_i||^2 = ||x||^2 - 2 sum a_i c0_i + sum_ik a_i a_k G_ik
            dot_sum = 0.0
            quad = 0.0
            for s in range(k):
                dot_sum += val[j, s] * C[j, idx[j, s]]
                for t in range(k):
                    quad += val[j, s] * val[j, t] * G[idx[j, s], idx[j, t]]
            residual2[j] = max(norms2[j] - 2.0 * dot_sum + quad, 0.0)


def greedy_codes(
    X: np.ndarray,
    Phi: np.ndarray,
    lam: float,
    max_atoms: int | None = None,
    dtype: type = np.float32,
    chunk: int = 1024,
) -> tuple[scipy.sparse.csr_array, np.ndarray]:
    """The greedy step for every row of X (n, d) against Phi (d, m) with unit columns.

    Returns ``(codes (n, m) CSR, residual2 (n,))`` with ``residual2[j]`` = ||x_j - Phi alpha_j||^2.
    ``max_atoms``: atoms per row at most (default: no cap but m). Rows are coded ``chunk`` at a time,
    which bounds memory. ``dtype``: float32 (fast) or float64 (to compare with ``greedy_reference``).
    """
    X = np.ascontiguousarray(X, dtype=dtype)
    m = Phi.shape[1]
    padded = np.zeros((Phi.shape[0], -(-m // _BLOCK) * _BLOCK), dtype=dtype)
    padded[:, :m] = Phi
    G = np.ascontiguousarray(padded.T @ padded)
    cap = int(m if max_atoms is None else min(max_atoms, m))
    parts, residuals = [], []
    for start in range(0, X.shape[0], chunk):
        rows = X[start : start + chunk]
        C = rows @ padded  # (rows, m padded): dot products of every activation with every atom
        norms2 = np.einsum("nd,nd->n", rows, rows, dtype=np.float64)
        idx = np.zeros((len(rows), cap), dtype=np.int32)
        val: np.ndarray = np.zeros((len(rows), cap), dtype=dtype)
        count = np.zeros(len(rows), dtype=np.int32)
        residual2 = np.zeros(len(rows), dtype=np.float64)
        with _LAUNCH:
            _greedy(C, G, norms2, dtype(lam / 2), dtype(_TAKEN), cap, idx, val, count, residual2)
        keep = np.arange(cap)[None, :] < count[:, None]
        indptr = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        parts.append(scipy.sparse.csr_array((val[keep], idx[keep], indptr), shape=(len(rows), m)))
        residuals.append(residual2)
    codes = parts[0] if len(parts) == 1 else scipy.sparse.vstack(parts, format="csr")
    return scipy.sparse.csr_array(codes), np.concatenate(residuals)


if numba is not None:

    @njit(parallel=True, cache=True)
    def _add_code_statistics(indptr, indices, data, X, weight, parts, A, Bt):  # pragma: no cover - compiled
        # A[i] += weight * sum_j alpha_ji alpha_j and Bt[i] += weight * sum_j alpha_ji x_j; each
        # thread owns a range of atoms i (rows of A and Bt), so no two threads write one entry.
        n, d = X.shape
        m = A.shape[0]
        for part in prange(parts):
            lo, hi = part * m // parts, (part + 1) * m // parts
            for j in range(n):
                for s in range(indptr[j], indptr[j + 1]):
                    i = indices[s]
                    if i < lo or i >= hi:
                        continue
                    a = weight * data[s]
                    row = A[i]
                    for t in range(indptr[j], indptr[j + 1]):
                        row[indices[t]] += a * data[t]
                    target = Bt[i]
                    for k in range(d):
                        target[k] += a * X[j, k]


def add_code_statistics(codes, X: np.ndarray, weight: float, A: np.ndarray, Bt: np.ndarray) -> None:
    """In place: A (m, m) += weight * alpha^T alpha and Bt (m, d) += weight * alpha^T X, for CSR codes
    (n, m) of X (n, d); O(sum of (atoms per row)^2 + atoms x d) instead of a dense product."""
    with _LAUNCH:
        _add_code_statistics(
            codes.indptr,
            codes.indices,
            codes.data.astype(A.dtype),
            np.ascontiguousarray(X, dtype=A.dtype),
            A.dtype.type(weight),
            numba.get_num_threads(),
            A,
            Bt,
        )
