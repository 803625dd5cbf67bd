"""The energy engine against the thesis's scipy procedure, same target, same process.

Target: N = 8, a noisy simplex (8 unit vectors of R^7 at cosine -1/7, plus noise 0.05).
Grid: 3 kernels x 2 similarities x dim {2,3,4,5} x lambda_d {10,100,1000} (72 joint fits),
each re-optimised at lambda_x {1,10,100} x sigma {0.01,0.1}: 432 configurations.

Baseline (the thesis): per configuration, scipy conjugate gradient with numerical gradients for
the joint step (one start), then Powell for re-optimisation; run on a random sample of the grid.
Ours: the whole grid in one batched run (8 restarts per joint fit), on the compiled CPU engine
(the default on CPU) and on the torch autograd engine (the default on CUDA), both timed here.
Target (issue 4): >= 1000x less time per configuration, with an equal or lower median final
joint objective on the sampled configurations.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy.optimize import minimize

from featgeom_core.config import resolve_device
from featgeom_core.energy import SweepGrid, minimize_energy, run_sweep
from featgeom_core.energy.joint import HUBER_WIDTH
from featgeom_core.energy.params import SWEEP_SOLVER, JointConfig
from featgeom_core.probing import psm

KERNEL_FUNCS = {
    "exp": lambda cos, dist, s: np.exp(cos),
    "log": lambda cos, dist, s: -np.log(dist),
    "riesz": lambda cos, dist, s: np.sign(s) * dist ** (-s),
}


def numpy_parts(p: np.ndarray, n: int, config: JointConfig) -> tuple[np.ndarray, np.ndarray]:
    X = p[: n * config.dim].reshape(n, config.dim)
    if config.similarity == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    z = np.log(config.weight_ratio) / 2 * np.sin(p[n * config.dim :])
    w = np.exp(z - z.max())
    return X, w / w.sum()


def numpy_energy(X: np.ndarray, w: np.ndarray, kernel: str, s: float) -> float:
    off = ~np.eye(len(X), dtype=bool)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    dist = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1) + np.eye(len(X)))
    K = KERNEL_FUNCS[kernel](unit @ unit.T, dist, s)
    return float((K * np.outer(w, w))[off].sum())


def numpy_similarity(X: np.ndarray, config: JointConfig) -> np.ndarray:
    if config.similarity == "cosine":
        unit = X / np.linalg.norm(X, axis=1, keepdims=True)
        return unit @ unit.T
    return np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / config.rbf_c)


def thesis_procedure(target: np.ndarray, config: JointConfig, lambda_x: float, sigma: float, seed: int) -> tuple[float, float]:
    """Joint step by CG with finite-difference gradients, re-optimisation by Powell. Returns (joint objective, seconds)."""
    n = len(target)
    rng = np.random.default_rng(seed)

    def joint(p: np.ndarray) -> float:
        X, w = numpy_parts(p, n, config)
        return numpy_energy(X, w, config.kernel, config.s) + config.lambda_d * float(((numpy_similarity(X, config) - target) ** 2).sum())

    start = time.perf_counter()
    fitted = minimize(joint, np.concatenate([rng.normal(size=n * config.dim), 0.1 * rng.normal(size=n)]), method="CG")
    X, w = numpy_parts(fitted.x, n, config)
    norms = np.linalg.norm(X, axis=1)
    x0 = (X + sigma * norms[:, None] * rng.normal(size=X.shape)).ravel()

    def reopt(q: np.ndarray) -> float:
        Y = q.reshape(n, config.dim)
        deviation = np.sqrt((np.linalg.norm(Y, axis=1) - norms) ** 2 + (HUBER_WIDTH * norms) ** 2).sum()
        return numpy_energy(Y, w, config.kernel, config.s) + lambda_x * deviation

    minimize(reopt, x0, method="Powell")
    return float(fitted.fun), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=8, help="grid configurations run through the scipy baseline")
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    simplex = minimize_energy(8, 7, "riesz", seed=0).X
    noisy = simplex + 0.05 * rng.normal(size=simplex.shape)
    targets = {"cosine": psm(noisy), "rbf": psm(noisy, "rbf", 1.0)}
    grid = SweepGrid(dims=(2, 3, 4, 5), lambda_d=(10.0, 100.0, 1000.0), lambda_x=(1.0, 10.0, 100.0), sigmas=(0.01, 0.1))  # issue 4's grid
    n_configs = len(grid.joint_configs(8)) * len(grid.lambda_x) * len(grid.sigmas)

    device = resolve_device(args.device)
    engines = ["torch"] if device.type == "cuda" else ["compiled", "torch"]
    tiny = SweepGrid(kernels=("riesz",), similarities=("cosine",), dims=(2,), lambda_d=(10.0,), lambda_x=(1.0,), sigmas=(0.01,))
    totals, rows_by_engine = {}, {}
    for engine in engines:
        run_sweep(
            {"target": targets},
            tiny,
            restarts=2,
            repeats=1,
            solver=SWEEP_SOLVER.model_copy(update={"device": args.device, "engine": engine}),
        )  # warm-up (and numba's compile)
        start = time.perf_counter()
        rows_by_engine[engine] = run_sweep(
            {"target": targets},
            grid,
            restarts=args.restarts,
            repeats=1,
            solver=SWEEP_SOLVER.model_copy(update={"device": args.device, "engine": engine}),
        ).rows
        totals[engine] = time.perf_counter() - start
    rows = rows_by_engine[engines[0]]

    joint_configs = grid.joint_configs(8)
    picks = rng.choice(len(joint_configs), size=args.sample, replace=False)
    baseline_seconds, baseline_objectives, ours_objectives = [], [], []
    for i, pick in enumerate(picks):
        config = joint_configs[pick]
        lambda_x, sigma = grid.lambda_x[i % 3], grid.sigmas[i % 2]
        objective, seconds = thesis_procedure(targets[config.similarity], config, lambda_x, sigma, seed=i)
        baseline_seconds.append(seconds)
        baseline_objectives.append(objective)
        ours_objectives.append(
            next(
                r["joint_objective"]
                for r in rows
                if r["kernel"] == config.kernel
                and r["similarity"] == config.similarity
                and r["dim"] == config.dim
                and r["lambda_d"] == config.lambda_d
            )
        )
        print(
            f"  baseline {config.kernel:>5} {config.similarity:>6} dim {config.dim} lambda_d {config.lambda_d:>6g}: "
            f"{seconds:7.2f} s, joint objective {objective:.6g} (ours, {engines[0]} engine: {ours_objectives[-1]:.6g})"
        )

    per_config_baseline = statistics.mean(baseline_seconds)
    print(f"grid: {n_configs} configurations ({len(joint_configs)} joint fits x {len(grid.lambda_x) * len(grid.sigmas)} re-optimisations)")
    for engine in engines:
        print(
            f"ours ({engine} engine on {device}), whole grid in one run ({args.restarts} restarts per fit): "
            f"{totals[engine]:.2f} s = {totals[engine] / n_configs * 1000:.2f} ms per configuration; "
            f"median joint objective over the grid {statistics.median(r['joint_objective'] for r in rows_by_engine[engine]):.6g}"
        )
    print(
        f"thesis scipy procedure (CG + numerical gradients, then Powell; 1 start): {per_config_baseline:.2f} s per configuration "
        f"(mean of {len(picks)})"
    )
    for engine in engines:
        ratio = per_config_baseline / (totals[engine] / n_configs)
        by_median = statistics.median(baseline_seconds) / (totals[engine] / n_configs)
        print(
            f"speed-up per configuration, {engine} engine: {ratio:,.0f}x (target >= 1000x; against the median sampled "
            f"baseline configuration {by_median:,.0f}x); per restart: {ratio * args.restarts:,.0f}x"
        )
    print(
        f"median final joint objective on the sample: ours {statistics.median(ours_objectives):.6g}, "
        f"baseline {statistics.median(baseline_objectives):.6g} (ours must be <=)"
    )


if __name__ == "__main__":
    main()
