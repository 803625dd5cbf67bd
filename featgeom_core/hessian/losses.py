"""The two losses of the write-up's "Learning feature vectors", on the curvatures c[x, j] =
u_jᵀH(x)u_j of a batch of samples (the feature activations).

- steepness, to maximise: L_steep = Σ_j c[x, j]², averaged over the samples x;
- interference, to minimise: per sample the Frobenius norm of the off-diagonal part of the
  k x k matrix (diag(c[x]) Û)(diag(c[x]) Û)ᵀ (Û: the unit directions as rows), i.e.
  sqrt(Σ_{j≠l} c[x,j]² c[x,l]² (û_j·û_l)²), averaged over x. It is small when directions are
  orthogonal, or when two overlapping directions are not both steep on the same sample.

Both are in squared curvature units, so lambda is dimensionless. Leading "start" dimensions
(several independent sets of directions optimised together) are carried through.
"""

from __future__ import annotations

import torch


def steepness_loss(curvatures: torch.Tensor) -> torch.Tensor:
    """L_steep of curvatures (B, ..., k): shape (...) (a scalar for (B, k))."""
    return (curvatures**2).sum(dim=-1).mean(dim=0)


def interference_loss(curvatures: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """L_interference of curvatures (B, ..., k) along the rows of U (..., k, size): shape (...)
    (a scalar for (B, k) and (k, size)). U's rows need not be unit: they are normalised here."""
    unit = torch.nn.functional.normalize(U, dim=-1)
    k = unit.shape[-2]
    off_diagonal = 1 - torch.eye(k, dtype=unit.dtype, device=unit.device)
    overlap = (unit @ unit.transpose(-1, -2)) ** 2 * off_diagonal
    squared = curvatures**2
    per_sample = torch.einsum("b...j,...jl,b...l->b...", squared, overlap, squared)
    return per_sample.clamp_min(torch.finfo(per_sample.dtype).tiny).sqrt().mean(dim=0)


def objective(curvatures: torch.Tensor, U: torch.Tensor, lambda_interference: float) -> torch.Tensor:
    """L_steep - lambda L_interference (to maximise): shape (...)."""
    return steepness_loss(curvatures) - lambda_interference * interference_loss(curvatures, U)
