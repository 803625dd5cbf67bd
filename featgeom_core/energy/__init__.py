"""Energy minimisation of abstract features (thesis sections 3.3-3.7, 4.2-4.3), batched in torch."""

from featgeom_core.energy.joint import (
    JointConfig,
    JointResult,
    ReoptConfig,
    ReoptResult,
    joint_optimize,
    reoptimize,
    solve_joint,
    solve_reopt,
)
from featgeom_core.energy.kernels import KERNELS, energy
from featgeom_core.energy.reference import MatchedReference, ReferenceResult, matched_reference, minimize_energy
from featgeom_core.energy.sweep import SweepGrid, SweepResult, SweepTarget, best_configurations, curves_of_best, run_sweep

__all__ = [
    "KERNELS", "JointConfig", "JointResult", "MatchedReference", "ReferenceResult", "ReoptConfig", "ReoptResult", "SweepGrid", "SweepResult", "SweepTarget",
    "best_configurations", "curves_of_best", "energy", "joint_optimize", "matched_reference", "minimize_energy", "reoptimize",
    "run_sweep", "solve_joint", "solve_reopt",
]
