"""LIB's parameters, declared once (defaults: the paper's modular-addition settings, which are the
peer's ``build_lib_seed0.yaml`` and its ablation configs, and its ``train_config.yaml``).

A graph job's ``target`` is one of three kinds, each with only its own fields: our modular-addition
transformer or digits MLP (a checkpoint and the recipe that trains it), or a block of a language
model of the registry (the block and the token windows it is read on)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from featgeom_core.errors import InvalidParameter
from featgeom_core.interaction.basis import BasisKind
from featgeom_core.interaction.jacobians import IntegrationRule, integration_points
from featgeom_core.models.ids import BUILTIN_DIMENSIONS, ModelId, existing_path
from featgeom_core.params import Params, seed_field


def _names(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


NodeLayerNames = Annotated[list[str], BeforeValidator(_names)]
"""Node layer names, as a list or as comma-separated text."""


class GraphParams(Params):
    """How an interaction graph is built (section 3, Appendix A)."""

    basis: BasisKind = Field("lib", description="neuron, pca, lib (the local interaction basis) or gib (LIB against the final layer)")
    node_layers: NodeLayerNames | None = Field(None, description="node layers in model order, ending at the output (default: the model's)")
    dtype: Literal["float64", "float32"] = Field("float64", description="precision of the build (Gram and M matrices are float64 always)")
    center: bool = Field(True, description="centre activations (the constant direction becomes direction 0)")
    truncation: float = Field(1e-15, ge=0, le=1e6, description="drop directions whose Gram eigenvalue or Lambda is at or below this")
    rotate_final: bool = Field(
        False, description="give the final node layer its PCA basis (otherwise it keeps its neurons, the paper's choice)"
    )
    whiten_pca: bool = Field(
        False, description="divide PCA directions by the square root of their variance (the peer's PCA basis does not)"
    )
    integration: IntegrationRule = Field(
        "gradient", description="plain gradients (the paper's runs), trapezoid or Gauss-Legendre integrated gradients"
    )
    n_intervals: int = Field(
        0, ge=0, le=1000, description="integration intervals (0 with plain gradients; 0 with trapezoid = the midpoint)"
    )
    basis_sources: int = Field(
        1, ge=0, le=1024, description="stochastic +-1 sources over output positions for M' (0: exact); one output position is exact anyway"
    )
    edge_sources: int = Field(1, ge=0, le=1024, description="stochastic +-1 sources over output positions for the edges (0: exact)")
    seed: int = seed_field(0, "seed of the stochastic sources")
    batch_size: int = Field(4096, ge=1, le=1_000_000, description="samples per pass (memory, not results)")

    @model_validator(mode="after")
    def _consistent(self) -> GraphParams:
        integration_points(self.integration, self.n_intervals)  # raises a clear error for gradient + intervals
        if self.node_layers is not None and len(self.node_layers) < 2:
            raise InvalidParameter("node_layers: choose at least two (the last is the output)")
        return self

    def points(self) -> list[tuple[float, float]]:
        """The integration points and weights."""
        return integration_points(self.integration, self.n_intervals)


Metric = Literal["auto", "accuracy", "ce_loss", "mse"]


class AblationParams(Params):
    """Node ablation curves and the edge-ablation bisect (section 4, Appendix B)."""

    nodes: bool = Field(True, description="node ablation curves: keep the n most important directions of one layer")
    edges: bool = Field(True, description="bisect edge ablation: the fewest edges per layer pair within the tolerance")
    tolerance: float = Field(
        0.001, gt=0, le=1e6, description="how far the metric may move from the unablated model's (accuracy: down; losses: up)"
    )
    metric: Metric = Field(
        "auto", description="accuracy or cross-entropy of the final layer's prediction, or mse of the final layer (auto: the model's)"
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="precision of the ablated forward passes (the peer's: float32)")
    exp_base: float = Field(1.05, gt=1.0, le=10.0, description="node-ablation schedule: kept counts fall geometrically with this base")
    every_below: int = Field(10, ge=0, le=100_000, description="node-ablation schedule: every count at or below this many kept directions")


class ModulesParams(Params):
    """Leiden modules of a graph (section 4.3)."""

    resolution: float = Field(1.0, gt=0, le=100.0, description="Leiden resolution gamma (larger: more, smaller modules)")
    seed: int = seed_field(0, "Leiden's seed")


class ModAddConfig(Params):
    """The architecture and the task."""

    modulus: int = Field(113, ge=3, le=1000, description="p of (x + y) mod p")
    d_model: int = Field(128, ge=4, le=4096, description="residual stream width")
    n_heads: int = Field(4, ge=1, le=64, description="attention heads")
    d_head: int = Field(32, ge=1, le=1024, description="width of each head")
    d_mlp: int = Field(512, ge=1, le=16384, description="MLP width (ReLU)")


class ModAddTrainParams(Params):
    """The peer's training recipe (its ``train_config.yaml``): AdamW, full batch, 30% of pairs."""

    model: ModAddConfig = Field(default_factory=ModAddConfig, description="architecture")
    frac_train: float = Field(0.3, gt=0, lt=1, description="fraction of the pairs used for training")
    epochs: int = Field(60000, ge=1, le=1_000_000, description="full-batch steps")
    learning_rate: float = Field(1e-3, gt=0, le=1.0, description="AdamW learning rate")
    weight_decay: float = Field(1.0, ge=0, le=100.0, description="AdamW weight decay (grokking needs it)")
    warmup: int = Field(10, ge=0, le=100_000, description="steps of linear learning-rate warm-up")
    seed: int = seed_field(0, "seed of the split and the initialisation")
    stop_at_accuracy: float = Field(
        0.999, gt=0, le=1.0, description="stop once test accuracy reaches this at a report step (1: train every epoch, as the peer does)"
    )


