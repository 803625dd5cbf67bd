"""Bases per node layer: ``neuron``, ``pca``, ``lib`` and ``gib`` (the paper's section 3 and
Appendix A; the peer's conventions as ``rib-method-notes.md`` describes them).

A basis is a pair (C, C_pinv): coordinates are ``f_hat = f @ C`` (C: (d, n)), and ``f_hat @ C_pinv``
maps back. With centring, direction 0 is the constant direction, and a LayerNorm variance
coordinate (``leading_fixed``) is never mixed with the others.

- ``pca``: centre, rotate to the Gram matrix's eigenvectors, drop eigenvalues <= the truncation;
  whitened (divided by sqrt of the eigenvalue) or not (the peer's ``svd`` basis is not).
- ``lib``: from the last layer backwards. R = W D^{-1/2} whitens; M' is the Gram matrix of the
  pullbacks of the next layer's LIB coordinates (float64); M = R_pinv M' R_pinv^T; its
  eigenvectors V rotate, sqrt(|Lambda|) scales, small Lambda are dropped: C = R V L.
- ``gib``: the same with the pullbacks taken from the final node layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from featgeom_core.errors import InvalidParameter
from featgeom_core.interaction.jacobians import (
    RowPlan,
    SectionMaps,
    check_finite,
    closed_form_gram,
    closed_form_total,
    pullbacks,
)
from featgeom_core.interaction.result import LayerBasis
from featgeom_core.progress import Progress

BasisKind = Literal["neuron", "pca", "lib", "gib"]


def centering_matrices(mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Y, Y_inv) with ``x @ Y = x - mean`` for inputs whose last coordinate is the constant 1
    (which stays 1): the mean sits in the constant's row."""
    d = mean.shape[0]
    Y = torch.eye(d, dtype=mean.dtype)
    Y_inv = torch.eye(d, dtype=mean.dtype)
    Y[-1, :-1] = -mean[:-1]
    Y_inv[-1, :-1] = mean[:-1]
    return Y, Y_inv


