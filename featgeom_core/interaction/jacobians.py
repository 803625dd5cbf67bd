"""Pullbacks of output covectors through a function, batched: the one derivative computation behind
both the LIB basis (M', the paper's eq. 3.13 and Appendix A.2) and the interaction edges (eq. 3.14).

For a function f: (B, S, J) -> (B, T, I) applied sample by sample, a *row* is a covector u on the
output; its pullback is g[b, s, j] = sum_{t,i} u[b,t,i] df[b,t,i]/dx[b,s,j]. Exact rows are the
one-hot (t, i); stochastic rows are +-1 sources over output positions for one output dimension i
(Appendix A.3), whose squared pullbacks average to the exact sum over t. All rows of a chunk are
pulled back at once (``torch.func.vjp`` under ``torch.vmap``): one forward, one batched backward,
instead of one autograd call per output dimension and position.

Integrated gradients replace the derivative at x by sum_a w_a df/dx (a x) (``integration_points``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from featgeom_core.errors import InvalidParameter
from featgeom_core.progress import Progress

IntegrationRule = Literal["gradient", "trapezoidal", "gauss-legendre"]


def integration_points(rule: IntegrationRule, n_intervals: int = 0) -> list[tuple[float, float]]:
    """(alpha, weight) pairs on [0, 1].

    ``gradient``: the plain derivative at alpha = 1 (n_intervals must be 0). ``trapezoidal``:
    n_intervals = 0 is the point estimate at 0.5; otherwise n + 1 evenly spaced points in
    [eps, 1 - eps], eps = 1e-3 / (n + 1), weights 1/n with the two ends halved.
    ``gauss-legendre``: the n + 1 Legendre nodes mapped to [0, 1], weights summing to 1.
    """
    if n_intervals < 0:
        raise InvalidParameter(f"n_intervals = {n_intervals}: must be >= 0")
    if rule == "gradient":
        if n_intervals != 0:
            raise InvalidParameter("the plain-gradient rule takes no integration intervals (n_intervals = 0)")
        return [(1.0, 1.0)]
    if rule == "trapezoidal":
        if n_intervals == 0:
            return [(0.5, 1.0)]
        eps = 1e-3 / (n_intervals + 1)
        alphas = np.linspace(eps, 1 - eps, n_intervals + 1)
        weights = np.full(n_intervals + 1, 1.0 / n_intervals)
        weights[[0, -1]] /= 2
        return [(float(a), float(w)) for a, w in zip(alphas, weights)]
    if rule == "gauss-legendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_intervals + 1)
        return [(float((x + 1) / 2), float(w / 2)) for x, w in zip(nodes, weights)]
    raise InvalidParameter(f"integration rule {rule!r}: use gradient, trapezoidal or gauss-legendre")


@dataclass(frozen=True)
class RowPlan:
    """Which covectors to pull back for an output of ``n_positions`` x ``n_dims``.

    ``sources`` None: every one-hot (t, i), row r = i * T + t. Otherwise ``sources`` +-1 rows per
    output dimension over positions, row r = i * k + s. ``normaliser`` is the number of rows
    that stand for one (t, i) sum: k for sources, 1 for exact rows.
    """

    n_positions: int
    n_dims: int
    sources: int | None = None

    @property
    def per_dim(self) -> int:
        return self.n_positions if self.sources is None else self.sources

    @property
    def n_rows(self) -> int:
        return self.n_dims * self.per_dim

    @property
    def normaliser(self) -> int:
        return 1 if self.sources is None else self.sources

    def out_dims(self, start: int, stop: int) -> torch.Tensor:
        """The output dimension i of rows start..stop."""
        return torch.arange(start, stop) // self.per_dim

    def covectors(self, start: int, stop: int, batch: int, dtype: torch.dtype, generator: torch.Generator | None) -> torch.Tensor:
        """(stop - start, batch, T, I) covectors for rows start..stop."""
        rows = torch.arange(start, stop)
        dims = rows // self.per_dim
        cov = torch.zeros(len(rows), batch, self.n_positions, self.n_dims, dtype=dtype)
        if self.sources is None:
            cov[torch.arange(len(rows)), :, rows % self.per_dim, dims] = 1.0
        else:
            signs = torch.randint(0, 2, (len(rows), batch, self.n_positions), generator=generator).to(dtype) * 2 - 1
            cov[
                torch.arange(len(rows))[:, None, None],
                torch.arange(batch)[None, :, None],
                torch.arange(self.n_positions)[None, None, :],
                dims[:, None, None],
            ] = signs
        return cov


def pullbacks(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    plan: RowPlan,
    points: list[tuple[float, float]],
    generator: torch.Generator | None = None,
    budget_bytes: int = 96 * 2**20,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (row start, row stop, pullbacks (rows, B, S, J)) over every row of ``plan``, each the
    weighted sum over integration points of the derivative at alpha * x. ``fn`` must treat samples
    independently (the batch dimension is summed over inside the backward pass)."""
    batch = x.shape[0]
    per_row = batch * max(x[0].numel(), plan.n_positions * plan.n_dims) * x.element_size()
    chunk = max(1, min(plan.n_rows, budget_bytes // max(per_row, 1)))
    for start in range(0, plan.n_rows, chunk):
        stop = min(start + chunk, plan.n_rows)
        cov = plan.covectors(start, stop, batch, x.dtype, generator)
        total = None
        for alpha, weight in points:
            pull = torch.func.vjp(fn, alpha * x if alpha != 1.0 else x)[1]
            (grads,) = torch.vmap(pull)(cov)
            total = grads * weight if total is None else total + grads * weight
        assert total is not None, "an integration rule has at least one point"
        yield start, stop, total


def batch_size_for(sample_bytes: int, n_rows: int, budget_bytes: int = 256 * 2**20, cap: int = 4096) -> int:
    """How many samples to pull back together so that (rows, batch, sample) fits the budget."""
    return int(max(1, min(cap, budget_bytes // max(1, sample_bytes * max(1, min(n_rows, 256))))))


def check_finite(matrix: torch.Tensor, what: str) -> None:
    """A clear error instead of NaNs travelling on."""
    if not bool(torch.isfinite(matrix).all()):
        raise InvalidParameter(f"{what} has non-finite entries; the activations or the model overflow at this dtype")


@dataclass(frozen=True)
class SectionMaps:
    """A section read in given coordinates: ``y = core(x @ A) @ G``, where x are input-layer
    coordinates and y output-layer ones. ``A`` None: the section's input map is the identity;
    ``core`` None: the section is linear."""

    core: Any  # a Core (sequential.py), optionally with jacobian/gram (cores.py); None when linear
    A: torch.Tensor | None
    G: torch.Tensor | None

    @property
    def closed_form(self) -> bool:
        """Whether the Jacobian comes without autograd (a linear section or a core with ``jacobian``)."""
        return self.core is None or hasattr(self.core, "jacobian")

    def matrix(self, n_in: int, dtype: torch.dtype) -> torch.Tensor:
        """A linear section's (n_in, rows) matrix A G."""
        eye = torch.eye(n_in, dtype=dtype)
        A = eye if self.A is None else self.A
        return A if self.G is None else A @ self.G


def section_maps(section, C_in_pinv: torch.Tensor | None, C_out: torch.Tensor) -> SectionMaps:
    """The section ``core(x @ linear_in) @ linear_out`` with input coordinates ``f = x_hat @
    C_in_pinv`` (None: neuron coordinates) and outputs ``y_hat = y @ C_out``."""
    A = section.linear_in
    if C_in_pinv is not None:
        A = C_in_pinv if A is None else C_in_pinv @ A.to(C_in_pinv.dtype)
    G = C_out if section.linear_out is None else section.linear_out.to(C_out.dtype) @ C_out
    return SectionMaps(section.core, A, G)


def closed_form_gram(maps: SectionMaps, x: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
    """sum over samples, output rows and input positions of J^T J for a batch x (B, S, n_in), (n_in, n_in)."""
    n_in = x.shape[-1]
    if maps.core is None:
        AG = maps.matrix(n_in, x.dtype)
        return (x.shape[0] * x.shape[1]) * (AG @ AG.T)
    if hasattr(maps.core, "gram"):
        return maps.core.gram(x, _or_eye(maps.A, n_in, x.dtype), maps.G, points)
    J = maps.core.jacobian(x, _or_eye(maps.A, n_in, x.dtype), maps.G, points)
    flat = J.reshape(-1, n_in)
    return flat.T @ flat


def closed_form_attribution_squares(maps: SectionMaps, x: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
    """sum over samples and output positions of (sum over input positions of J * x)^2, (rows, n_in)."""
    n_in = x.shape[-1]
    if maps.core is None:
        AG = maps.matrix(n_in, x.dtype)
        return AG.T.pow(2) * x.pow(2).sum(dim=(0, 1))
    J = maps.core.jacobian(x, _or_eye(maps.A, n_in, x.dtype), maps.G, points)
    if getattr(maps.core, "positionwise", False):  # (B, T, rows, n_in), T = S
        attribution = J * x.unsqueeze(2)
    else:  # (B, T, rows, S, n_in)
        attribution = (J * x[:, None, None]).sum(3)
    return attribution.pow(2).sum(dim=(0, 1))


def closed_form_batch(maps: SectionMaps, x: torch.Tensor, budget_bytes: int = 128 * 2**20) -> int:
    """Samples per chunk so that one chunk's Jacobian (and its widest intermediate) fits the budget."""
    rows = maps.G.shape[1] if maps.G is not None else x.shape[-1]
    width = maps.A.shape[1] if maps.A is not None else x.shape[-1]
    per_sample = x.shape[1] * rows * max(x.shape[1] * x.shape[-1], width) * x.element_size()
    return int(max(1, min(len(x), budget_bytes // max(per_sample, 1))))


def closed_form_total(
    maps: SectionMaps,
    batches: list[torch.Tensor],
    term: Callable[[SectionMaps, torch.Tensor, list[tuple[float, float]]], torch.Tensor],
    points: list[tuple[float, float]],
    label: str,
    progress: Progress | None = None,
    coordinates: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The float64 sum of ``term(maps, chunk, points)`` (``closed_form_gram`` or
    ``closed_form_attribution_squares``) over every batch, in chunks that fit the memory budget;
    each batch is first mapped into the section's input coordinates by ``coordinates``."""
    total = None
    for k, x in enumerate(batches):
        x = x if coordinates is None else coordinates(x)
        chunk = closed_form_batch(maps, x)
        for start in range(0, len(x), chunk):
            part = term(maps, x[start : start + chunk], points).to(torch.float64)
            total = part if total is None else total + part
        if progress:
            progress((k + 1) / len(batches), f"{label}: batch {k + 1}/{len(batches)}")
    assert total is not None, "no batches"
    return total


def _or_eye(A: torch.Tensor | None, n: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.eye(n, dtype=dtype) if A is None else A
