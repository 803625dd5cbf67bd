"""The paper's four sparsity metrics (section 3) and what dictionary-learning users expect beside them.

With codes alpha (n, m), non-negative, and the averages over activations ||alpha||_p^p =
(1/n) sum_j sum_i alpha_ij^p and ||alpha||_inf = (1/n) sum_j max_i alpha_ij (the average largest
coefficient):

- N0 = (1/n) ||alpha||_0, the average number of non-zero coefficients;
- the final loss L(Phi) = (1/n)(||X - Phi alpha||^2 + lambda ||alpha||_1), not scale invariant;
- S_p = ||alpha||_p^p / ||alpha||_inf^p, the average coefficient norm (p = 1 by default);
- L_norm = L(Phi) / (lambda ||alpha||_inf), the normalised loss (= S_1 under perfect reconstruction).

Also: explained variance, dead atoms (never used), always-on atoms (used by more than half the
activations), per-atom usage, and a histogram of the non-zero coefficients.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.sparsity.coding import average_max
from featgeom_core.sparsity.result import SparseCode

ALWAYS_ON = 0.5  # an atom used by more than this fraction of activations


def sparsity_metrics(code: SparseCode, X: np.ndarray, p: float = 1.0, bins: int = 50) -> dict:
    """The metrics of ``code`` on the activations it coded, X (n, d) (uncentred: the code's centre
    is removed here). Returns floats ``n0``, ``final_loss``, ``s_p``, ``normalized_loss``,
    ``explained_variance``, ``lambda``, ``average_max``, ints ``dead_atoms``, ``always_on_atoms``,
    and arrays ``usage`` (m,) and ``histogram`` / ``histogram_edges`` of the non-zero coefficients."""
    if not p > 0:
        raise InvalidParameter(f"p must be positive, got {p}")
    X = np.asarray(X, dtype=np.float64)
    codes = code.codes
    if X.shape[0] != codes.shape[0]:
        raise DataError(f"the code has {codes.shape[0]} activations but X has {X.shape[0]}: code these activations first")
    centred = X - code.center
    residual = centred - codes @ code.dictionary.T.astype(np.float64)
    return metrics_from_parts(codes, float(np.sum(residual**2)), float(np.sum(centred**2)), code.lam, p, bins)


def metrics_from_parts(codes: scipy.sparse.csr_array, residual2: float, total2: float, lam: float, p: float = 1.0, bins: int = 50) -> dict:
    """The same metrics from codes (n, m), the summed squared residual and the summed squared
    (centred) activations: for streamed activations that are never held at once."""
    n, m = codes.shape
    mean_max = average_max(codes)
    if mean_max == 0:
        raise DataError(f"every coefficient is zero at lambda = {lam:.4g}: nothing to measure; use a smaller lambda")
    l1 = float(codes.sum()) / n
    final_loss = (residual2 + lam * float(codes.sum())) / n
    usage = np.bincount(codes.indices, minlength=m) / n
    values = codes.data.astype(np.float64)
    histogram, edges = np.histogram(values, bins=bins) if values.size else (np.zeros(bins), np.linspace(0, 1, bins + 1))
    return {
        "n0": codes.nnz / n,
        "final_loss": final_loss,
        "s_p": float(np.sum(values**p)) / n / mean_max**p,
        "p": p,
        "normalized_loss": final_loss / (lam * mean_max),
        "explained_variance": 1.0 - residual2 / total2 if total2 > 0 else float("nan"),
        "lambda": lam,
        "average_max": mean_max,
        "average_l1": l1,
        "dead_atoms": int(np.sum(usage == 0)),
        "always_on_atoms": int(np.sum(usage > ALWAYS_ON)),
        "usage": usage,
        "histogram": histogram.astype(np.int64),
        "histogram_edges": edges,
    }
