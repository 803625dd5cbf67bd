"""Learning feature directions U in a parameter block: the write-up's bi-level optimisation of
the steepness and interference losses (:mod:`featgeom_core.hessian.losses`).

Each step takes one batch of samples and follows the write-up's pseudo-code:

1. c = the batch's curvatures along the current directions (batched nested JVPs, the write-up's
   ``d2D_all``); a gradient-ascent step on L_steep; the rows renormalised to unit length.
2. L_interference from the same curvatures c and the updated directions; a gradient step on
   L_steep - lambda L_interference (ascending L_steep, descending L_interference), the gradient
   flowing both through the updated directions and, as in the pseudo-code, through c; the rows
   renormalised again.

Steps are plain gradient steps (``U + step * gradient``, as in the write-up) with two choices the
write-up leaves open: each start's gradients are divided by its current L_steep, so the step size
is a fraction of the loss whatever the units of the block's curvatures (1e-12 or 1e3), and the
step size follows a cosine from ``learning_rate`` down to 5% of it. Several starts
(``restarts``) run together as one batched problem; the one with the best final objective
L_steep - lambda L_interference on all samples is kept. The first start is the top-k
eigenvectors of the batch-mean Hessian (:mod:`featgeom_core.hessian.eigen`), the others random.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.hessian.blocks import (
    BlockSpec,
    ParameterBlock,
    block_names,
    resolve_block,
)
from featgeom_core.hessian.curvature import (
    Curvatures,
    check_inputs,
    curvature_function,
    curvatures_in_batches,
    per_sample,
)
from featgeom_core.hessian.divergence import (
    DivergenceKind,
    as_positions,
    choose_divergence,
    reference_outputs,
)
from featgeom_core.hessian.eigen import top_eigenvectors
from featgeom_core.hessian.losses import interference_loss, objective, steepness_loss
from featgeom_core.hessian.params import HessianParams
from featgeom_core.hessian.result import HessianFeatures
from featgeom_core.progress import Progress, silent, sub_progress

ShouldStop = Callable[[], bool]
FINAL_STEP_FRACTION = 0.05


def random_directions(count: int, size: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``count`` random unit directions (count, size): Gaussian, normalised; drawn in float64 on
    the CPU so a seed gives the same directions on every device."""
    U = torch.randn(count, size, generator=generator, dtype=torch.float64)
    return torch.nn.functional.normalize(U, dim=1).to(device=device, dtype=dtype)


