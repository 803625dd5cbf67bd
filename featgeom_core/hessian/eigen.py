"""Top eigenvectors of the mean sample-level Hessian H̄ = mean_x H(x) in a block, matrix-free: the
starting directions of the feature optimisation (the sparse version of this eigendecomposition).

H̄ v is the gradient of ½ vᵀH̄v = ½ mean_x vᵀH(x)v, the mean of a batch's curvatures (a
:data:`~featgeom_core.hessian.curvature.Curvatures` function: batched nested JVPs, or one output
JVP); so the products use the same batched products (with one reverse pass over them), never the
matrix. Subspace iteration with oversampling, then Rayleigh-Ritz.
"""

from __future__ import annotations

import torch

from featgeom_core.hessian.curvature import Curvatures
from featgeom_core.progress import Progress, silent


def mean_hessian_products(curvature: Curvatures, V: torch.Tensor, directions_per_pass: int = 64) -> torch.Tensor:
    """H̄ V: each row v of V (q, size) times the Hessian of the divergence averaged over the
    samples of ``curvature`` (and summed over positions), (q, size)."""
    products = []
    for start in range(0, len(V), directions_per_pass):
        chunk = V[start : start + directions_per_pass].detach().requires_grad_(True)
        with torch.enable_grad():
            curvatures = curvature(chunk)  # (q, B, ...)
            half_quadratic = 0.5 * curvatures.reshape(len(chunk), curvatures.shape[1], -1).sum(dim=2).mean(dim=1).sum()
            (gradient,) = torch.autograd.grad(half_quadratic, chunk)
        products.append(gradient)
    return torch.cat(products)


def top_eigenvectors(
    curvature: Curvatures,
    w0: torch.Tensor,
    k: int,
    generator: torch.Generator,
    iterations: int = 15,
    directions_per_pass: int = 64,
    progress: Progress = silent,
) -> torch.Tensor | None:
    """The k leading eigenvectors of H̄ (the mean Hessian of ``curvature``'s samples, around the
    block's trained weights ``w0`` (size,)) as unit rows (k, size), largest eigenvalue first, by
    ``iterations`` rounds of subspace iteration on min(size, 2k) vectors from ``generator``.
    None when the Hessian-vector products are not finite (e.g. a sample with NaN inputs)."""
    size = w0.numel()
    width = min(size, 2 * k)
    start = torch.randn(width, size, generator=generator, dtype=torch.float64).to(device=w0.device, dtype=w0.dtype)
    basis = torch.linalg.qr(start.T).Q.T  # (width, size), orthonormal rows
    for iteration in range(iterations):
        progress(iteration / (iterations + 1), f"eigenvector start: subspace iteration {iteration + 1}/{iterations}")
        products = mean_hessian_products(curvature, basis, directions_per_pass)
        if not torch.isfinite(products).all():
            return None
        if products.abs().max() == 0:
            break
        basis = torch.linalg.qr(products.T).Q.T
    products = mean_hessian_products(curvature, basis, directions_per_pass)
    if not torch.isfinite(products).all():
        return None
    projected = basis @ products.T
    values, vectors = torch.linalg.eigh(0.5 * (projected + projected.T))
    order = torch.argsort(values, descending=True)[:k]
    return torch.nn.functional.normalize(vectors[:, order].T @ basis, dim=1)
