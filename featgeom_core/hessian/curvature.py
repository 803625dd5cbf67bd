"""Directional curvature of every sample's divergence: uᵀH(x)u, without ever forming H.

uᵀH(x)u is the second derivative of t -> D(f, x, W0 + t u) at t = 0. By default it is computed as a
forward-over-forward product, ``jvp`` of ``jvp`` (``torch.func``): the inner jvp gives the
directional derivative along u as a function of W, the outer one differentiates that along u
again. This is exact (no finite differences) and costs a few forward passes, with no backward
pass. Because the perturbation t u is shared by all samples and the samples of a batch do not
interact in the forward pass, one batched forward yields every sample's (and every position's)
curvature at once; ``vmap`` then batches the directions. The write-up's nested products
∇_w(∇_w D · u) · u (double backward, one sample and one direction at a time) are kept as
:func:`reference_curvature`, the baseline of the benchmark.

``method="output_jvp"`` gives the same values with one jvp instead of two: at W0 the divergence
and its gradient in the outputs vanish, so uᵀH(x)u = (J u)ᵀ ∇²_y D (J u) exactly, with J u the
outputs' jvp along u and ∇²_y D in closed form
(:func:`~featgeom_core.hessian.divergence.curvature_from_tangent`). It is several times faster on
deep models (a language model's attention block) and is checked against the explicit Hessian too.

Models must treat the samples of a batch independently (e.g. no batch norm in training mode) and
support forward-mode AD (for Hugging Face models: ``attn_implementation="eager"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch.func import jvp, vmap

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.hessian.blocks import BlockSpec, ParameterBlock, resolve_block
from featgeom_core.hessian.divergence import (
    DivergenceChoice,
    DivergenceKind,
    Positions,
    choose_divergence,
    curvature_from_tangent,
    divergence_function,
    forward,
    reference_outputs,
)
from featgeom_core.progress import Progress, silent

Divergence = Callable[[torch.Tensor], torch.Tensor]
Curvatures = Callable[[torch.Tensor], torch.Tensor]
"""U (q, size) -> curvatures (q, B) or (q, B, P) of a fixed batch of samples."""
CurvatureMethod = Literal["nested_jvp", "output_jvp"]
CURVATURE_METHODS: tuple[str, ...] = ("nested_jvp", "output_jvp")


def forward_mode_error(exc: NotImplementedError) -> DataError:
    """The error for a model with an operation that forward-mode AD cannot differentiate (as often as the method needs)."""
    return DataError(
        f"the model does not support forward-mode differentiation, which the curvature needs ({exc}); for a Hugging Face "
        f"model load it with attn_implementation='eager' (fused attention kernels have no forward derivative), or try "
        f"method='output_jvp', which differentiates the model once instead of twice"
    )


def second_directional_derivatives(divergence: Divergence, w0: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """d²/dt² divergence(w0 + t u) at t = 0 for each row u of U (k, size): (k, *divergence's
    output shape), i.e. uᵀ H u per sample (and position). Differentiable with respect to U."""

    def along(u: torch.Tensor) -> torch.Tensor:
        def slope(w: torch.Tensor) -> torch.Tensor:
            return jvp(divergence, (w,), (u,))[1]

        return jvp(slope, (w0,), (u,))[1]

    try:
        return vmap(along)(U)
    except NotImplementedError as exc:
        raise forward_mode_error(exc) from exc


def output_second_derivatives(
    model: torch.nn.Module,
    block: ParameterBlock,
    inputs: torch.Tensor,
    reference: torch.Tensor,
    kind: DivergenceKind,
    positions: Positions,
    U: torch.Tensor,
) -> torch.Tensor:
    """uᵀH(x)u at W0 for each row u of U (k, size) from one jvp of the outputs along u and D's
    closed-form second derivative in the outputs: (k, B) or (k, B, P), equal to
    :func:`second_directional_derivatives` of the divergence. Differentiable with respect to U."""

    def outputs(w: torch.Tensor) -> torch.Tensor:
        return forward(model, block.substitute(w), inputs)

    def along(u: torch.Tensor) -> torch.Tensor:
        return curvature_from_tangent(jvp(outputs, (block.w0,), (u,))[1], reference, kind, positions)

    try:
        return vmap(along)(U)
    except NotImplementedError as exc:
        raise forward_mode_error(exc) from exc


def curvature_function(
    model: torch.nn.Module,
    block: ParameterBlock,
    inputs: torch.Tensor,
    reference: torch.Tensor,
    kind: DivergenceKind,
    positions: Positions,
    method: CurvatureMethod = "nested_jvp",
) -> Curvatures:
    """U (q, size) -> uᵀH(x)u for every row of U and every sample of ``inputs`` (their reference
    outputs ``reference``): (q, B) or (q, B, P), by ``method`` (see the module docstring)."""
    if method == "nested_jvp":
        divergence = divergence_function(model, block, inputs, reference, kind, positions)
        return lambda U: second_directional_derivatives(divergence, block.w0, U)
    if method == "output_jvp":
        return lambda U: output_second_derivatives(model, block, inputs, reference, kind, positions, U)
    raise InvalidParameter(f"curvature method {method!r}: use one of {', '.join(CURVATURE_METHODS)}")


def per_sample(curvatures: torch.Tensor) -> torch.Tensor:
    """(k, B) -> (B, k), or (k, B, P) -> (B, P, k): samples first, directions last."""
    return curvatures.movedim(0, -1)


def check_inputs(inputs: torch.Tensor) -> None:
    """Inputs must be a tensor of at least one sample (samples along the leading dimension)."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim == 0 or inputs.shape[0] == 0:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise DataError(f"inputs {shape}: give a tensor with the samples along its leading dimension (at least one sample)")


