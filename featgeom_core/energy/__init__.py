"""Energy minimisation of abstract features (thesis sections 3.3-3.7 and 4.2-4.3), batched.

Read top-down: ``kernels`` (3.3-3.4: pair kernels, weighted energy), ``reference`` (minimum-energy
configurations), ``joint`` (3.5-3.7: joint optimisation with importance weights, re-optimisation
under a norm penalty), ``sweep`` (4.2-4.3: hyper-parameter search and perturbation curves),
``matching`` (Appendix A: permutation matching of PSMs). ``params`` and ``result`` declare what
goes in and comes out, ``run`` the jobs' computations, ``jobs`` registers the kinds; ``lbfgs`` and ``compiled`` are the two engines.
"""

from featgeom_core.energy.joint import (
    joint_optimize,
    reoptimize,
    solve_joint,
    solve_reopt,
)
from featgeom_core.energy.kernels import KERNELS, energy
from featgeom_core.energy.matching import match_permutation, psm_distance
from featgeom_core.energy.params import (
    EnergyFitParams,
    EnergySweepParams,
    JointConfig,
    ReoptConfig,
    SweepGrid,
)
from featgeom_core.energy.reference import matched_reference, minimize_energy
from featgeom_core.energy.result import (
    BestFit,
    EnergyFitResult,
    EnergySweepResult,
    JointResult,
    MatchedReference,
    ReferenceResult,
    ReoptResult,
    SweepRun,
)
from featgeom_core.energy.sweep import (
    SweepTarget,
    best_configurations,
    curves_of_best,
    run_sweep,
)

__all__ = [
    "KERNELS",
    "BestFit",
    "EnergyFitParams",
    "EnergyFitResult",
    "EnergySweepParams",
    "EnergySweepResult",
    "JointConfig",
    "JointResult",
    "MatchedReference",
    "ReferenceResult",
    "ReoptConfig",
    "ReoptResult",
    "SweepGrid",
    "SweepRun",
    "SweepTarget",
    "best_configurations",
    "curves_of_best",
    "energy",
    "joint_optimize",
    "match_permutation",
    "matched_reference",
    "minimize_energy",
    "psm_distance",
    "reoptimize",
    "run_sweep",
    "solve_joint",
    "solve_reopt",
]
