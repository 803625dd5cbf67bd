"""The probing analysis's parameters, declared once (defaults: the thesis's settings)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from featgeom_core.activations import Hook
from featgeom_core.models.ids import ModelId
from featgeom_core.params import MAX_SEED, LayerIndices, Params, Seed, Similarity, seed_field

CONTROLS = ("real", "permuted", "shuffled_labels")
"""The targets a probe PSM is compared with: the real probes and the two controls."""
KINDS: tuple[Similarity, ...] = ("cosine", "rbf")
"""The similarities a PSM is computed with."""


InverseRegularisation = Annotated[
    float, Field(gt=0, le=1e6, description="C, the inverse L2 strength of the probes (scikit-learn's C; the thesis uses 1)")
]


class ProbeParams(Params):
    """Probe hyper-parameters (the thesis's settings by default)."""

    C: InverseRegularisation = 1.0
    train_fraction: float = Field(0.7, gt=0, lt=1, description="fraction of texts in the training split (the rest is held out)")
    seed: Seed = 0
    max_iter: int = Field(500, ge=1, le=100_000, description="L-BFGS iterations at most")
    tolerance: float = Field(1e-5, gt=0, description="L-BFGS gradient tolerance")


HookField = Annotated[
    Hook, Field(description="where activations are read: mlp_post (blocks.l.mlp.hook_post) or resid_post (blocks.l.hook_resid_post)")
]


LabelSeed = Annotated[int, Field(ge=0, le=MAX_SEED, description="seed of the label shuffle behind the shuffled-label control probes")]

Estimator = Literal["logistic", "class_mean"]
ESTIMATORS: tuple[Estimator, ...] = ("logistic", "class_mean")
EstimatorField = Annotated[
    Estimator,
    Field(
        description=(
            "how feature directions are estimated: logistic (the thesis's one-vs-rest L2 logistic probes) or class_mean "
            "(Park et al. 2024: each class's mean in whitened activations, read through its own covariance; no one-vs-rest)"
        )
    ),
]


class GeometryParams(Params):
    """Everything that shapes a geometry view besides the model, the feature set and the layers."""

    hook: HookField = "mlp_post"
    estimator: EstimatorField = "logistic"
    C: InverseRegularisation = 1.0
    seed: Seed = 0
    rbf_c: float = Field(200.0, gt=0, description="RBF width c in exp(-|x_i - x_j|^2 / c), in squared activation units")
    permutation_seed: int = seed_field(0, "seed of the permuted control (plus the layer index)")
    label_seed: LabelSeed = 1

    ADDED_FIELDS = ("estimator",)


class ControlParams(Params):
    """Which controls go beside the real target, and how many seeds each."""

    shuffled_labels: bool = Field(True, description="include the shuffled-label control (probes retrained on shuffled labels)")
    permutation_seeds: int = Field(5, ge=1, le=20, description="permuted-control seeds: each shuffles every direction's coordinates anew")
    label_seeds: int = Field(5, ge=1, le=20, description="label-shuffle seeds: each retrains the probes on another shuffle of the labels")


class DedupParams(Params):
    """De-duplication of probe directions (thesis 3.2)."""

    threshold: float = Field(0.9, ge=0.5, le=0.999, description="cosine above which a feature duplicates an earlier kept one")


MAX_LAYERS = 256


class FeatureGeometryParams(Params):
    """Probe a named feature set at some layers of a model (no model is loaded to validate)."""

    model: ModelId = Field(..., description="a model id (see `featgeom models`), a local checkpoint directory or a hub id")
    feature_set: str = Field(..., description="a named feature set (see `featgeom feature-sets`)")
    layers: LayerIndices = Field(..., min_length=1, max_length=MAX_LAYERS, description="layer indices (0-based), e.g. [0, 2, 4] or '0,2,4'")
    hook: HookField = "mlp_post"
    estimator: EstimatorField = "logistic"
    C: InverseRegularisation = 1.0
    seed: Seed = 0
    label_seed: LabelSeed = 1

    ADDED_FIELDS = ("estimator",)

    @field_validator("layers")
    @classmethod
    def _sorted_layers(cls, value: list[int]) -> list[int]:
        return sorted(value)

    @field_validator("feature_set")
    @classmethod
    def _known_feature_set(cls, value: str) -> str:
        from featgeom_core.data import list_feature_sets

        known = sorted(info.name for info in list_feature_sets())
        if value not in known:
            raise ValueError(f"unknown feature set {value!r}; jobs take one of {known}")
        return value

    def geometry(self) -> GeometryParams:
        """The probe settings of this job."""
        return GeometryParams(hook=self.hook, estimator=self.estimator, C=self.C, seed=self.seed, label_seed=self.label_seed)
