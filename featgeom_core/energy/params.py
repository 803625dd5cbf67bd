"""The energy analysis's parameters, declared once: field types shared by the engine's configs
(``JointConfig``, ``ReoptConfig``, ``SweepGrid``) and the job kinds (``energy.jobs``).

Defaults: lambda_x 10, Riesz s = 1, learned weights, and lambda_d 100. lambda_d is the lab's choice,
not the thesis's: the thesis sets it "to some large value, on the order of 1000" (section 3.5) so
that the PSM misfit is optimised first, and searches it with the other hyper-parameters (section
4.2), as the perturbation grid here does (10, 100, 1000). A fit's default is the grid's middle value.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from featgeom_core.energy.kernels import Kernel
from featgeom_core.errors import InvalidParameter
from featgeom_core.params import Params, Seed, Similarity

Weights = Literal["learned", "uniform"]
Engine = Literal["auto", "compiled", "torch"]
MAX_GRID_VALUES = 32  # values per grid axis: a grid is a product, so its size grows fast

Dim = Annotated[int, Field(ge=1, le=256, description="dimension of the abstract features (must be below the number of features N)")]
SimilarityField = Annotated[Similarity, Field(description="PSM similarity: cosine (norm-free) or rbf (exp(-|x_i - x_j|^2 / c))")]
KernelField = Annotated[Kernel, Field(description="pair kernel: exp = exp(cos); log = -log|x_i - x_j|; riesz = sgn(s) |x_i - x_j|^(-s)")]
LambdaD = Annotated[
    float, Field(ge=1e-3, le=1e6, description="lambda_d, weight of the PSM misfit sum (d_p - T)^2 against the energy (dimensionless)")
]
RieszS = Annotated[float, Field(ge=-5.0, le=10.0, description="Riesz exponent s (0 is the -log kernel); ignored by the other kernels")]
WeightsField = Annotated[Weights, Field(description="importance weights: learned (bounded softmax) or uniform 1/N")]
WeightRatio = Annotated[float, Field(gt=1.0, le=1e4, description="bound on largest / smallest learned weight")]
RbfWidth = Annotated[float, Field(gt=0, le=1e6, description="c of the abstract features' RBF similarity, in squared feature units")]
LambdaX = Annotated[
    float, Field(ge=1e-3, le=1e6, description="lambda_x, weight of the norm penalty sum |(|x_i|) - n_i| in re-optimisation")
]
PerturbationScale = Annotated[
    float, Field(ge=0.0, le=10.0, description="sigma: the perturbation's standard deviation, relative to each feature's norm n_i")
]
FitRestarts = Annotated[int, Field(ge=1, le=512, description="random restarts of the joint optimisation (the best is kept)")]
SweepRestarts = Annotated[int, Field(ge=1, le=64, description="random restarts per joint configuration")]
NoiseDraws = Annotated[int, Field(ge=1, le=32, description="noise draws per sigma (the curves show their mean and spread)")]
Label = Annotated[str, Field(max_length=500, description="free text shown with the result (model, feature set, layer)")]


class JointFields(Params):
    """What a user chooses for one joint fit (thesis 3.5-3.6); shared by ``JointConfig`` and the
    ``energy.fit`` job."""

    dim: Dim
    similarity: SimilarityField = "cosine"
    kernel: KernelField = "riesz"
    lambda_d: LambdaD = 100.0  # the lab's; the thesis: "on the order of 1000" (section 3.5); see the module docstring
    s: RieszS = 1.0
    weights: WeightsField = "learned"
    weight_ratio: WeightRatio = 10.0

    @model_validator(mode="after")
    def _riesz_exponent(self) -> JointFields:
        if self.kernel == "riesz" and self.s == 0:
            raise ValueError("Riesz s = 0 is the -log kernel: use kernel='log'")
        return self

    def joint_config(self) -> JointConfig:
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
    """Where and how long the batched L-BFGS runs (see ``featgeom_core.lbfgs.batched_lbfgs`` for the stopping rules)."""

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
    dims: tuple[Dim, ...] = Field(
        (2, 3, 4, 5), min_length=1, max_length=MAX_GRID_VALUES, description="abstract feature dimensions (those below N are used)"
    )
    lambda_d: tuple[LambdaD, ...] = Field(
        (10.0, 100.0, 1000.0), min_length=1, max_length=MAX_GRID_VALUES, description="lambda_d values (PSM misfit weight)"
    )
    lambda_x: tuple[LambdaX, ...] = Field((10.0,), min_length=1, max_length=MAX_GRID_VALUES, description="lambda_x values (norm penalty)")
    sigmas: tuple[PerturbationScale, ...] = Field(
        (0.01, 0.03, 0.1, 0.3), min_length=1, max_length=MAX_GRID_VALUES, description="perturbation scales sigma"
    )
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


MAX_FEATURES = 256


MAX_TARGETS = 512


def _as_psm(value: Any) -> list[list[float]]:
    """A checked target PSM (square, >= 2 x 2, finite, symmetric), rounded to 12 decimals so
    that equal targets give equal job ids."""
    matrix = check_target(np.asarray(value, dtype=float))
    if matrix.shape[0] > MAX_FEATURES:
        raise ValueError(f"at most {MAX_FEATURES} features, got {matrix.shape[0]}")
    return matrix.round(12).tolist()


def _as_matrix_input(value: Any) -> Any:
    try:
        return np.asarray(value, dtype=float).tolist()
    except (TypeError, ValueError):
        raise ValueError("a PSM is a square matrix of numbers (a list of rows)") from None


PsmMatrix = Annotated[list[list[float]], BeforeValidator(_as_matrix_input), AfterValidator(_as_psm)]


FeatureNames = Annotated[
    list[Annotated[str, Field(max_length=200)]], Field(max_length=MAX_FEATURES, description="feature names, one per PSM row (optional)")
]


class EnergyFitParams(JointFields):
    """One joint optimisation (thesis 3.5-3.6) of a target PSM, with the kernel's reference configuration."""

    target: PsmMatrix = Field(..., description="the target PSM T (N x N, symmetric), as a list of rows")
    features: FeatureNames = []
    restarts: FitRestarts = 16
    seed: Seed = 0
    label: Label = ""

    @model_validator(mode="after")
    def _sizes_agree(self) -> EnergyFitParams:
        n = len(self.target)
        validate_sizes(n, self.dim)
        if self.features and len(self.features) != n:
            raise ValueError(f"{len(self.features)} feature names for an {n} x {n} target")
        return self


