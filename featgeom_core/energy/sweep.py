"""Hyper-parameter search and perturbation analysis (thesis 4.2-4.3, Figures 5-10), batched.

Every joint configuration of a grid (kernels x similarities x dims x lambda_d, for every target
and layer) is one batched L-BFGS problem; every re-optimisation (lambda_x x sigma x noise draws)
another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from featgeom_core.energy.joint import solve_joint, solve_reopt
from featgeom_core.energy.params import SWEEP_SOLVER, SolverSettings, SweepGrid
from featgeom_core.energy.result import JointResult, SweepRun
from featgeom_core.progress import Progress, silent, steps_progress, sub_progress


@dataclass(frozen=True)
class SweepTarget:
    """One target of a sweep: ``name`` ("real", "permuted", "shuffled_labels", ...), its PSM per
    similarity {similarity: (N, N)}, the layer it comes from (None for a target without one) and
    its ``replicate`` (which seed of a control; 0 for the real target)."""

    name: str
    psms: Mapping[str, np.ndarray]
    layer: int | None = None
    replicate: int = 0


def as_sweep_targets(targets: Sequence[SweepTarget] | Mapping[str, Mapping[str, np.ndarray]]) -> list[SweepTarget]:
    """A list of targets; a mapping {name: {similarity: PSM}} is one layer-less target per name."""
    if isinstance(targets, Mapping):
        return [SweepTarget(name, psms) for name, psms in targets.items()]
    return list(targets)


def run_sweep(
    targets: Sequence[SweepTarget] | Mapping[str, Mapping[str, np.ndarray]],
    grid: SweepGrid = SweepGrid(),
    restarts: int = 8,
    repeats: int = 3,
    seed: int = 0,
    progress: Progress | None = None,
    solver: SolverSettings = SWEEP_SOLVER,
    real_draws: int | None = None,
) -> SweepRun:
    """The grid for every target (e.g. the real PSM and its permuted control at several layers).

    Each row: target, replicate, layer, kernel, similarity, dim, lambda_d, lambda_x, sigma,
    joint_error, joint_objective, distances (one per noise draw), distance (their mean),
    distance_std and fit (index into ``joints``). Targets with the same N are solved together (one joint and one
    re-optimisation problem per N). ``solver`` defaults to ``SWEEP_SOLVER``'s looser tolerances.

    Each target's noise draws start in turn from its joint fit's equally good minima
    (``JointResult.minima``), so its distance is not the luck of which copy the best restart found.
    The real target has ``real_draws`` draws (default ``repeats``) where each control seed has
    ``repeats``: one configuration against a control's several seeds.
    """
    report = progress or silent
    by_size: dict[int, list[SweepTarget]] = {}
    for target in as_sweep_targets(targets):
        by_size.setdefault(next(iter(target.psms.values())).shape[0], []).append(target)
    rows: list[dict] = []
    joints: list[JointResult] = []
    for group, (n, group_targets) in enumerate(by_size.items()):
        share = steps_progress(report, group, len(by_size))
        matrices, jobs, owners = [], [], []
        for target in group_targets:
            for config in grid.joint_configs(n):
                if config.similarity not in target.psms:
                    continue
                matrices.append(target.psms[config.similarity])
                jobs.append((len(matrices) - 1, config))
                owners.append(target)
        share(0.05, f"joint optimisation of {len(jobs)} configurations x {restarts} restarts (N = {n})")
        fits = solve_joint(matrices, jobs, restarts=restarts, seed=seed, solver=solver, progress=sub_progress(share, 0.05, 0.6))
        settings = grid.reopt_settings()
        draws = [draws_of(target, repeats, real_draws) for target in owners]
        reopt_jobs = [(joint.from_minimum(d), setting) for joint, count in zip(fits, draws) for setting in settings for d in range(count)]
        share(0.6, f"re-optimisation of {len(reopt_jobs)} perturbed configurations (N = {n})")
        reopts = iter(solve_reopt(reopt_jobs, seed=seed + 1, solver=solver, progress=sub_progress(share, 0.6, 1.0)))
        for joint, target, count in zip(fits, owners, draws):
            for setting in settings:
                lx, sigma = setting.lambda_x, setting.perturbation_scale
                distances = np.asarray([next(reopts).distance for _ in range(count)])
                c = joint.config
                rows.append(
                    {
                        "target": target.name,
                        "replicate": target.replicate,
                        "layer": target.layer,
                        "kernel": c.kernel,
                        "similarity": c.similarity,
                        "dim": c.dim,
                        "lambda_d": c.lambda_d,
                        "lambda_x": lx,
                        "sigma": sigma,
                        "joint_error": joint.error,
                        "joint_objective": joint.objective,
                        "distances": distances.tolist(),
                        "distance": float(distances.mean()),
                        "distance_std": float(distances.std()),
                        "fit": len(joints),
                    }
                )
            joints.append(joint)
    report(1.0, "done")
    return SweepRun(rows=rows, joints=joints)


def draws_of(target: SweepTarget, repeats: int, real_draws: int | None) -> int:
    """How many noise draws ``target`` gets per re-optimisation setting (see :func:`run_sweep`)."""
    return real_draws if target.name == "real" and real_draws is not None else repeats


def best_configurations(rows: Sequence[dict]) -> list[dict]:
    """Per (target, replicate, layer, similarity, kernel): the row whose joint fit is closest to
    the target (ties broken by the smaller re-optimisation distance); the thesis's Figures 5 to 8."""
    best: dict[tuple, dict] = {}
    for row in rows:
        key = (row["target"], row.get("replicate", 0), row.get("layer"), row["similarity"], row["kernel"])
        rank = (row["joint_error"], row["distance"])
        if key not in best or rank < (best[key]["joint_error"], best[key]["distance"]):
            best[key] = row
    return list(best.values())


SelectionRule = Literal["joint_fit", "reoptimised"]
"""How a configuration is chosen for the perturbation curves: ``joint_fit``, the lab's default, per
kernel the real target's configuration whose joint fit is closest to the target (the step that
builds the abstract features, so a configuration is judged before any perturbation it is then
tested with); ``reoptimised``, the thesis's rule (§4.2 and §4.3), per layer and similarity the
configuration, energy function included, with the lowest distance after re-optimisation at the
smallest perturbation scale."""


def curves_of_best(rows: Sequence[dict], similarity: str, layer: int | None = None, rule: SelectionRule = "joint_fit") -> list[dict]:
    """The rows to plot as distance-against-sigma curves for one similarity (and one layer of a
    multi-layer sweep): the configurations (kernel, dim, lambda_d, lambda_x) that ``rule`` picks for
    the *real* target, for the real target and every control replicate alike, so the curves of a
    configuration differ only in the target (the thesis's Figures 9 and 10)."""
    rows = [r for r in rows if r["similarity"] == similarity and r.get("layer") == layer]
    real = [r for r in rows if r["target"] == "real"]
    if rule == "reoptimised":
        smallest = min((r["sigma"] for r in real), default=0.0)
        at_smallest = [r for r in real if np.isclose(r["sigma"], smallest)]
        chosen = [min(at_smallest, key=lambda r: (r["distance"], r["joint_error"]))] if at_smallest else []
    else:
        chosen = best_configurations(real)
    keys = {configuration_of(b) for b in chosen}
    return [r for r in rows if configuration_of(r) in keys]


def configuration_of(row: dict) -> tuple[str, int, float, float]:
    """A sweep row's configuration: (kernel, dim, lambda_d, lambda_x)."""
    return (row["kernel"], row["dim"], row["lambda_d"], row["lambda_x"])
