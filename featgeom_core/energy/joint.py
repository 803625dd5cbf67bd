"""Joint optimisation of abstract features and importance weights (thesis 3.5-3.6), and
re-optimisation under a norm penalty (3.7), for many configurations as one batched problem.

Objective of the joint step, per configuration:
    E(X, w) + lambda_d * sum_ij (d_p(x_i, x_j) - T_ij)^2
with E the weighted energy (``kernels``) and d_p the cosine or RBF similarity.

Two traps of the thesis objective, and how they are handled here:
- Weights. With E summed over i != j and w~ = softmax(w), putting all weight on one feature
  drives E to 0, after which the energy shapes nothing; and for symmetric configurations
  uniform weights are a *maximum* of the weighted energy (e.g. the octahedron under Riesz and
  exp). So the weights are w~ = softmax(b * sin(u)) with b = ln(weight_ratio) / 2: every
  weight positive, max/min <= ``weight_ratio`` ("positive and bounded", as the thesis asks).
- Norms. The cosine PSM term cannot see norms while the Riesz and -log energies fall as norms
  grow, so free features run off to infinity. With cosine similarity the joint step keeps the
  features on the unit sphere (x_i = y_i / |y_i|); with RBF similarity the PSM term anchors them.

Re-optimisation freezes the weights, starts from the joint features plus isotropic Gaussian
noise of standard deviation sigma * n_i (n_i = |x_i|), and minimises
    E(X, w) + lambda_x * sum_i | |x_i| - n_i |
(the absolute value smoothed over a width of 1e-4 n_i, and optimised in polar form x_i = r_i u_i,
so that the penalty's kink lies along the radius alone and L-BFGS converges; with a sharper kink
in Cartesian coordinates the line search stalls near the perturbed start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from featgeom_core.config import resolve_device
from featgeom_core.energy import compiled
from featgeom_core.energy.kernels import (
    KERNELS,
    Kernel,
    kernel_index,
    pair_kernels,
    weighted_energy,
)
from featgeom_core.energy.params import (
    Engine,
    JointConfig,
    ReoptConfig,
    Similarity,
    SolverSettings,
    Weights,
    check_target,
    validate_sizes,
)
from featgeom_core.energy.result import JointResult, ReoptResult
from featgeom_core.errors import InvalidParameter
from featgeom_core.lbfgs import LbfgsResult, Objective, batched_lbfgs
from featgeom_core.progress import Progress, silent

DTYPE = torch.float64
EQUAL_OBJECTIVE = 1e-6
"""Restarts whose joint objective is within this (relative to the best's magnitude) of the best are
equally good minima; the copies a rotation or reflection makes agree to about 1e-12."""
HUBER_WIDTH = 1e-4  # smoothing of |r - n| relative to n; moves the optimum radius negligibly


def similarity_matrix(X: torch.Tensor, is_cosine: torch.Tensor, rbf_c: torch.Tensor) -> torch.Tensor:
    """Cosine or RBF PSM per configuration: X (B, N, D) -> (B, N, N)."""
    unit = X / X.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    cosine = unit @ unit.transpose(1, 2)
    squared = ((X[:, :, None, :] - X[:, None, :, :]) ** 2).sum(-1)
    rbf = torch.exp(-squared / rbf_c[:, None, None])
    return torch.where(is_cosine[:, None, None], cosine, rbf)


class _Batch:
    """Per-configuration tensors for a batch of B = configs x restarts problems."""

    def __init__(self, configs: Sequence[JointConfig], repeat: int, n: int, device: torch.device) -> None:
        self.n, self.d_max = n, max(c.dim for c in configs)
        expand = lambda values, dtype=DTYPE: torch.as_tensor(values, dtype=dtype, device=device).repeat_interleave(repeat, 0)  # noqa: E731
        self.kernel = expand([[float(kernel_index(c.kernel) == k) for k in range(len(KERNELS))] for c in configs])
        self.is_cosine = expand([c.similarity == "cosine" for c in configs], torch.bool)
        self.lambda_d = expand([c.lambda_d for c in configs])
        self.s = expand([c.s for c in configs])
        self.rbf_c = expand([c.rbf_c for c in configs])
        self.learned = expand([c.weights == "learned" for c in configs], torch.bool)
        self.log_ratio_half = expand([np.log(c.weight_ratio) / 2 for c in configs])
        self.dim_mask = expand([[1.0 if d < c.dim else 0.0 for d in range(self.d_max)] for c in configs])

    def select(self, rows: torch.Tensor) -> _Batch:
        """The same batch restricted to some problems (rows of every per-problem tensor)."""
        sub = object.__new__(_Batch)
        sub.n, sub.d_max = self.n, self.d_max
        for name in ("kernel", "is_cosine", "lambda_d", "s", "rbf_c", "learned", "log_ratio_half", "dim_mask"):
            setattr(sub, name, getattr(self, name)[rows])
        return sub

    def features(self, y: torch.Tensor, on_sphere: torch.Tensor) -> torch.Tensor:
        X = y.reshape(-1, self.n, self.d_max) * self.dim_mask[:, None, :]
        unit = X / X.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        return torch.where(on_sphere[:, None, None], unit, X)

    def joint_parts(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint parameters p (B, N*d_max + N) -> features (B, N, d_max), weights (B, N)."""
        nd = self.n * self.d_max
        return self.features(p[:, :nd], self.is_cosine), self.weights(p[:, nd:])

    def polar_features(self, p: torch.Tensor) -> torch.Tensor:
        """Re-optimisation parameters p = [y, r] -> x_i = r_i y_i / |y_i| (B, N, d_max).

        Polar form: the norm penalty's kink then lies along the radius alone, so the angular
        problem stays smooth for L-BFGS (in Cartesian coordinates the line search stalls near
        the perturbed start). Same objective, better conditioned."""
        nd = self.n * self.d_max
        on_sphere = torch.ones(len(p), dtype=torch.bool, device=p.device)
        return self.features(p[:, :nd], on_sphere) * p[:, nd:, None]

    def weights(self, u: torch.Tensor) -> torch.Tensor:
        # sin, not tanh: the bound is reached at a finite u (with curvature), so a fit whose best
        # weights sit at the bound converges instead of chasing u to infinity.
        bounded = torch.softmax(self.log_ratio_half[:, None] * torch.sin(u), dim=1)
        uniform = torch.full_like(bounded, 1.0 / self.n)
        return torch.where(self.learned[:, None], bounded, uniform)

    def energy(self, X: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        K = torch.einsum("kbij,bk->bij", pair_kernels(X, self.s), self.kernel)
        return weighted_energy(K, w)


def use_compiled(engine: Engine, device: torch.device) -> bool:
    """``auto``: the compiled engine on CPU (when numba is importable), torch autograd on CUDA."""
    if engine not in ("auto", "compiled", "torch"):
        raise InvalidParameter(f"engine must be 'auto', 'compiled' or 'torch', got {engine!r}")
    if engine == "compiled" and device.type != "cpu":
        raise InvalidParameter("the compiled engine runs on the CPU; use engine='torch' on CUDA")
    if engine == "compiled" and not compiled.available():
        raise InvalidParameter("the compiled engine needs numba (pip install -r requirements.txt)")
    return engine == "compiled" or (engine == "auto" and device.type == "cpu" and compiled.available())


COMPILED_CHUNK = 8
"""Problems per thread in one call of the compiled engine (a chunk takes well under a second on
the sweep's sizes; between chunks the solve reports progress)."""


@dataclass
class Problem:
    """B independent minimisations defined for both engines: ``objective`` (torch, autograd) and
    ``arrays`` (the compiled engine's per-problem inputs scal, T, w, norm_ref; see ``compiled``)."""

    kind: Literal["joint", "reopt"]
    objective: Objective
    p0: torch.Tensor
    arrays: dict[str, np.ndarray]
    n: int
    d_max: int

    def solve(self, solver: SolverSettings, progress: Progress | None = None) -> LbfgsResult:
        """Minimise from ``p0`` on the chosen engine (same algorithm and stopping rules). The
        compiled engine runs the problems in chunks of ``COMPILED_CHUNK`` per thread, reporting
        between chunks (how a cancel is heard); the torch engine reports every iteration."""
        limits: dict[str, Any] = {"max_iter": solver.max_iter, "tol_grad": solver.tol_grad, "tol_change": solver.tol_change}
        if not use_compiled(solver.engine, self.p0.device):
            return batched_lbfgs(self.objective, self.p0, progress=progress, **limits)
        report = progress or silent
        a, x0 = self.arrays, self.p0.cpu().numpy()
        size = COMPILED_CHUNK * compiled.threads()
        parts = []
        for start in range(0, len(x0), size):
            report(start / len(x0), f"L-BFGS, problems {start + 1}-{min(start + size, len(x0))} of {len(x0)}")
            rows = slice(start, start + size)
            parts.append(
                compiled.solve(
                    self.kind, x0[rows], a["scal"][rows], a["T"][rows], a["w"][rows], a["norm_ref"][rows], self.n, self.d_max, **limits
                )
            )
        used = max(part[3] for part in parts)
        trace = np.concatenate([np.pad(part[2], ((0, used + 1 - len(part[2])), (0, 0)), mode="edge") for part in parts], axis=1)
        as_tensor = lambda v: torch.as_tensor(v, device=self.p0.device)  # noqa: E731
        return LbfgsResult(
            x=as_tensor(np.concatenate([p[0] for p in parts])),
            f=as_tensor(np.concatenate([p[1] for p in parts])),
            trace=as_tensor(trace),
            iterations=used,
            converged=as_tensor(np.concatenate([p[4] for p in parts])),
        )


def joint_problem(
    targets: Sequence[np.ndarray],
    jobs: Sequence[tuple[int, JointConfig]],
    restarts: int,
    seed: int,
    device: torch.device,
) -> tuple[Problem, _Batch]:
    """The joint step of every (target index, config) x ``restarts`` (targets already checked)."""
    n = targets[0].shape[0]
    configs = [c for _, c in jobs]
    batch = _Batch(configs, restarts, n, device)
    T = torch.as_tensor(np.stack(targets), dtype=DTYPE, device=device)[
        torch.as_tensor([i for i, _ in jobs], device=device).repeat_interleave(restarts)
    ]
    generator = torch.Generator().manual_seed(seed)
    b = len(configs) * restarts
    p0 = torch.cat(
        [torch.randn(b, n * batch.d_max, generator=generator, dtype=DTYPE), 0.1 * torch.randn(b, n, generator=generator, dtype=DTYPE)],
        dim=1,
    ).to(device)

    def objective(p: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        sub = batch.select(rows)
        X, w = sub.joint_parts(p)
        misfit = ((similarity_matrix(X, sub.is_cosine, sub.rbf_c) - T[rows]) ** 2).sum((1, 2))
        return sub.energy(X, w) + sub.lambda_d * misfit

    scal = compiled.scalars(
        compiled.JOINT_FIELDS,
        [
            {
                "kernel": kernel_index(c.kernel),
                "similarity": 1 if c.similarity == "cosine" else 2,
                "lambda_d": c.lambda_d,
                "s": c.s,
                "rbf_c": c.rbf_c,
                "learned": c.weights == "learned",
                "log_ratio_half": np.log(c.weight_ratio) / 2,
                "dim": c.dim,
            }
            for c in configs
        ],
    ).repeat(restarts, axis=0)
    zeros = np.zeros((b, n))
    arrays = {"scal": scal, "T": T.cpu().numpy(), "w": zeros, "norm_ref": zeros}
    return Problem("joint", objective, p0, arrays, n, batch.d_max), batch


def solve_joint(
    targets: Sequence[np.ndarray],
    jobs: Sequence[tuple[int, JointConfig]],
    restarts: int = 16,
    seed: int = 0,
    solver: SolverSettings = SolverSettings(),
    progress: Progress | None = None,
) -> list[JointResult]:
    """Every (target index, config) pair x ``restarts`` as one batched L-BFGS problem (sweeps pass
    looser tolerances; the engine is chosen by ``use_compiled``). Targets: (N, N) each."""
    checked = [check_target(t) for t in targets]
    n = checked[0].shape[0]
    if any(t.shape[0] != n for t in checked):
        raise InvalidParameter("all targets of one batch must have the same number of features")
    for _, config in jobs:
        validate_sizes(n, config.dim)
    if restarts < 1:
        raise InvalidParameter(f"restarts must be at least 1, got {restarts}")
    problem, batch = joint_problem(checked, jobs, restarts, seed, resolve_device(solver.device))
    solved = problem.solve(solver, progress)
    with torch.no_grad():
        X, w = batch.joint_parts(solved.x)
        S = similarity_matrix(X, batch.is_cosine, batch.rbf_c)
        E = batch.energy(X, w)
    values = solved.f.reshape(len(jobs), restarts)
    results = []
    for c, (target_index, config) in enumerate(jobs):
        equal = c * restarts + equal_minima(values[c].cpu().numpy())
        best = int(equal[0])
        S_best = S[best].cpu().numpy()
        results.append(
            JointResult(
                config=config,
                target=checked[target_index],
                features=X[best, :, : config.dim].cpu().numpy(),
                weights=w[best].cpu().numpy(),
                psm=S_best,
                error=float(np.linalg.norm(S_best - checked[target_index]) / n**2),
                energy=float(E[best]),
                objective=float(solved.f[best]),
                objectives=values[c].cpu().numpy(),
                trace=solved.trace[:, best].cpu().numpy(),
                minima=X[equal, :, : config.dim].cpu().numpy(),
                minima_weights=w[equal].cpu().numpy(),
            )
        )
    return results


def equal_minima(objectives: np.ndarray) -> np.ndarray:
    """Indices of the restarts whose objective (restarts,) is within :data:`EQUAL_OBJECTIVE` of the
    lowest (relative to its magnitude, at least 1e-12 absolute), the lowest first, then by index."""
    order = np.argsort(objectives, kind="stable")
    best = objectives[order[0]]
    within = objectives[order] - best <= EQUAL_OBJECTIVE * max(abs(best), 1e-6)
    return order[within]


def joint_optimize(
    target_psm: np.ndarray,
    dim: int,
    similarity: Similarity = "cosine",
    kernel: Kernel = "riesz",
    lambda_d: float = 100.0,
    restarts: int = 16,
    seed: int = 0,
    device: str = "auto",
    weights: Weights = "learned",
    s: float = 1.0,
    weight_ratio: float = 10.0,
    rbf_c: float = 1.0,
    engine: Engine = "auto",
) -> JointResult:
    """Fit N abstract features in R^dim (and importance weights) to a target PSM (N, N)."""
    config = JointConfig(
        dim=dim, similarity=similarity, kernel=kernel, lambda_d=lambda_d, s=s, weights=weights, weight_ratio=weight_ratio, rbf_c=rbf_c
    )
    return solve_joint([target_psm], [(0, config)], restarts, seed, SolverSettings(device=device, engine=engine))[0]


def reopt_problem(
    jobs: Sequence[tuple[JointResult, ReoptConfig]], seed: int, device: torch.device
) -> tuple[Problem, _Batch, torch.Tensor, torch.Tensor]:
    """The re-optimisation of every (joint result, setting); also returns the start (B, N, d_max)
    and the frozen weights (B, N)."""
    n = jobs[0][0].features.shape[0]
    batch = _Batch([joint.config for joint, _ in jobs], 1, n, device)
    d_max = batch.d_max
    pad = lambda a: np.pad(a, ((0, 0), (0, d_max - a.shape[1])))  # noqa: E731
    X_joint = torch.as_tensor(np.stack([pad(joint.features) for joint, _ in jobs]), dtype=DTYPE, device=device)
    w = torch.as_tensor(np.stack([joint.weights for joint, _ in jobs]), dtype=DTYPE, device=device)
    norms = X_joint.norm(dim=-1)  # (B, N): the n_i
    sigma = torch.as_tensor([r.perturbation_scale for _, r in jobs], dtype=DTYPE, device=device)
    lambda_x = torch.as_tensor([r.lambda_x for _, r in jobs], dtype=DTYPE, device=device)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(X_joint.shape, generator=generator, dtype=DTYPE).to(device)
    start = (X_joint + sigma[:, None, None] * norms[..., None] * noise) * batch.dim_mask[:, None, :]
    nd = n * d_max

    def objective(p: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        sub = batch.select(rows)
        deviation = torch.sqrt((p[:, nd:].abs() - norms[rows]) ** 2 + (HUBER_WIDTH * norms[rows]) ** 2).sum(1)
        return sub.energy(sub.polar_features(p), w[rows]) + lambda_x[rows] * deviation

    p0 = torch.cat([start.reshape(len(jobs), -1), start.norm(dim=-1)], dim=1)
    arrays = {
        "scal": compiled.scalars(
            compiled.REOPT_FIELDS,
            [
                {
                    "kernel": kernel_index(joint.config.kernel),
                    "lambda_x": r.lambda_x,
                    "s": joint.config.s,
                    "huber_width": HUBER_WIDTH,
                    "dim": joint.config.dim,
                }
                for joint, r in jobs
            ],
        ),
        "T": np.zeros((len(jobs), 1, 1)),
        "w": w.cpu().numpy(),
        "norm_ref": norms.cpu().numpy(),
    }
    return Problem("reopt", objective, p0, arrays, n, d_max), batch, start, w


def solve_reopt(
    jobs: Sequence[tuple[JointResult, ReoptConfig]],
    seed: int = 0,
    solver: SolverSettings = SolverSettings(),
    progress: Progress | None = None,
) -> list[ReoptResult]:
    """Re-optimise every (joint result, setting) pair as one batched problem."""
    if not jobs:
        return []
    problem, batch, start, w = reopt_problem(jobs, seed, resolve_device(solver.device))
    solved = problem.solve(solver, progress)
    with torch.no_grad():
        X = batch.polar_features(solved.x)
        S = similarity_matrix(X, batch.is_cosine, batch.rbf_c)
        E = batch.energy(X, w)
    results = []
    n = problem.n
    for b, (joint, config) in enumerate(jobs):
        dim = joint.config.dim
        S_b = S[b].cpu().numpy()
        results.append(
            ReoptResult(
                joint=joint,
                config=config,
                start=start[b, :, :dim].cpu().numpy(),
                features=X[b, :, :dim].cpu().numpy(),
                psm=S_b,
                distance=float(np.linalg.norm(S_b - joint.target) / n**2),
                energy=float(E[b]),
                objective=float(solved.f[b]),
                trace=solved.trace[:, b].cpu().numpy(),
            )
        )
    return results


def reoptimize(
    joint_result: JointResult,
    lambda_x: float = 10.0,
    perturbation_scale: float = 0.01,
    seed: int = 0,
    device: str = "auto",
    engine: Engine = "auto",
) -> ReoptResult:
    """Weights frozen; perturb the joint features by sigma * n_i noise and minimise E + lambda_x sum |n - n_i|."""
    setting = ReoptConfig(lambda_x=lambda_x, perturbation_scale=perturbation_scale)
    return solve_reopt([(joint_result, setting)], seed, SolverSettings(device=device, engine=engine))[0]
