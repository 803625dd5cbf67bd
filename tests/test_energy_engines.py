"""The compiled CPU engine against the torch engine, which defines the objectives: equal values
and autograd gradients, the same minima, the same ground truth, and safe concurrent use."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
import torch

from featgeom_core.energy import (
    SweepGrid,
    compiled,
    joint_optimize,
    minimize_energy,
    reoptimize,
)
from featgeom_core.energy.joint import joint_problem, reopt_problem, solve_joint
from featgeom_core.energy.params import JointConfig, ReoptConfig, SolverSettings
from featgeom_core.errors import FeatgeomError
from featgeom_core.lbfgs import _value_and_grad
from featgeom_core.probing import psm

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def _noisy_simplex_targets(n: int = 8, noise: float = 0.05) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    X = minimize_energy(n, n - 1, "riesz", seed=0).X + noise * rng.normal(size=(n, n - 1))
    return [psm(X), psm(X, "rbf", 1.0)]


def _varied_configs() -> list[JointConfig]:
    """Every kernel x similarity x weighting, plus unusual exponents, widths, ratios and dims."""
    configs = [
        JointConfig(dim=d, similarity=sim, kernel=k, lambda_d=ld, weights=wts)  # type: ignore[arg-type]
        for (k, sim, wts), d, ld in zip(
            itertools.product(("exp", "log", "riesz"), ("cosine", "rbf"), ("learned", "uniform")),
            itertools.cycle((2, 3, 5)),
            itertools.cycle((10.0, 1000.0)),
        )
    ]
    return configs + [
        JointConfig(dim=3, kernel="riesz", s=-0.5),
        JointConfig(dim=4, kernel="riesz", s=2.5, similarity="rbf", rbf_c=0.3),
        JointConfig(dim=2, kernel="exp", weight_ratio=100.0),
    ]


def _compare(problem, points: torch.Tensor) -> None:
    a = problem.arrays
    f_compiled, g_compiled = compiled.value_and_grad(
        problem.kind, points.numpy(), a["scal"], a["T"], a["w"], a["norm_ref"], problem.n, problem.d_max
    )
    f_torch, g_torch = _value_and_grad(problem.objective, points, torch.arange(len(points)))
    np.testing.assert_allclose(f_compiled, f_torch.numpy(), rtol=1e-12)
    scale = np.abs(g_torch.numpy()).max(axis=1, keepdims=True)
    np.testing.assert_allclose(g_compiled / scale, g_torch.numpy() / scale, atol=1e-12)


def test_joint_values_and_gradients_equal_autograd() -> None:
    configs = _varied_configs()
    targets = _noisy_simplex_targets()
    problem, _ = joint_problem(targets, [(0 if c.similarity == "cosine" else 1, c) for c in configs], 3, 0, torch.device("cpu"))
    _compare(problem, problem.p0)
    _compare(problem, problem.p0 + 0.3 * torch.randn(problem.p0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64))


def test_reoptimisation_values_and_gradients_equal_autograd() -> None:
    configs = _varied_configs()
    targets = _noisy_simplex_targets()
    joints = solve_joint(
        targets,
        [(0 if c.similarity == "cosine" else 1, c) for c in configs],
        restarts=1,
        solver=SolverSettings(max_iter=20, engine="torch"),
    )
    jobs = [(j, ReoptConfig(lambda_x=lx, perturbation_scale=sigma)) for j in joints for lx, sigma in ((1.0, 0.01), (100.0, 0.3))]
    problem, *_ = reopt_problem(jobs, 0, torch.device("cpu"))
    _compare(problem, problem.p0)
    moved = problem.p0.clone()
    moved[:, problem.n * problem.d_max] *= -0.5  # a negative radius: |r| in the penalty
    _compare(problem, moved)


@pytest.mark.parametrize("engine", ["compiled", "torch"])
@pytest.mark.parametrize("kernel", ["exp", "log", "riesz"])
def test_both_engines_fit_an_octahedron_and_keep_it(engine: str, kernel: str) -> None:
    X = minimize_energy(6, 3, kernel).X
    joint = joint_optimize(X @ X.T, 3, "cosine", kernel, lambda_d=100, restarts=8, weights="uniform", engine=engine)  # type: ignore[arg-type]
    assert joint.error < 1e-4
    assert reoptimize(joint, lambda_x=10, perturbation_scale=0.01, seed=1, engine=engine).distance < 1e-3  # type: ignore[arg-type]


def test_engines_reach_the_same_minima_from_the_same_starts() -> None:
    grid = SweepGrid(dims=(2, 4), lambda_d=(10.0, 1000.0))
    configs = grid.joint_configs(8)
    jobs = [(0 if c.similarity == "cosine" else 1, c) for c in configs]
    targets = _noisy_simplex_targets()
    fast = solve_joint(targets, jobs, restarts=4, solver=SolverSettings(engine="compiled"))
    reference = solve_joint(targets, jobs, restarts=4, solver=SolverSettings(engine="torch"))
    per_restart = np.concatenate([r.objectives for r in fast]), np.concatenate([r.objectives for r in reference])
    same = np.abs(per_restart[0] - per_restart[1]) <= 1e-6 * np.abs(per_restart[1])
    assert same.mean() >= 0.6  # the rest are other local minima of a non-convex problem
    best = np.array([r.objective for r in fast]), np.array([r.objective for r in reference])
    assert np.median(best[0]) <= np.median(best[1]) * (1 + 1e-3)


def test_compiled_traces_decrease_and_stop_at_convergence() -> None:
    targets = _noisy_simplex_targets()
    result = solve_joint(targets, [(0, JointConfig(dim=3))], restarts=4, solver=SolverSettings(max_iter=400, engine="compiled"))[0]
    assert np.all(np.diff(result.trace) <= 1e-12 * np.abs(result.trace[:-1]))
    assert result.trace[-1] == pytest.approx(result.objective, rel=1e-15)


def test_concurrent_solves_from_threads_are_safe_and_identical() -> None:
    """Streamlit runs sessions in threads; numba's default threading layer would abort the
    process on concurrent parallel launches without the engine's lock."""
    targets = _noisy_simplex_targets()
    jobs = [(0, JointConfig(dim=d)) for d in (2, 3, 4)]
    expected = [r.objective for r in solve_joint(targets, jobs, restarts=4)]
    outcomes: list[list[float]] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append([r.objective for r in solve_joint(targets, jobs, restarts=4)])) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [expected] * 4


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(FeatgeomError, match="engine = .fortran. is not allowed"):
        joint_optimize(np.eye(3), 2, engine="fortran")  # type: ignore[arg-type]