def eigendecompose(matrix: torch.Tensor, fixed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (absolute, descending) and eigenvectors (columns) of a symmetric matrix, in
    float64. The first ``fixed`` coordinates are left as their own directions (identity block,
    their value the diagonal entry); the rest is decomposed."""
    matrix = matrix.to(torch.float64)
    d = matrix.shape[0]
    values, vectors = torch.linalg.eigh(matrix[fixed:, fixed:])
    values = values.abs()
    order = torch.argsort(values, descending=True)
    full_vectors = torch.zeros(d, d, dtype=torch.float64)
    full_vectors[:fixed, :fixed] = torch.eye(fixed, dtype=torch.float64)
    full_vectors[fixed:, fixed:] = vectors[:, order]
    return torch.cat([matrix.diagonal()[:fixed].abs(), values[order]]), full_vectors


def constant_first(values: torch.Tensor, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the one eigenvector with a constant component (last coordinate) and a non-zero
    eigenvalue to index 0. Centred activations have exactly one."""
    candidates = torch.nonzero((vectors[-1].abs() > 1e-6) & (values > 1e-6)).flatten()
    if len(candidates) != 1:
        raise InvalidParameter(
            f"expected one constant direction after centring, found {len(candidates)}; "
            "are the biases folded (a constant-1 last coordinate)?"
        )
    k = int(candidates[0])
    order = torch.cat([torch.tensor([k]), torch.tensor([i for i in range(len(values)) if i != k], dtype=torch.long)])
    return values[order], vectors[:, order]


@dataclass
class Whitening:
    """The first rotation of LIB (and all of PCA): W = Y U, R = W D^{-1/2}, and inverses."""

    W: torch.Tensor
    W_pinv: torch.Tensor
    D: torch.Tensor
    n_fixed: int  # constant + variance directions, first
    centred: bool

    @property
    def R(self) -> torch.Tensor:
        return self.W / self.D.sqrt()

    @property
    def R_pinv(self) -> torch.Tensor:
        return self.D.sqrt()[:, None] * self.W_pinv


def whitening(gram: torch.Tensor, mean: torch.Tensor | None, truncation: float, leading_fixed: int, node_layer: str) -> Whitening:
    """Eigendecompose the (centred) Gram matrix; keep eigenvalues above ``truncation``."""
    values, vectors = eigendecompose(gram, leading_fixed)
    n_fixed = leading_fixed
    if mean is not None:
        values, vectors = constant_first(values, vectors)
        n_fixed += 1
    keep = values > truncation
    if not bool(keep.any()):
        raise InvalidParameter(
            f"the truncation {truncation:g} leaves no direction at {node_layer} (largest Gram eigenvalue {float(values.max()):.3g})"
        )
    U, D = vectors[:, keep], values[keep]
    if mean is None:
        return Whitening(U, U.T.clone(), D, n_fixed, centred=False)
    Y, Y_inv = centering_matrices(mean.to(torch.float64))
    return Whitening(Y @ U, U.T @ Y_inv, D, n_fixed, centred=True)


def neuron_basis(node_layer: str, dim: int, second_moment: torch.Tensor | None = None) -> LayerBasis:
    """The identity: each coordinate its own direction."""
    eye = torch.eye(dim, dtype=torch.float64)
    values = second_moment.to(torch.float64) if second_moment is not None else torch.ones(dim, dtype=torch.float64)
    return LayerBasis(node_layer, "neuron", eye, eye.clone(), values, constant_first=False)


def pca_basis(
    node_layer: str, gram: torch.Tensor, mean: torch.Tensor | None, truncation: float, leading_fixed: int = 0, whiten: bool = True
) -> LayerBasis:
    """Principal components of the centred activations, above the truncation; whitened or not."""
    w = whitening(gram, mean, truncation, leading_fixed, node_layer)
    if whiten:
        return LayerBasis(node_layer, "pca", w.R, w.R_pinv, w.D, constant_first=w.centred)
    return LayerBasis(node_layer, "pca", w.W, w.W_pinv, w.D, constant_first=w.centred)


def jacobian_gram(
    fn: Callable[[torch.Tensor], torch.Tensor],
    batches: list[torch.Tensor],
    plan: RowPlan,
    points: list[tuple[float, float]],
    seed: int,
    n_samples: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """M'[j, j'] = sum over rows, samples and input positions of g[j] g[j'], divided by
    (input positions x samples x sources): the Gram matrix of the pullbacks (float64)."""
    generator = torch.Generator().manual_seed(seed)
    d = batches[0].shape[-1]
    n_positions = batches[0].shape[1]
    M = torch.zeros(d, d, dtype=torch.float64)
    for k, x in enumerate(batches):
        for _, _, grads in pullbacks(fn, x, plan, points, generator):
            flat = grads.reshape(-1, d).to(torch.float64)
            M += flat.T @ flat
        if progress:
            progress((k + 1) / len(batches), f"M' batch {k + 1}/{len(batches)}")
    M /= n_positions * n_samples * plan.normaliser
    check_finite(M, "M'")
    return M


def closed_form_jacobian_gram(
    maps: SectionMaps, batches: list[torch.Tensor], points: list[tuple[float, float]], n_samples: int, progress: Progress | None = None
) -> torch.Tensor:
    """M' as ``jacobian_gram`` defines it, for a section whose Jacobian has a closed form
    (exact rows: no sources are needed)."""
    M = closed_form_total(maps, batches, closed_form_gram, points, "M'", progress) / (batches[0].shape[1] * n_samples)
    check_finite(M, "M'")
    return M


def lib_basis(node_layer: str, w: Whitening, M_dash: torch.Tensor, truncation: float, kind: str = "lib") -> LayerBasis:
    """C = R V L from the whitening and the pullback Gram M' (neuron coordinates)."""
    M = w.R_pinv @ M_dash @ w.R_pinv.T
    Lambda, V = eigendecompose(M, w.n_fixed)
    # the fixed directions stay first and in place; the rest by |Lambda| (eigendecompose sorted them);
    # every Lambda below the truncation removes one direction from the end, as the peer counts them
    n_small = int((Lambda < truncation).sum())
    keep = torch.arange(len(Lambda) - n_small)
    if len(keep) == 0:
        raise InvalidParameter(f"the truncation {truncation:g} leaves no LIB direction at {node_layer}")
    sqrt_lambda = Lambda[keep].sqrt()
    C = (w.R @ V[:, keep]) * sqrt_lambda
    C_pinv = (V[:, keep].T @ w.R_pinv) / sqrt_lambda[:, None]
    check_finite(C, f"the LIB basis at {node_layer}")
    return LayerBasis(node_layer, kind, C, C_pinv, Lambda[keep], constant_first=w.centred)