class DigitsTrainParams(Params):
    """A small ReLU MLP on the digits, Adam, full batch."""

    hidden: int = Field(60, ge=2, le=1024, description="width of each hidden layer")
    depth: int = Field(2, ge=1, le=6, description="number of hidden layers")
    epochs: int = Field(400, ge=1, le=100_000, description="full-batch Adam steps")
    learning_rate: float = Field(3e-3, gt=0, le=1.0, description="Adam learning rate")
    weight_decay: float = Field(1e-4, ge=0, le=10.0, description="Adam (L2) weight decay")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="held-out share of the images (ablations run on it)")
    seed: int = seed_field(0, "seed of the split and the initialisation")


class LanguageBlockParams(Params):
    """Which block of a language model, and how many tokens its graph sees."""

    layer: int = Field(3, ge=0, le=1000, description="the block whose attention and MLP node layers make the graph (0 = the first)")
    windows: int = Field(
        64, ge=2, le=100_000, description="token windows for the bases and edges (as many again, held out, for the ablations)"
    )
    tokens: int = Field(32, ge=2, le=512, description="tokens per window (consecutive tokens of the packaged text, no padding)")
    text_seed: int = seed_field(0, "seed of the texts drawn from the packaged news, reviews and code")


TRAINED = "trained"
"""The checkpoint of our own model with the target's recipe: the one the package ships where it
ships that recipe's (modular addition, the default recipe), else trained on first use (and stored)."""
SCRATCH = "scratch"
"""Our own model trained from scratch with the target's recipe on first use (and stored), even where
the package ships that recipe's checkpoint."""
TRAIN_JOB_PREFIX = "job:"
"""``job:<id>``: the model a finished training job stored."""
UPLOAD_PREFIX = "upload:"
"""``upload:<sha256>``: a state dict the page kept under ``<cache>/uploads/`` by its content's hash."""


def checkpoint_reference(value: str) -> str:
    """A checkpoint reference, checked: ``trained``, ``scratch``, ``job:<id>``, ``upload:<sha256 hex>`` or an
    existing file (ValueError naming it otherwise)."""
    value = value.strip()
    if value in (TRAINED, SCRATCH) or (value.startswith(TRAIN_JOB_PREFIX) and value[len(TRAIN_JOB_PREFIX) :].isalnum()):
        return value
    if value.startswith(UPLOAD_PREFIX):
        digest = value[len(UPLOAD_PREFIX) :]
        if not (digest and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"checkpoint {value[:80]!r}: an upload is named by the hex digest of its content")
        return value
    path = existing_path(value)
    if path is None or not path.is_file():
        raise ValueError(f"checkpoint {value[:80]!r} is not 'trained', 'job:<training job id>', 'upload:<sha256>' or an existing file")
    return value


Checkpoint = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(checkpoint_reference)]
CHECKPOINT_HELP = (
    "trained (ours: shipped for modular addition's default recipe, else trained on first use), scratch (ours, trained now), "
    "job:<train job id>, upload:<sha256> or a file path"
)


class ModAddTarget(Params):
    """The modular-addition transformer (p = 113 by default)."""

    kind: Literal["modadd"] = Field("modadd", description="the modular-addition transformer")
    checkpoint: Checkpoint = Field(TRAINED, description=CHECKPOINT_HELP)
    train: ModAddTrainParams = Field(
        default_factory=ModAddTrainParams, description="the recipe for checkpoint 'trained' (and the data split)"
    )


class DigitsTarget(Params):
    """The ReLU MLP on scikit-learn's 8x8 digits."""

    kind: Literal["digits"] = Field("digits", description="the digits MLP")
    checkpoint: Checkpoint = Field(TRAINED, description=CHECKPOINT_HELP)
    train: DigitsTrainParams = Field(
        default_factory=DigitsTrainParams, description="the recipe for checkpoint 'trained' (and the data split)"
    )


MIN_TOKENS_PER_DIRECTION = 1.1
"""Tokens a graph's bases see per direction of its widest node layer, at least, by default: with
fewer samples than directions a Gram matrix is rank-deficient and directions are truncated away."""