def check_directions(U: torch.Tensor, size: int) -> torch.Tensor:
    """U as (k, size): a single direction (size,) becomes (1, size). Raises for a wrong size or
    non-finite values."""
    if not isinstance(U, torch.Tensor) or U.ndim not in (1, 2) or U.shape[-1] != size or U.numel() == 0:
        shape = tuple(U.shape) if isinstance(U, torch.Tensor) else type(U).__name__
        raise InvalidParameter(f"directions U {shape}: give a tensor (k, {size}) of directions in the block ({size} numbers each)")
    if not torch.isfinite(U).all():
        raise InvalidParameter("directions U contain NaN or infinite values")
    return U if U.ndim == 2 else U[None]


def curvatures_in_batches(
    model: torch.nn.Module,
    block: ParameterBlock,
    inputs: torch.Tensor,
    reference: torch.Tensor,
    U: torch.Tensor,
    kind: DivergenceKind,
    positions: Positions,
    batch_size: int,
    directions_per_pass: int,
    method: CurvatureMethod = "nested_jvp",
    progress: Progress = silent,
) -> torch.Tensor:
    """uᵀH(x)u for every sample and every row of U, ``batch_size`` samples and
    ``directions_per_pass`` directions per pass, without gradients: (n, k) or (n, P, k)."""
    rows = []
    U = U.detach()
    # Grad mode stays on, though nothing here requires grad (so no graph is recorded): with it off, torch
    # differentiates SiLU and Mish (Llama's and others' MLPs) through fused backward kernels that have no
    # forward derivative, and nested_jvp, which differentiates their first derivative again, fails.
    with torch.enable_grad():
        for i in range(0, len(inputs), batch_size):
            progress(i / len(inputs), f"curvatures of samples {i}-{min(i + batch_size, len(inputs))} of {len(inputs)}")
            curvatures = curvature_function(
                model, block, inputs[i : i + batch_size], reference[i : i + batch_size], kind, positions, method
            )
            parts = [curvatures(U[j : j + directions_per_pass]) for j in range(0, len(U), directions_per_pass)]
            rows.append(per_sample(torch.cat(parts)).detach())
    return torch.cat(rows)


