"""The energy analysis as jobs: ``energy.fit`` (one joint optimisation and its reference
configuration) and ``energy.sweep`` (the hyper-parameter search and perturbation grid)."""

from __future__ import annotations

from featgeom_core.energy.params import EnergyFitParams, EnergySweepParams
from featgeom_core.energy.result import EnergyFitResult, EnergySweepResult
from featgeom_core.energy.run import run_fit, run_sweep_job
from featgeom_core.jobs.protocol import JobKind, register

_EXAMPLE_PSM = [[1.0, 0.2, -0.4], [0.2, 1.0, 0.1], [-0.4, 0.1, 1.0]]

ENERGY_FIT = register(
    JobKind(
        "energy.fit",
        "one joint optimisation of abstract features, with its reference",
        EnergyFitParams,
        run_fit,
        EnergyFitResult,
        page="pages/energy.py",
        example={"target": _EXAMPLE_PSM, "features": ["a", "b", "c"], "dim": 2, "restarts": 2},
    )
)
ENERGY_SWEEP = register(
    JobKind(
        "energy.sweep",
        "energy hyper-parameter search and perturbation grid",
        EnergySweepParams,
        run_sweep_job,
        EnergySweepResult,
        page="pages/perturbation.py",
        wants_gpu=True,
        example={
            "targets": [{"name": "real", "layer": 0, "features": ["a", "b", "c"], "psms": {"cosine": _EXAMPLE_PSM}}],
            "kernels": ["riesz"],
            "similarities": ["cosine"],
            "dims": [2],
            "lambda_d": [100.0],
            "lambda_x": [10.0],
            "sigmas": [0.01],
            "restarts": 2,
            "repeats": 1,
        },
    )
)
