"""The energy job kinds' computations: validated params in, a result out."""

from __future__ import annotations

import numpy as np

from featgeom_core.energy.params import EnergyFitParams, EnergySweepParams
from featgeom_core.energy.result import BestFit, EnergyFitResult, EnergySweepResult
from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.progress import Progress, sub_progress


def run_fit(params: EnergyFitParams, report: Progress) -> JobOutput[EnergyFitResult]:
    """The ``energy.fit`` job: the joint optimisation and the kernel's matched reference configuration."""
    from featgeom_core.energy.joint import solve_joint
    from featgeom_core.energy.reference import matched_reference

    target = np.asarray(params.target)
    report(0.1, f"joint optimisation, {params.restarts} restarts")
    joint = solve_joint(
        [target],
        [(0, params.joint_config())],
        restarts=params.restarts,
        seed=params.seed,
        progress=sub_progress(report, 0.1, 0.7, "joint: "),
    )[0]
    reference = matched_reference(
        target,
        params.dim,
        params.kernel,
        s=params.s,
        similarity=params.similarity,
        restarts=params.restarts,
        seed=params.seed,
        progress=sub_progress(report, 0.7, 1.0, "reference: "),
    )
    return JobOutput(
        EnergyFitResult(
            joint=joint,
            reference_psm=reference.psm,
            reference_features=reference.reference.X,
            reference_distance=reference.distance,
            reference_energy=reference.reference.energy,
            feature_names=list(params.features),
            label=params.label,
        )
    )


def run_sweep_job(params: EnergySweepParams, report: Progress) -> JobOutput[EnergySweepResult]:
    """The ``energy.sweep`` job: the whole grid (one batched problem per N)."""
    from featgeom_core.energy.sweep import SweepTarget, best_configurations, run_sweep

    grid = params.grid()
    targets = [
        SweepTarget(t.name, {kind: np.asarray(m) for kind, m in t.psms.items() if kind in grid.similarities}, t.layer, t.replicate)
        for t in params.targets
    ]
    sweep = run_sweep(
        targets, grid, restarts=params.restarts, repeats=params.repeats, seed=params.seed, progress=report, real_draws=params.real_draws
    )
    best = [{**row, "best_index": k} for k, row in enumerate(best_configurations(sweep.rows))]
    fits = [BestFit(fit.psm, fit.features, fit.weights, fit.target) for fit in (sweep.joints[row["fit"]] for row in best)]
    names = {str(t.layer): list(t.features) for t in params.targets if t.features}
    return JobOutput(
        EnergySweepResult(rows=sweep.rows, best=best, fits=fits, label=params.label, names=names, probe_warning=params.probe_warning)
    )
