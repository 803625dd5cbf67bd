"""Non-negative FISTA for the coefficient step (the solver of Yun et al., whom the paper builds on):
for each activation x, minimise ||x - Phi alpha||^2 + lambda ||alpha||_1 over alpha >= 0.

All activations at once as one batched problem in torch (CUDA when present): gradient
2 (alpha G - C) with G = Phi^T Phi and C = X Phi, step 1/L with L = 2 ||G||_2, and the prox
max(0, v - lambda / L). Dense in (n, m), so on a CPU it suits moderate sizes; on a GPU it is fast.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch

from featgeom_core.config import resolve_device

CHUNK = 4096  # activations per batched solve (bounds the dense (chunk, m) iterates)


def fista_codes(
    X: np.ndarray, dictionary: np.ndarray, lam: float, iterations: int, device: str = "auto", tolerance: float = 1e-6
) -> tuple[scipy.sparse.csr_array, np.ndarray]:
    """Codes (n, m) CSR of X (n, d) against ``dictionary`` (d, m), and each row's squared residual (n,).
    Stops early when no coefficient moves by more than ``tolerance`` x the largest one."""
    torch_device = resolve_device(device)
    Phi = torch.as_tensor(np.asarray(dictionary), dtype=torch.float32, device=torch_device)
    G = Phi.T @ Phi
    step = 1.0 / (2.0 * float(torch.linalg.matrix_norm(G, ord=2)))
    threshold = lam * step
    codes, residuals = [], []
    for start in range(0, X.shape[0], CHUNK):
        x = torch.as_tensor(np.asarray(X[start : start + CHUNK]), dtype=torch.float32, device=torch_device)
        C = x @ Phi
        alpha = torch.zeros_like(C)
        y, t = alpha.clone(), 1.0
        for _ in range(iterations):
            previous = alpha
            alpha = torch.clamp(y - step * 2.0 * (y @ G - C) - threshold, min=0.0)
            t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
            y = alpha + ((t - 1.0) / t_next) * (alpha - previous)
            t = t_next
            if float((alpha - previous).abs().max()) <= tolerance * max(float(alpha.max()), 1e-30):
                break
        residual = x - alpha @ Phi.T
        residuals.append((residual * residual).sum(dim=1).double().cpu().numpy())
        codes.append(scipy.sparse.csr_array(alpha.cpu().numpy()))
    return scipy.sparse.vstack(codes, format="csr"), np.concatenate(residuals)