def directional_curvature(
    model: torch.nn.Module,
    block: BlockSpec,
    inputs: torch.Tensor,
    U: torch.Tensor,
    divergence: DivergenceChoice = "auto",
    *,
    positions: Positions = "sum",
    batch_size: int = 1024,
    directions_per_pass: int = 64,
    device: str | torch.device | None = None,
    method: CurvatureMethod = "nested_jvp",
    progress: Progress = silent,
) -> torch.Tensor:
    """Curvature uᵀH(x)u of every sample's divergence along every direction, at the trained weights.

    ``model``: a module whose forward maps an input batch to outputs (B, ...) with the samples
    first. ``block``: a parameter name (or list of names) from ``model.named_parameters()``.
    ``inputs``: (n_samples, ...). ``U``: (k, block size) directions (normally unit rows) or one
    direction (block size,). ``divergence``: ``"mse"``, ``"kl"`` or ``"auto"`` (see
    :mod:`featgeom_core.hessian.divergence`). Returns (n_samples, k), or (n_samples, n_positions, k)
    with ``positions="each"``, on the block's device, in (divergence units) per (weight unit)^2.
    ``method``: ``"nested_jvp"`` (jvp of jvp of D) or ``"output_jvp"`` (one jvp of the outputs;
    the same values, exact at W0).
    """
    from featgeom_core.config import resolve_device

    check_inputs(inputs)
    target = resolve_device(device) if device is not None else None
    resolved = resolve_block(model, block, target)
    directions = check_directions(U, resolved.size).to(resolved.device, resolved.dtype)
    if batch_size < 1 or directions_per_pass < 1:
        raise InvalidParameter(f"batch_size = {batch_size}, directions_per_pass = {directions_per_pass}: both must be >= 1")
    inputs = inputs.to(resolved.device)
    reference = reference_outputs(model, resolved, inputs, batch_size)
    kind = choose_divergence(model, reference, divergence)
    return curvatures_in_batches(
        model, resolved, inputs, reference, directions, kind, positions, batch_size, directions_per_pass, method, progress
    )


def sample_divergence(
    model: torch.nn.Module,
    block: BlockSpec,
    inputs: torch.Tensor,
    delta: torch.Tensor | None = None,
    divergence: DivergenceChoice = "auto",
    *,
    positions: Positions = "sum",
) -> torch.Tensor:
    """D(f, x, W0 + delta) for every sample: (n_samples,) or (n_samples, n_positions). ``delta``
    (block size,) moves the block away from the trained weights (None: 0); the result is
    differentiable with respect to it."""
    check_inputs(inputs)
    resolved = resolve_block(model, block)
    inputs = inputs.to(resolved.device)
    reference = reference_outputs(model, resolved, inputs, len(inputs))
    kind = choose_divergence(model, reference, divergence)
    if delta is None:
        delta = torch.zeros_like(resolved.w0)
    if delta.shape != resolved.w0.shape:
        raise InvalidParameter(f"delta {tuple(delta.shape)}: give a vector of the block's {resolved.size} numbers")
    return divergence_function(model, resolved, inputs, reference, kind, positions)(resolved.w0 + delta)


def reference_curvature(
    model: torch.nn.Module,
    block: BlockSpec,
    inputs: torch.Tensor,
    U: torch.Tensor,
    divergence: DivergenceChoice = "auto",
    *,
    positions: Positions = "sum",
) -> torch.Tensor:
    """The write-up's nested products, one sample, position and direction at a time:
    ∇_w(∇_w D(x) · u) · u by double backward (``torch.autograd.grad`` with ``create_graph``).
    Same contract and result as :func:`directional_curvature`; slow, kept as the baseline."""
    check_inputs(inputs)
    resolved = resolve_block(model, block)
    directions = check_directions(U, resolved.size).to(resolved.device, resolved.dtype)
    inputs = inputs.to(resolved.device)
    reference = reference_outputs(model, resolved, inputs, len(inputs))
    kind = choose_divergence(model, reference, divergence)
    rows = []
    for i in range(len(inputs)):
        divergence_i = divergence_function(model, resolved, inputs[i : i + 1], reference[i : i + 1], kind, positions)
        n_positions = 1 if positions == "sum" else divergence_i(resolved.w0).shape[1]
        sample = torch.zeros(n_positions, len(directions), dtype=resolved.dtype, device=resolved.device)
        for p in range(n_positions):
            for j, u in enumerate(directions):
                w = resolved.w0.clone().requires_grad_(True)
                (gradient,) = torch.autograd.grad(divergence_i(w).reshape(-1)[p], w, create_graph=True)
                if gradient.requires_grad:  # otherwise D is linear in w here: no curvature
                    (hessian_u,) = torch.autograd.grad(gradient @ u, w, allow_unused=True)
                    sample[p, j] = 0.0 if hessian_u is None else hessian_u @ u
        rows.append(sample[0] if positions == "sum" else sample)
    return torch.stack(rows)
