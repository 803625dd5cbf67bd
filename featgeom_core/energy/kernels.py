"""Pair kernels and the weighted energy of the thesis (sections 3.3-3.4).

E(X, w) = sum over ordered pairs i != j of K(x_i, x_j) w~_i w~_j, with w~ the normalised
importance weights. The diagonal (i = j) is excluded: K(x, x) is infinite for the Riesz and
-log kernels and a constant for exp. Each unordered pair is counted twice, so with uniform
weights E = 2 / N^2 * (the usual Thomson-style energy over unordered pairs).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from featgeom_core.errors import InvalidParameter

Kernel = Literal["exp", "log", "riesz"]
KERNELS: tuple[str, ...] = ("exp", "log", "riesz")


def kernel_index(kernel: str) -> int:
    """Position of a kernel in ``KERNELS``; raises InvalidParameter for an unknown one."""
    if kernel not in KERNELS:
        raise InvalidParameter(f"unknown kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    return KERNELS.index(kernel)


def pair_kernels(X: torch.Tensor, s: torch.Tensor | float = 1.0) -> torch.Tensor:
    """All three kernels for a batch of configurations: X (B, N, D) -> (3, B, N, N), zero diagonal.

    exp: exp(cos(x_i, x_j)); log: -log|x_i - x_j|; riesz: sgn(s) |x_i - x_j|^(-s).
    """
    n = X.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=X.device)
    diff = X[:, :, None, :] - X[:, None, :, :]
    squared = (diff * diff).sum(-1)
    # Keep the (excluded) diagonal away from 0 so gradients stay finite.
    squared = torch.where(eye, torch.ones_like(squared), squared.clamp_min(1e-300))
    s = torch.as_tensor(s, dtype=X.dtype, device=X.device)
    if s.ndim == 1:  # one exponent per configuration
        s = s[:, None, None]
    unit = X / X.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    cosine = unit @ unit.transpose(1, 2)
    k_exp = torch.exp(cosine)
    k_log = -0.5 * torch.log(squared)
    k_riesz = torch.sign(s) * squared.pow(-0.5 * s)
    stacked = torch.stack([k_exp, k_log, k_riesz])
    return stacked.masked_fill(eye, 0.0)


def weighted_energy(K: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_{i != j} K_ij w_i w_j for K (B, N, N) with zero diagonal and weights (B, N) -> (B,)."""
    return torch.einsum("bij,bi,bj->b", K, weights, weights)


def energy(X: np.ndarray, weights: np.ndarray | None = None, kernel: Kernel = "riesz", s: float = 1.0) -> float:
    """The energy of one configuration X (N, D) with normalised weights (N,) (uniform if None).

    Sum over ordered pairs i != j (see the module docstring for the diagonal and the counting).
    """
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))[None]
    n = X_t.shape[1]
    w = (
        torch.full((1, n), 1.0 / n, dtype=torch.float64)
        if weights is None
        else torch.as_tensor(np.asarray(weights, dtype=np.float64))[None]
    )
    if kernel == "riesz" and s == 0:
        raise InvalidParameter("Riesz s = 0 is the -log kernel: use kernel='log'")
    K = pair_kernels(X_t, float(s))[kernel_index(kernel)]
    return float(weighted_energy(K, w)[0])
