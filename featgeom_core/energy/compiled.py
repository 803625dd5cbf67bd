"""The CPU engine: the joint and re-optimisation objectives with closed-form gradients, and the
same L-BFGS as ``lbfgs.batched_lbfgs``, compiled with numba and run one problem per thread.

Why a second engine: a sweep is hundreds of tiny problems (N ~ 10 features, ~50 parameters).
Batched torch spends about 1 ms of operator dispatch and autograd bookkeeping per evaluation
whatever the batch size, and pays a batch-wide tail (the slowest problem sets the number of
evaluations). Compiled per-problem loops have neither cost. The torch engine (``joint.py``)
stays the definition of the objectives and the engine on CUDA; ``tests/test_energy_engines.py``
checks that these gradients equal torch autograd's and that both engines reach the same minima.

Problem layout, shared with ``joint.py`` (P = N * d_max + N parameters per problem):
- joint:  p = [y (N, d_max) row-major, u (N)]; x_i = y_i / |y_i| (cosine) or y_i (RBF), first
  ``dim`` coordinates only; weights softmax(b sin u) (learned) or 1/N (uniform).
- reopt:  p = [y (N, d_max), r (N)]; x_i = r_i y_i / |y_i|; weights fixed.
Per-problem scalars ``scal`` (B, 8 or 5), in the order of ``JOINT_FIELDS`` / ``REOPT_FIELDS``
(kernel: index into ``kernels.KERNELS``; similarity: 1 cosine, 2 RBF).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_core.config import cache_dir

try:  # numba is a runtime dependency; without it every problem runs on the torch engine
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised only in broken installs
    numba = None  # type: ignore[assignment]

_NUMBA_CONFIG: Any = numba.config if numba is not None else None
if _NUMBA_CONFIG is not None and not _NUMBA_CONFIG.CACHE_DIR and not os.access(Path(__file__).parent, os.W_OK):
    # Compiled code is cached next to this file; where that is read-only (an installed package,
    # a container's non-root user) it goes to the featgeom cache, which must be writable anyway.
    _NUMBA_CONFIG.CACHE_DIR = str(cache_dir() / "numba")

# numba's default threading layer aborts the process when two threads launch parallel work at
# once (two Streamlit sessions, say); one solve at a time is cheap at these sizes.
_LAUNCH = threading.Lock()

JOINT_FIELDS = ("kernel", "similarity", "lambda_d", "s", "rbf_c", "learned", "log_ratio_half", "dim")
REOPT_FIELDS = ("kernel", "lambda_x", "s", "huber_width", "dim")
_EXP, _LOG, _RIESZ = 0, 1, 2  # positions in kernels.KERNELS
_NO_SIMILARITY, _COSINE, _RBF = 0, 1, 2


def scalars(fields: tuple[str, ...], rows: list[dict]) -> np.ndarray:
    """Per-problem scalars (B, len(fields)) in the order the compiled objectives read them."""
    return np.asarray([[float(row[f]) for f in fields] for row in rows], dtype=np.float64).reshape(len(rows), len(fields))


def threads() -> int:
    """Threads the compiled engine runs problems on (numba's, 1 without numba)."""
    try:
        import numba
    except ImportError:
        return 1
    return int(numba.get_num_threads())


def available() -> bool:
    """Whether the compiled engine can run (numba imported)."""
    return numba is not None


if numba is not None:

    @njit(cache=True, fastmath=False)
    def _pair_terms(X, w, n, d, kernel, s, similarity, lam, rbf_c, T, gX, gw):  # pragma: no cover - compiled
        """E = sum_{i != j} K_ij w_i w_j, plus lam * sum_ij (S_ij - T_ij)^2 when ``similarity`` is
        cosine or RBF; adds d/dX into gX (N, d) and d/dw into gw (N,); returns the value."""
        energy = 0.0
        misfit = 0.0
        if similarity != _NO_SIMILARITY:
            for i in range(n):  # S_ii = 1 for both similarities
                misfit += (1.0 - T[i, i]) ** 2
        norms = np.empty(n)
        for i in range(n):
            acc = 0.0
            for k in range(d):
                acc += X[i, k] * X[i, k]
            norms[i] = max(math.sqrt(acc), 1e-300)
        sign_s = 1.0 if s > 0 else -1.0
        for i in range(n):
            for j in range(i + 1, n):
                q = 0.0
                dot = 0.0
                for k in range(d):
                    diff = X[i, k] - X[j, k]
                    q += diff * diff
                    dot += X[i, k] * X[j, k]
                q = max(q, 1e-300)
                cos = dot / (norms[i] * norms[j])
                wij = w[i] * w[j]
                # Coefficients of dcos/dx and dq/dx in the gradient of this pair's terms.
                a_cos = 0.0
                a_q = 0.0
                if kernel == _EXP:
                    K = math.exp(cos)
                    a_cos += 2.0 * wij * K
                elif kernel == _LOG:
                    K = -0.5 * math.log(q)
                    a_q += 2.0 * wij * (-0.5 / q)
                else:
                    K = sign_s * q ** (-0.5 * s)
                    a_q += 2.0 * wij * (-0.5 * s) * K / q
                energy += 2.0 * K * wij
                gw[i] += 2.0 * K * w[j]
                gw[j] += 2.0 * K * w[i]
                if similarity != _NO_SIMILARITY:
                    S = cos if similarity == _COSINE else math.exp(-q / rbf_c)
                    r_ij = S - T[i, j]
                    r_ji = S - T[j, i]
                    misfit += r_ij * r_ij + r_ji * r_ji
                    dS = lam * 2.0 * (r_ij + r_ji)
                    if similarity == _COSINE:
                        a_cos += dS
                    else:
                        a_q += dS * (-S / rbf_c)
                for k in range(d):
                    diff = X[i, k] - X[j, k]
                    ui = X[i, k] / norms[i]
                    uj = X[j, k] / norms[j]
                    gX[i, k] += a_cos * (uj - cos * ui) / norms[i] + a_q * 2.0 * diff
                    gX[j, k] += a_cos * (ui - cos * uj) / norms[j] - a_q * 2.0 * diff
        return energy + lam * misfit

    @njit(cache=True)
    def _unit_rows(p, n, d, d_max):  # pragma: no cover - compiled
        """The first N * d_max parameters as rows y_i (first d coordinates): (y_i / |y_i|, |y_i|)."""
        unit = np.empty((n, d))
        y_norm = np.empty(n)
        for i in range(n):
            acc = 0.0
            for k in range(d):
                acc += p[i * d_max + k] ** 2
            y_norm[i] = max(math.sqrt(acc), 1e-300)
            for k in range(d):
                unit[i, k] = p[i * d_max + k] / y_norm[i]
        return unit, y_norm

    @njit(cache=True)
    def _joint_value_grad(p, g, scal, T, w_fixed, norm_ref, n, d_max):  # pragma: no cover - compiled
        kernel = int(scal[0])
        similarity = int(scal[1])
        lam = scal[2]
        s = scal[3]
        rbf_c = scal[4]
        learned = scal[5] > 0.5
        b = scal[6]
        d = int(scal[7])
        unit, y_norm = _unit_rows(p, n, d, d_max)
        X = unit if similarity == _COSINE else p[: n * d_max].reshape(n, d_max)[:, :d].copy()
        u0 = n * d_max
        w = np.empty(n)
        if learned:
            top = -1e300
            for i in range(n):
                w[i] = b * math.sin(p[u0 + i])
                top = max(top, w[i])
            total = 0.0
            for i in range(n):
                w[i] = math.exp(w[i] - top)
                total += w[i]
            for i in range(n):
                w[i] /= total
        else:
            for i in range(n):
                w[i] = 1.0 / n
        gX = np.zeros((n, d))
        gw = np.zeros(n)
        value = _pair_terms(X, w, n, d, kernel, s, similarity, lam, rbf_c, T, gX, gw)
        g[:] = 0.0
        for i in range(n):
            radial = 0.0
            if similarity == _COSINE:
                for k in range(d):
                    radial += gX[i, k] * X[i, k]
            for k in range(d):
                g[i * d_max + k] = (gX[i, k] - radial * X[i, k]) / y_norm[i] if similarity == _COSINE else gX[i, k]
        if learned:
            mean = 0.0
            for i in range(n):
                mean += w[i] * gw[i]
            for i in range(n):
                g[u0 + i] = w[i] * (gw[i] - mean) * b * math.cos(p[u0 + i])
        return value

    @njit(cache=True)
    def _reopt_value_grad(p, g, scal, T, w, norm_ref, n, d_max):  # pragma: no cover - compiled
        kernel = int(scal[0])
        lam_x = scal[1]
        s = scal[2]
        width = scal[3]
        d = int(scal[4])
        r0 = n * d_max
        unit, y_norm = _unit_rows(p, n, d, d_max)
        X = np.empty((n, d))
        for i in range(n):
            for k in range(d):
                X[i, k] = p[r0 + i] * unit[i, k]
        gX = np.zeros((n, d))
        gw = np.zeros(n)
        value = _pair_terms(X, w, n, d, kernel, s, _NO_SIMILARITY, 0.0, 1.0, T, gX, gw)
        g[:] = 0.0
        for i in range(n):
            radius = p[r0 + i]
            gap = abs(radius) - norm_ref[i]
            smooth = math.sqrt(gap * gap + (width * norm_ref[i]) ** 2)
            value += lam_x * smooth
            radial = 0.0
            for k in range(d):
                radial += gX[i, k] * unit[i, k]
            sign_r = 1.0 if radius > 0 else (-1.0 if radius < 0 else 0.0)
            g[r0 + i] = radial + lam_x * gap / smooth * sign_r
            for k in range(d):
                g[i * d_max + k] = radius * (gX[i, k] - radial * unit[i, k]) / y_norm[i]
        return value

    @njit(cache=True)
    def _value_grad(kind, p, g, scal, T, w, norm_ref, n, d_max):  # pragma: no cover - compiled
        if kind == 0:
            return _joint_value_grad(p, g, scal, T, w, norm_ref, n, d_max)
        return _reopt_value_grad(p, g, scal, T, w, norm_ref, n, d_max)

    @njit(cache=True)
    def _lbfgs_one(
        kind, x, scal, T, w, norm_ref, n, d_max, max_iter, history, tol_grad, tol_change, max_line_search, armijo, trace
    ):  # pragma: no cover - compiled
        """``batched_lbfgs`` for one problem (same directions, line search and stopping rules);
        x is updated in place; returns (value, iterations, converged)."""
        size = x.shape[0]
        g = np.empty(size)
        f = _value_grad(kind, x, g, scal, T, w, norm_ref, n, d_max)
        trace[0] = f
        S = np.zeros((history, size))
        Y = np.zeros((history, size))
        rho = np.zeros(history)
        alpha = np.zeros(history)
        stored = 0
        newest = -1
        gamma = 1.0
        trial = np.empty(size)
        g_trial = np.empty(size)
        q = np.empty(size)
        direction = np.empty(size)
        iterations = 0
        active = math.isfinite(f)
        for it in range(1, max_iter + 1):
            g_max = 0.0
            for k in range(size):
                g_max = max(g_max, abs(g[k]))
            if not active or g_max <= tol_grad * max(abs(f), 1.0):
                break
            iterations = it
            q[:] = g
            for m in range(stored):
                h = (newest - m + history) % history
                a = 0.0
                for k in range(size):
                    a += S[h, k] * q[k]
                a *= rho[h]
                alpha[h] = a
                for k in range(size):
                    q[k] -= a * Y[h, k]
            if stored > 0:
                for k in range(size):
                    q[k] *= gamma
            else:
                g_norm = 0.0
                for k in range(size):
                    g_norm += g[k] * g[k]
                g_norm = max(math.sqrt(g_norm), 1e-30)
                for k in range(size):
                    q[k] /= g_norm
            for m in range(stored - 1, -1, -1):
                h = (newest - m + history) % history
                beta = 0.0
                for k in range(size):
                    beta += Y[h, k] * q[k]
                beta *= rho[h]
                for k in range(size):
                    q[k] += S[h, k] * (alpha[h] - beta)
            slope = 0.0
            for k in range(size):
                direction[k] = -q[k]
                slope += g[k] * direction[k]
            if slope >= 0:  # not a descent direction: steepest descent
                slope = 0.0
                for k in range(size):
                    direction[k] = -g[k]
                    slope -= g[k] * g[k]
            step = 1.0
            accepted = False
            f_trial = f
            for _ in range(max_line_search):
                for k in range(size):
                    trial[k] = x[k] + step * direction[k]
                f_trial = _value_grad(kind, trial, g_trial, scal, T, w, norm_ref, n, d_max)
                if math.isfinite(f_trial) and f_trial <= f + armijo * step * slope:
                    accepted = True
                    break
                curvature = f_trial - f - slope * step
                guess = -slope * step * step / (2.0 * curvature) if (math.isfinite(f_trial) and curvature > 0) else 0.1 * step
                step = min(max(guess, 0.1 * step), 0.5 * step)
            if not accepted:  # no decrease at any step length: working precision reached
                trace[it] = f
                active = False
                continue
            tiny = abs(f - f_trial) <= tol_change * max(abs(f), 1.0)
            sy = 0.0
            ss = 0.0
            yy = 0.0
            for k in range(size):
                s_k = trial[k] - x[k]
                y_k = g_trial[k] - g[k]
                sy += s_k * y_k
                ss += s_k * s_k
                yy += y_k * y_k
            if not tiny and sy > 1e-12 * math.sqrt(ss) * math.sqrt(yy):
                newest = (newest + 1) % history
                for k in range(size):
                    S[newest, k] = trial[k] - x[k]
                    Y[newest, k] = g_trial[k] - g[k]
                rho[newest] = 1.0 / sy
                gamma = sy / max(yy, 1e-300)
                stored = min(stored + 1, history)
            x[:] = trial
            g[:] = g_trial
            f = f_trial
            trace[it] = f
            if tiny:
                active = False
        for it in range(iterations + 1, trace.shape[0]):
            trace[it] = f
        g_max = 0.0
        for k in range(size):
            g_max = max(g_max, abs(g[k]))
        return f, iterations, g_max <= tol_grad * max(abs(f), 1.0)

    @njit(cache=True, parallel=True)
    def _solve_all(
        kind, X0, scal, T, w, norm_ref, n, d_max, max_iter, history, tol_grad, tol_change, max_line_search, armijo
    ):  # pragma: no cover - compiled
        batch = X0.shape[0]
        X = X0.copy()
        f = np.empty(batch)
        iterations = np.zeros(batch, dtype=np.int64)
        converged = np.zeros(batch, dtype=np.bool_)
        trace = np.empty((batch, max_iter + 1))
        for b in prange(batch):
            f[b], iterations[b], converged[b] = _lbfgs_one(
                kind,
                X[b],
                scal[b],
                T[b],
                w[b],
                norm_ref[b],
                n,
                d_max,
                max_iter,
                history,
                tol_grad,
                tol_change,
                max_line_search,
                armijo,
                trace[b],
            )
        return X, f, trace, iterations, converged

    @njit(cache=True, parallel=True)
    def _values_and_grads(kind, P, scal, T, w, norm_ref, n, d_max):  # pragma: no cover - compiled
        batch = P.shape[0]
        f = np.empty(batch)
        G = np.empty_like(P)
        for b in prange(batch):
            f[b] = _value_grad(kind, P[b], G[b], scal[b], T[b], w[b], norm_ref[b], n, d_max)
        return f, G


KIND = {"joint": 0, "reopt": 1}


def value_and_grad(
    kind: str, P: np.ndarray, scal: np.ndarray, T: np.ndarray, w: np.ndarray, norm_ref: np.ndarray, n: int, d_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """Objective values (B,) and gradients (B, P) at points P (B, P); for checks against autograd."""
    with _LAUNCH:
        return _values_and_grads(KIND[kind], np.ascontiguousarray(P, dtype=np.float64), scal, T, w, norm_ref, n, d_max)


def solve(
    kind: str,
    x0: np.ndarray,
    scal: np.ndarray,
    T: np.ndarray,
    w: np.ndarray,
    norm_ref: np.ndarray,
    n: int,
    d_max: int,
    max_iter: int,
    tol_grad: float,
    tol_change: float,
    history: int = 10,
    max_line_search: int = 30,
    armijo: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Minimise B independent problems in parallel threads.

    ``x0`` (B, P); ``scal`` (B, 8) per-problem scalars; ``T`` (B, N, N) targets (joint) ;
    ``w`` (B, N) fixed weights and ``norm_ref`` (B, N) joint norms n_i (reopt). Returns the final
    points (B, P), values (B,), trace (iterations + 1, B), the largest iteration count, and
    converged (B,) as in ``batched_lbfgs``.
    """
    contiguous = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    with _LAUNCH:
        X, f, trace, iterations, converged = _solve_all(
            KIND[kind],
            contiguous(x0),
            contiguous(scal),
            contiguous(T),
            contiguous(w),
            contiguous(norm_ref),
            n,
            d_max,
            max_iter,
            history,
            tol_grad,
            tol_change,
            max_line_search,
            armijo,
        )
    used = int(iterations.max()) if len(iterations) else 0
    return X, f, np.ascontiguousarray(trace[:, : used + 1].T), used, converged