def step_size(learning_rate: float, step: int, steps: int) -> float:
    """Cosine decay from ``learning_rate`` at step 0 to 5% of it at the last step."""
    progress = step / max(1, steps - 1)
    return learning_rate * (FINAL_STEP_FRACTION + (1 - FINAL_STEP_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def sample_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of sample indices: every sample once per pass, in a fresh random order
    each pass (all samples every time when ``batch_size`` >= n)."""
    if batch_size >= n:
        everything = torch.arange(n)
        while True:
            yield everything
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _unit_rows(U: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(U, dim=-1)


def _kept(step: int) -> str:
    return f"U is kept as it was after step {step}, the last good one" if step else "U is kept as it started (no step completed)"


class _Problem:
    """The model, block, samples and settings of one fit: curvatures of a batch along (starts, k)
    directions. ``mask`` (n, P) bool or None: the sample-positions that count (positions="each")."""

    def __init__(
        self,
        model: torch.nn.Module,
        block: ParameterBlock,
        inputs: torch.Tensor,
        reference: torch.Tensor,
        kind: DivergenceKind,
        p: HessianParams,
        mask: torch.Tensor | None = None,
    ) -> None:
        self.model, self.block, self.inputs, self.reference, self.kind, self.p, self.mask = model, block, inputs, reference, kind, p, mask

    def curvature(self, batch: torch.Tensor, zero_masked: bool = True) -> Curvatures:
        """U (q, size) -> the batch's curvatures (q, B[, P]); with a mask and ``zero_masked``, the
        positions that do not count curve 0 (so they add nothing to the mean Hessian)."""
        curvature = curvature_function(
            self.model, self.block, self.inputs[batch], self.reference[batch], self.kind, self.p.positions, self.p.curvature
        )
        if self.mask is None or not zero_masked:
            return curvature
        weights = self.mask[batch].to(self.block.dtype)
        return lambda U: curvature(U) * weights

    def curvatures(self, batch: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """Curvatures of the batch along the unit rows of U (S, k, size): (B or B*P or the number
        of masked-in positions, S, k), differentiable with respect to U."""
        starts, k, size = U.shape
        flat = _unit_rows(U).reshape(starts * k, size)
        curvature = self.curvature(batch, zero_masked=False)
        per = self.p.directions_per_pass
        c = per_sample(torch.cat([curvature(flat[j : j + per]) for j in range(0, len(flat), per)]))  # (B, [P,] S*k)
        if self.mask is not None:
            c = c[self.mask[batch]]  # only the sample-positions that count
        return c.reshape(-1, starts, k)  # sample-positions count as samples under positions="each"

    def all_curvatures(self, U: torch.Tensor, progress: Progress = silent) -> torch.Tensor:
        """Curvatures of every sample along U (S, k, size), without gradients: (n, [P,] S, k)."""
        starts, k, size = U.shape
        c = curvatures_in_batches(
            self.model,
            self.block,
            self.inputs,
            self.reference,
            U.reshape(starts * k, size),
            self.kind,
            self.p.positions,
            self.p.batch_size,
            self.p.directions_per_pass,
            self.p.curvature,
            progress,
        )
        return c.reshape(*c.shape[:-1], starts, k)


def starting_directions(problem: _Problem, n: int, generator: torch.Generator, progress: Progress = silent) -> torch.Tensor:
    """(restarts, k, size): the top-k eigenvectors of the mean Hessian of a batch first (with
    ``init="eigenvectors"``), random unit directions for the other starts."""
    p, block = problem.p, problem.block
    starts = []
    if p.init == "eigenvectors":
        first = torch.randperm(n, generator=generator)[: p.batch_size].to(block.device)
        eigenvectors = top_eigenvectors(
            problem.curvature(first), block.w0, p.k, generator, p.init_iterations, p.directions_per_pass, progress
        )
        if eigenvectors is not None:  # else (non-finite curvature in the batch) every start is random
            starts.append(eigenvectors)
    while len(starts) < p.restarts:
        starts.append(random_directions(p.k, block.size, generator, block.dtype, block.device))
    return torch.stack(starts)


def check_position_mask(mask: torch.Tensor, reference: torch.Tensor, positions: str) -> torch.Tensor:
    """A position mask as a bool tensor (n_samples, n_positions) on the reference's device;
    refuses a wrong shape, ``positions="sum"``, or a sample with no position that counts."""
    shape = tuple(as_positions(reference).shape[:2])
    if positions != "each":
        raise InvalidParameter('a position mask says which sample-positions count as samples: use it with positions="each"')
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != shape:
        given = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InvalidParameter(f"position mask {given}: give a tensor {shape} (samples, positions) of True/False")
    mask = mask.to(device=reference.device, dtype=torch.bool)
    empty = torch.nonzero(~mask.any(dim=1)).flatten()
    if len(empty):
        raise DataError(f"samples {empty[:5].tolist()} have no position that counts in the mask: drop them from the inputs")
    return mask


def fit_hessian_features(
    model: torch.nn.Module,
    block: BlockSpec,
    inputs: torch.Tensor,
    params: HessianParams | Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    position_mask: torch.Tensor | None = None,
) -> HessianFeatures:
    """Learn ``params.k`` unit directions in ``block`` whose sample-level curvatures are large for
    some samples and interfere little, and every sample's activation of each.

    ``model``: a module whose forward maps an input batch (B, ...) to outputs (B, ...), samples
    independent. ``block``: a parameter name (or list of names) from ``model.named_parameters()``.
    ``inputs``: (n_samples, ...). ``params``: :class:`HessianParams` or a mapping of its fields.
    ``progress(fraction, message, metrics)`` is called at every step (metrics: step, steps,
    steep_loss, interference_loss); ``should_stop()`` is polled before each step. A non-finite
    loss or update stops the run and keeps the last good U (``stopped_reason`` says so).
    ``position_mask`` (n_samples, n_positions) bool, with ``positions="each"``: only the True
    sample-positions count as samples (e.g. not a text's padding) in the losses, the eigenvector
    start and the choice of start; the others' curvatures are still returned. Returns a
    :class:`HessianFeatures` with U (k, block size) and curvatures (n_samples, k) (or
    (n_samples, n_positions, k) with ``positions="each"``).
    """
    from featgeom_core.config import resolve_device

    start_time = time.perf_counter()
    p = HessianParams.parse(params)
    report = progress or silent
    check_inputs(inputs)
    block_names(block)
    device = resolve_device(p.device)
    resolved = resolve_block(model, block, device)
    if p.k > resolved.size:
        raise InvalidParameter(
            f"k = {p.k} directions do not fit the block {list(resolved.names)}, which has {resolved.size} numbers: "
            f"choose k <= {resolved.size}"
        )
    inputs = inputs.to(device)
    n = len(inputs)
    reference = reference_outputs(model, resolved, inputs, p.batch_size)
    kind = choose_divergence(model, reference, p.divergence)
    mask = None if position_mask is None else check_position_mask(position_mask, reference, p.positions)
    problem = _Problem(model, resolved, inputs, reference, kind, p, mask)
    generator = torch.Generator().manual_seed(p.seed)
    U = starting_directions(problem, n, generator, sub_progress(report, 0.0, 0.02))  # (restarts, k, size), unit rows
    batches = sample_batches(n, p.batch_size, generator)
    init_seconds = time.perf_counter() - start_time

    good = U.clone()
    steep_history: list[torch.Tensor] = []
    interference_history: list[torch.Tensor] = []
    stopped_reason: str | None = None
    for step in range(p.steps):
        if should_stop is not None and should_stop():
            stopped_reason = f"stopped on request after {step} of {p.steps} steps"
            break
        lr = step_size(p.learning_rate, step, p.steps)
        evaluated_at = U.clone().requires_grad_(True)  # the directions this step's curvatures (d2D_all) belong to
        c = problem.curvatures(next(batches).to(device), evaluated_at)
        steep = steepness_loss(c)  # (restarts,)
        scale = torch.where(steep.detach() > 0, steep.detach(), torch.ones_like(steep))
        (steep_gradient,) = torch.autograd.grad((steep / scale).sum(), evaluated_at, retain_graph=p.lambda_interference > 0)
        if not (torch.isfinite(steep).all() and torch.isfinite(steep_gradient).all()):
            stopped_reason = f"the steepness loss became non-finite ({steep.detach().tolist()}) at step {step + 1}; {_kept(step)}"
            break
        U = _unit_rows(U + lr * steep_gradient)  # step 1: ascent on L_steep
        updated = U.clone().requires_grad_(True)
        interference = interference_loss(c, updated)  # step 2: the same curvatures, the updated directions
        if not torch.isfinite(interference).all():
            stopped_reason = f"the interference loss became non-finite ({interference.detach().tolist()}) at step {step + 1}; {_kept(step)}"
            break
        if p.lambda_interference > 0:
            through_curvatures, direct = torch.autograd.grad(
                ((p.lambda_interference * interference - steep) / scale).sum(), (evaluated_at, updated)
            )
            U = _unit_rows(U - lr * (through_curvatures + direct))  # ascent on L_steep - lambda L_interference
        if not torch.isfinite(U).all():
            stopped_reason = f"the directions became non-finite at step {step + 1}; {_kept(step)}"
            break
        good = U.detach().clone()
        steep_history.append(steep.detach())
        interference_history.append(interference.detach())
        best = int(torch.argmax(steep.detach() - p.lambda_interference * interference.detach()))
        steep_best, interference_best = float(steep.detach()[best]), float(interference.detach()[best])
        report(
            0.02 + 0.88 * (step + 1) / p.steps,
            f"step {step + 1}/{p.steps}: L_steep {steep_best:.4g}, L_interference {interference_best:.4g}",
            {"step": step + 1, "steps": p.steps, "steep_loss": steep_best, "interference_loss": interference_best},
        )
    fit_seconds = time.perf_counter() - start_time - init_seconds
    report(0.9, f"curvatures of {n} samples along {p.restarts} x {p.k} directions")
    curvatures = problem.all_curvatures(good, sub_progress(report, 0.9, 1.0))  # (n, [P,] restarts, k)
    flat = curvatures.reshape(-1, p.restarts, p.k)
    finite = torch.isfinite(flat).all(dim=(1, 2))  # samples with non-finite curvature (e.g. NaN inputs) do not choose the start
    if mask is not None:
        finite &= mask.reshape(-1)  # nor do the sample-positions that do not count
    objectives = objective(flat[finite], good, p.lambda_interference) if finite.any() else torch.zeros(p.restarts, dtype=flat.dtype)
    kept = int(torch.argmax(torch.nan_to_num(objectives, nan=-math.inf)))
    seconds = time.perf_counter() - start_time
    report(1.0, stopped_reason or f"done: {p.steps} steps, start {kept} kept")
    steeps = torch.stack(steep_history)[:, kept] if steep_history else torch.zeros(0)
    interferences = torch.stack(interference_history)[:, kept] if interference_history else torch.zeros(0)
    return HessianFeatures(
        U=good[kept].cpu(),
        curvatures=curvatures[..., kept, :].cpu(),
        steep_loss=steeps.cpu().double().numpy(),
        interference_loss=interferences.cpu().double().numpy(),
        block=resolved.names,
        block_shapes=tuple(tuple(s) for s in resolved.shapes),
        divergence=kind,
        params=p.normalised(),
        stopped_reason=stopped_reason,
        restart=kept,
        objectives=objectives.cpu().double().numpy(),
        seconds=seconds,
        timings={"start": init_seconds, "fit": fit_seconds, "final_curvatures": seconds - init_seconds - fit_seconds},
    )