class SweepTargetSpec(Params):
    """One target of a sweep: its name (real, permuted, ...), layer, feature names and PSMs."""

    name: str = Field("real", min_length=1, max_length=100, description="which target this is: real, permuted, shuffled_labels, ...")
    layer: int | None = Field(None, ge=0, le=10_000, description="the layer the PSMs come from (None for none)")
    replicate: int = Field(0, ge=0, le=100, description="which seed of a control this is (0 for the real target)")
    features: FeatureNames = []
    psms: dict[Similarity, PsmMatrix] = Field(..., min_length=1, description="{similarity: PSM}")

    @model_validator(mode="after")
    def _consistent(self) -> SweepTargetSpec:
        sizes = {len(matrix) for matrix in self.psms.values()}
        if len(sizes) != 1:
            raise ValueError(f"the PSMs of target {self.name!r} (layer {self.layer}) differ in size")
        n = sizes.pop()
        if self.features and len(self.features) != n:
            raise ValueError(f"target {self.name!r} (layer {self.layer}) names {len(self.features)} features for an {n} x {n} PSM")
        return self

    @property
    def n_features(self) -> int:
        """N, the side of the target's PSMs."""
        return len(next(iter(self.psms.values())))


def _targets_from_mapping(value: Any) -> Any:
    """{name: {similarity: PSM}} is accepted for a layer-less sweep."""
    if isinstance(value, Mapping):
        return [{"name": name, "layer": None, "psms": psms} for name, psms in value.items()]
    return value


class EnergySweepParams(SweepGrid):
    """The grid (thesis 4.2-4.3) over every target; targets with equal N are solved as one batched problem."""

    targets: Annotated[list[SweepTargetSpec], BeforeValidator(_targets_from_mapping)] = Field(
        ..., min_length=1, max_length=MAX_TARGETS, description="targets: [{name, layer, features, psms: {similarity: PSM}}]"
    )
    restarts: SweepRestarts = 8
    repeats: NoiseDraws = 3
    real_draws: int = Field(
        12,
        ge=1,
        le=64,
        description="noise draws per sigma of the real target, started in turn from each of its joint fit's equally good minima "
        "(a control has `repeats` per seed; 12 is about what its 5 seeds give)",
    )
    seed: Seed = 0
    label: Label = ""
    probe_warning: str = Field(
        "", max_length=2000, description="why the targets' probes may not reflect the model (they do not beat chance); empty when they do"
    )
    ADDED_FIELDS = ("probe_warning",)

    @model_validator(mode="after")
    def _every_target_has_a_configuration(self) -> EnergySweepParams:
        for target in self.targets:
            self.joint_configs(target.n_features)  # raises when no dim is below this N
        return self

    def grid(self) -> SweepGrid:
        """The grid alone."""
        return SweepGrid(**{name: getattr(self, name) for name in SweepGrid.model_fields})


def check_target(target: np.ndarray) -> np.ndarray:
    """A valid target PSM: square, at least 2x2, finite, symmetric."""
    target = np.asarray(target, dtype=np.float64)
    if target.ndim != 2 or target.shape[0] != target.shape[1]:
        raise InvalidParameter(f"the target PSM must be square, got shape {target.shape}")
    if target.shape[0] < 2:
        raise InvalidParameter("the target PSM needs at least 2 features")
    if not np.isfinite(target).all():
        raise InvalidParameter("the target PSM contains NaN or infinite values")
    if not np.allclose(target, target.T, atol=1e-8):
        raise InvalidParameter("the target PSM is not symmetric")
    return target


def validate_sizes(n_points: int, dim: int, allow_dim_at_least_n: bool = False) -> None:
    """N >= 2 and dim >= 1; for abstract features also dim < N (in N dimensions any PSM is exactly
    representable, so the fit says nothing about geometry). Reference configurations may use any dim."""
    if n_points < 2:
        raise InvalidParameter(f"need at least 2 features, got {n_points}")
    if dim < 1:
        raise InvalidParameter(f"dim must be at least 1, got {dim}")
    if not allow_dim_at_least_n and dim >= n_points:
        raise InvalidParameter(f"dim must be between 1 and N - 1 = {n_points - 1} for N = {n_points} features, got {dim}")