class LanguageTarget(LanguageBlockParams):
    """One block of a language model of the registry, on token windows of the packaged text."""

    kind: Literal["language"] = Field("language", description="a block of a language model")
    model: ModelId = Field(
        "minilm",
        description="minilm (a BERT encoder) or smollm2 (a Llama causal LM) offline, a hub id or a local checkpoint directory",
    )

    @model_validator(mode="before")
    @classmethod
    def _enough_windows(cls, data: Any) -> Any:
        """Unless windows are given, a built-in model gets :func:`default_windows`."""
        if not isinstance(data, Mapping) or "windows" in data:
            return data
        tokens = data.get("tokens", cls.model_fields["tokens"].default)
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 2:
            return data  # the field validators say what is wrong
        return {**data, "windows": default_windows(str(data.get("model", cls.model_fields["model"].default)), tokens)}


def default_windows(model: str, tokens: int) -> int:
    """Token windows a graph of ``model``'s block needs by default: enough that the bases see
    :data:`MIN_TOKENS_PER_DIRECTION` tokens per direction of the widest node layer (the MLP's hidden
    units with the residual and the constant: SmolLM2's 2,113 need 73 windows of 32), at least 64.
    Models outside the registry's built-ins get 64 (their sizes are not known before loading)."""
    floor = int(LanguageBlockParams.model_fields["windows"].default)
    if model.strip() not in BUILTIN_DIMENSIONS:
        return floor
    _, d_model, d_mlp = BUILTIN_DIMENSIONS[model.strip()]
    return max(floor, math.ceil(MIN_TOKENS_PER_DIRECTION * (d_mlp + d_model + 1) / tokens))


DEFAULT_BASES: tuple[BasisKind, ...] = ("lib", "pca")
"""The bases a graph job builds by default: LIB beside PCA, the paper's comparison."""

GraphTarget = Annotated[ModAddTarget | DigitsTarget | LanguageTarget, Field(discriminator="kind")]
OWN_MODELS = ("modadd", "digits")


class InteractionGraphParams(Params):
    """Interaction graphs of one model in several bases, with their ablations. The flat form of
    featgeom 0.1 (``model``, ``checkpoint``, ``language``, ``modadd_train``, ``digits_train``) is
    read into ``target``."""

    target: GraphTarget = Field(
        default_factory=ModAddTarget,
        description="the model: {kind: modadd | digits, checkpoint, train} or {kind: language, model, layer, windows, tokens, text_seed}",
    )
    bases: list[BasisKind] = Field(
        default_factory=lambda: list(DEFAULT_BASES), min_length=1, max_length=4, description="bases to build, side by side"
    )
    graph: GraphParams = Field(
        default_factory=GraphParams, description="how each graph is built (its basis field is replaced by each of bases)"
    )
    ablation: AblationParams = Field(default_factory=AblationParams, description="node ablation curves and the edge bisect")
    max_samples: int | None = Field(
        None, ge=2, le=10_000_000, description="cap on the samples the bases see (default: the whole training split)"
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "target" in data or not any(name in data for name in LEGACY_FIELDS):
            return data
        values = dict(data)
        return {"target": flat_to_target(values), **values}

    @field_validator("bases")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"each basis once, got {value}")
        return value


LEGACY_FIELDS = ("model", "language", "checkpoint", "modadd_train", "digits_train")


def flat_to_target(values: dict[str, Any]) -> dict[str, Any]:
    """Pop featgeom 0.1's flat target fields off ``values`` and return the target they name; the
    recipe of the model not chosen is dropped when it is at its defaults (0.1 carried both)."""
    model = str(values.pop("model", "modadd")).strip()
    language = values.pop("language", None)
    checkpoint = values.pop("checkpoint", None)
    recipes = {"modadd": values.pop("modadd_train", None), "digits": values.pop("digits_train", None)}
    defaults: dict[str, type[Params]] = {"modadd": ModAddTrainParams, "digits": DigitsTrainParams}
    if model in OWN_MODELS:
        target: dict[str, Any] = {"kind": model}
        if checkpoint is not None:
            target["checkpoint"] = checkpoint
        if recipes[model] is not None:
            target["train"] = recipes[model]
        other = next(m for m in OWN_MODELS if m != model)
        if recipes[other] is not None and defaults[other].parse(recipes[other]) != defaults[other]():
            target[f"{other}_train"] = recipes[other]  # refused by name: a recipe for the model not chosen
        if language is not None and LanguageBlockParams.parse(language) != LanguageBlockParams():
            target["language"] = language
        return target
    target = {"kind": "language", "model": model, **(dict(language) if isinstance(language, Mapping) else {})}
    if checkpoint not in (None, TRAINED):
        target["checkpoint"] = checkpoint  # refused by name: a language model is named by its id
    for name, recipe in recipes.items():
        if recipe is not None and defaults[name].parse(recipe) != defaults[name]():
            target[f"{name}_train"] = recipe
    return target
