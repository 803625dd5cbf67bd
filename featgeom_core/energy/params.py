"""The energy analysis's parameters, declared once: field types shared by the engine's configs
(``JointConfig``, ``ReoptConfig``, ``SweepGrid``) and the job kinds (``energy.jobs``).

Defaults are the thesis's (section 4.2): lambda_d 100, lambda_x 10, Riesz s = 1, learned weights.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, model_validator

from featgeom_core.energy.kernels import Kernel
from featgeom_core.errors import InvalidParameter
from featgeom_core.params import Params

Similarity = Literal["cosine", "rbf"]
Weights = Literal["learned", "uniform"]
Engine = Literal["auto", "compiled", "torch"]
MAX_GRID_VALUES = 32  # values per grid axis: a grid is a product, so its size grows fast

Dim = Annotated[int, Field(ge=1, le=256, description="dimension of the abstract features (must be below the number of features N)")]
SimilarityField = Annotated[Similarity, Field(description="PSM similarity: cosine (norm-free) or rbf (exp(-|x_i - x_j|^2 / c))")]
KernelField = Annotated[Kernel, Field(description="pair kernel: exp = exp(cos); log = -log|x_i - x_j|; riesz = sgn(s) |x_i - x_j|^(-s)")]
LambdaD = Annotated[float, Field(ge=1e-3, le=1e6, description="lambda_d, weight of the PSM misfit sum (d_p - T)^2 against the energy (dimensionless)")]
RieszS = Annotated[float, Field(ge=-5.0, le=10.0, description="Riesz exponent s (0 is the -log kernel); ignored by the other kernels")]
WeightsField = Annotated[Weights, Field(description="importance weights: learned (bounded softmax) or uniform 1/N")]
WeightRatio = Annotated[float, Field(gt=1.0, le=1e4, description="bound on largest / smallest learned weight")]
RbfWidth = Annotated[float, Field(gt=0, le=1e6, description="c of the abstract features' RBF similarity, in squared feature units")]
LambdaX = Annotated[float, Field(ge=1e-3, le=1e6, description="lambda_x, weight of the norm penalty sum |(|x_i|) - n_i| in re-optimisation")]
PerturbationScale = Annotated[float, Field(ge=0.0, le=10.0, description="sigma: the perturbation's standard deviation, relative to each feature's norm n_i")]
FitRestarts = Annotated[int, Field(ge=1, le=512, description="random restarts of the joint optimisation (the best is kept)")]
SweepRestarts = Annotated[int, Field(ge=1, le=64, description="random restarts per joint configuration")]
NoiseDraws = Annotated[int, Field(ge=1, le=32, description="noise draws per sigma (the curves show their mean and spread)")]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1, description="random seed")]
Label = Annotated[str, Field(max_length=500, description="free text shown with the result (model, feature set, layer)")]


class JointFields(Params):
    """What a user chooses for one joint fit (thesis 3.5-3.6); shared by ``JointConfig`` and the
    ``energy.fit`` job."""

    dim: Dim
    similarity: SimilarityField = "cosine"
    kernel: KernelField = "riesz"
    lambda_d: LambdaD = 100.0
    s: RieszS = 1.0
    weights: WeightsField = "learned"
    weight_ratio: WeightRatio = 10.0

    @model_validator(mode="after")
    def _riesz_exponent(self) -> "JointFields":
        if self.kernel == "riesz" and self.s == 0:
            raise ValueError("Riesz s = 0 is the -log kernel: use kernel='log'")
        return self

    def joint_config(self) -> "JointConfig":
        """These choices as an engine configuration."""
        return JointConfig(**{name: getattr(self, name) for name in JointFields.model_fields})


class JointConfig(JointFields):
    """One configuration of the joint step, as the engine takes it."""

    rbf_c: RbfWidth = 1.0


class ReoptConfig(Params):
    """One re-optimisation setting (thesis 3.7): norm penalty lambda_x and perturbation scale sigma."""

    lambda_x: LambdaX = 10.0
    perturbation_scale: PerturbationScale = 0.01


class SolverSettings(Params):
    """Where and how long the batched L-BFGS runs (see ``lbfgs.batched_lbfgs`` for the stopping rules)."""

    engine: Engine = Field("auto", description="auto (compiled on CPU, torch on CUDA), compiled (numba, CPU) or torch (autograd)")
    device: str = Field("auto", max_length=32, description="auto (CUDA when present), cpu or cuda[:n]")
    max_iter: int = Field(1000, ge=1, le=100_000, description="L-BFGS iterations at most, per problem")
    tol_grad: float = Field(1e-10, gt=0, le=1.0, description="stop when the largest gradient entry is below this")
    tol_change: float = Field(1e-13, gt=0, le=1.0, description="stop when the objective changes by less than this (relative)")


# Sweeps trade the last digits for time: on the benchmark grid the median final objective is
# within 1e-8 relative of a 3000-iteration, machine-precision run.
SWEEP_SOLVER = SolverSettings(max_iter=300, tol_grad=1e-8, tol_change=1e-11)


class SweepGrid(Params):
    """The grid of the hyper-parameter search (thesis 4.2): every combination is fitted, perturbed
    and re-optimised."""

    kernels: tuple[Kernel, ...] = Field(("exp", "log", "riesz"), min_length=1, max_length=3, description="pair kernels to fit with")
    similarities: tuple[Similarity, ...] = Field(("cosine", "rbf"), min_length=1, max_length=2, description="PSM similarities to fit")
    dims: tuple[Dim, ...] = Field((2, 3, 4, 5), min_length=1, max_length=MAX_GRID_VALUES, description="abstract feature dimensions (those below N are used)")
    lambda_d: tuple[LambdaD, ...] = Field((10.0, 100.0, 1000.0), min_length=1, max_length=MAX_GRID_VALUES, description="lambda_d values (PSM misfit weight)")
    lambda_x: tuple[LambdaX, ...] = Field((10.0,), min_length=1, max_length=MAX_GRID_VALUES, description="lambda_x values (norm penalty)")
    sigmas: tuple[PerturbationScale, ...] = Field((0.01, 0.03, 0.1, 0.3), min_length=1, max_length=MAX_GRID_VALUES, description="perturbation scales sigma")
    weights: WeightsField = "learned"
    weight_ratio: WeightRatio = 10.0
    s: RieszS = 1.0

    def joint_configs(self, n_features: int) -> list[JointConfig]:
        """Every joint configuration whose dim is below N."""
        dims = [d for d in self.dims if d < n_features]
        if not dims:
            raise InvalidParameter(f"no dim in {list(self.dims)} is below N = {n_features}")
        return [
            JointConfig(dim=d, similarity=sim, kernel=k, lambda_d=ld, s=self.s, weights=self.weights, weight_ratio=self.weight_ratio)
            for k, sim, d, ld in itertools.product(self.kernels, self.similarities, dims, self.lambda_d)
        ]

    def reopt_settings(self) -> list[ReoptConfig]:
        """Every (lambda_x, sigma) re-optimisation setting."""
        return [ReoptConfig(lambda_x=lx, perturbation_scale=sigma) for lx, sigma in itertools.product(self.lambda_x, self.sigmas)]
