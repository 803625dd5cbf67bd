"""Batched L-BFGS: B independent minimisation problems advanced together as one tensor problem.

Each problem keeps its own curvature history and its own Armijo backtracking step, so problems
never mix (unlike torch.optim.LBFGS on a summed loss, whose inner products couple them).
Converged problems are frozen; every objective evaluation is one batched forward + backward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from featgeom_core.progress import Progress, silent

# objective(x_rows (b, P), rows (b,) long indices into the batch) -> values (b,). Only the rows
# still being optimised are evaluated, so a long tail of slow problems costs only their share.
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# The same with the gradient by hand: (x_rows (b, P), rows (b,)) -> (values (b,), gradients (b, P)).
ValueAndGrad = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LbfgsResult:
    """``x`` (B, P) final points, ``f`` (B,) final values, ``trace`` (iterations + 1, B) values,
    ``iterations`` used, ``converged`` (B,) whether the gradient tolerance was met."""

    x: torch.Tensor
    f: torch.Tensor
    trace: torch.Tensor
    iterations: int
    converged: torch.Tensor


def _value_and_grad(objective: Objective, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        values = objective(leaf, rows)
        (grad,) = torch.autograd.grad(values.sum(), leaf)
    return values.detach(), grad.detach()


def batched_lbfgs(objective: Objective, x0: torch.Tensor, **settings: Any) -> LbfgsResult:
    """:func:`minimise_each` with the gradient of ``objective`` (values (B,) from (B, P)) by autograd;
    ``settings`` are :func:`minimise_each`'s."""
    return minimise_each(lambda x, rows: _value_and_grad(objective, x, rows), x0, **settings)


def minimise_each(
    value_and_grad: ValueAndGrad,
    x0: torch.Tensor,
    max_iter: int = 500,
    history: int = 10,
    tol_grad: float = 1e-10,
    tol_change: float = 1e-13,
    max_line_search: int = 30,
    armijo: float = 1e-4,
    progress: Progress | None = None,
) -> LbfgsResult:
    """Minimise B independent problems from ``x0`` (B, P); ``value_and_grad`` gives their values
    (B,) and gradients (B, P); ``progress`` hears every iteration (the fraction of ``max_iter``).

    A problem stops when its largest gradient entry is below ``tol_grad`` * max(1, |f|), when a
    step changes its value by less than ``tol_change`` relative (working precision reached), or
    when no step length decreases it.
    """
    x = x0.detach().clone()
    batch = x.shape[0]
    every = torch.arange(batch, device=x.device)
    f, g = value_and_grad(x, every)
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    rho_hist: list[torch.Tensor] = []
    gamma = torch.ones(batch, dtype=x.dtype, device=x.device)
    active = torch.isfinite(f)
    trace = [f.clone()]
    iterations = 0
    report = progress or silent
    for iterations in range(1, max_iter + 1):
        report(iterations / max_iter, f"L-BFGS iteration {iterations} of at most {max_iter}")
        active = active & (g.abs().amax(dim=1) > tol_grad * f.abs().clamp_min(1.0))
        if not bool(active.any()):
            iterations -= 1
            break
        # Two-loop recursion, per problem (a pair with rho = 0 is a no-op for that problem).
        q = g.clone()
        alphas = []
        for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist)):
            a = rho * (s * q).sum(1)
            q -= a[:, None] * y
            alphas.append(a)
        if s_hist:
            r = q * gamma[:, None]
        else:  # first step: a unit-length move along the gradient
            r = q / g.norm(dim=1, keepdim=True).clamp_min(1e-30)
        for s, y, rho, a in zip(s_hist, y_hist, rho_hist, reversed(alphas)):
            b = rho * (y * r).sum(1)
            r += s * (a - b)[:, None]
        direction = -r
        slope = (g * direction).sum(1)
        uphill = slope >= 0
        if bool(uphill.any()):  # fall back to steepest descent where the model is not a descent direction
            direction[uphill] = -g[uphill]
            slope = (g * direction).sum(1)
        direction[~active] = 0.0

        step = torch.ones(batch, dtype=f.dtype, device=x.device)  # values may be summed in higher precision than x
        accepted = ~active
        x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
        for _ in range(max_line_search):
            rows = (~accepted).nonzero().squeeze(1)
            trial = x[rows] + step[rows, None].to(x.dtype) * direction[rows]
            f_trial, g_trial = value_and_grad(trial, rows)
            ok = torch.isfinite(f_trial) & (f_trial <= f[rows] + armijo * step[rows] * slope[rows])
            good_rows = rows[ok]
            x_new[good_rows], f_new[good_rows], g_new[good_rows] = trial[ok], f_trial[ok], g_trial[ok]
            accepted[good_rows] = True
            if bool(accepted.all()):
                break
            # Safeguarded quadratic interpolation of f along the direction: usually right on the
            # next trial, where halving needs several (each trial is a batched evaluation).
            t = step[rows]
            curvature = f_trial - f[rows] - slope[rows] * t
            guess = torch.where(torch.isfinite(f_trial) & (curvature > 0), -slope[rows] * t * t / (2 * curvature), 0.1 * t)
            step[rows] = torch.where(ok, t, torch.minimum(torch.maximum(guess, 0.1 * t), 0.5 * t))
        stalled = ~accepted  # no decrease at any step length: converged to working precision
        tiny = (f - f_new).abs() <= tol_change * f.abs().clamp_min(1.0)
        active = active & ~stalled & ~tiny

        s_new, y_new = x_new - x, g_new - g
        sy = (s_new * y_new).sum(1)
        good = active & (sy > 1e-12 * s_new.norm(dim=1) * y_new.norm(dim=1))
        rho_new = torch.where(good, 1.0 / sy.where(good, torch.ones_like(sy)), torch.zeros_like(sy))
        gamma = torch.where(good, sy / (y_new * y_new).sum(1).clamp_min(1e-300), gamma)
        s_hist.append(s_new)
        y_hist.append(y_new)
        rho_hist.append(rho_new)
        if len(s_hist) > history:
            s_hist.pop(0), y_hist.pop(0), rho_hist.pop(0)
        x, f, g = x_new, f_new, g_new
        trace.append(f.clone())
    converged = g.abs().amax(dim=1) <= tol_grad * f.abs().clamp_min(1.0)
    return LbfgsResult(x=x, f=f, trace=torch.stack(trace), iterations=iterations, converged=converged)
