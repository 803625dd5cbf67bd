"""The sparsity analysis's parameters, declared once (defaults: the paper's settings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.models.ids import ModelId
from featgeom_core.params import DEFAULT_LAYER_COUNT, LayerIndices, Params, default_layers, seed_field

Method = Literal["greedy", "fista"]
Recipe = Literal["lab", "appendix_h"]
APPENDIX_H_ATOMS = 16.0
APPENDIX_H_TRAINING_LAMBDA = 0.1
APPENDIX_H_VARIANCE = 0.98
MAX_GRAM_BYTES = 4 * 2**30


class SparseCodingParams(Params):
    """How a dictionary is learned and activations are coded (Appendix C)."""

    dictionary_multiple: float = Field(
        8.0, ge=1.0, le=64.0, description="dictionary size m as a multiple of the dimension d (the paper: 8d)"
    )
    method: Method = Field("greedy", description="coefficient step: greedy (the paper's) or fista (non-negative FISTA, Yun et al.)")
    epochs: float = Field(1.5, gt=0, le=1000, description="passes over the data (a fixed data set) in the first lambda round")
    later_epochs: float = Field(0.5, gt=0, le=1000, description="passes over the data in each later lambda round (warm-started)")
    batch_size: int = Field(4096, ge=16, le=1_000_000, description="activations coded per iteration")
    dictionary_steps: int = Field(1, ge=1, le=100, description="block-coordinate sweeps over the atoms per iteration (codes fixed)")
    forgetting: float = Field(
        3.0, ge=0, le=100.0, description="how fast earlier minibatches fade from the dictionary's statistics (0: never)"
    )
    adaptive_lambda: bool = Field(True, description="set lambda = ratio x the average largest coefficient, and refit, until lambda settles")
    lambda_ratio: float = Field(0.1, gt=0, le=1.0, description="lambda as a fraction of the average largest coefficient (the paper: 0.1)")
    initial_lambda: float | None = Field(
        None, gt=0, description="the first lambda (with adaptive lambda off: the only one); default: from the data"
    )
    lambda_guess: float = Field(
        0.5, gt=0, le=10.0, description="the default first lambda: this x the average largest activation-atom correlation"
    )
    max_rounds: int = Field(4, ge=1, le=20, description="adaptive lambda rounds at most")
    lambda_tolerance: float = Field(0.05, gt=0, le=1.0, description="lambda has settled when it changes by less than this fraction")
    resample_atoms: bool = Field(
        True, description="in the first lambda round, move unused and near-duplicate atoms to badly reconstructed activations"
    )
    duplicate_cosine: float = Field(0.8, gt=0, le=1.0, description="two atoms with |cos| above this are near-duplicates (one moves)")
    max_atoms: int | None = Field(None, ge=1, le=100_000, description="greedy step: atoms per activation at most (default: no cap)")
    fista_iterations: int = Field(200, ge=1, le=100_000, description="FISTA iterations per coding")
    center: bool = Field(True, description="subtract the mean activation before coding (the paper centres)")
    seed: int = seed_field(0, "random seed (initial dictionary, minibatch order)")
    device: str = Field("auto", max_length=32, description="FISTA's device: auto (CUDA when present), cpu or cuda")

    def dictionary_atoms(self, d: int) -> int:
        """m for dimension d."""
        return int(round(self.dictionary_multiple * d))

    def iterations(self, n: int) -> Callable[[int], int]:
        """Minibatches per lambda round for a fixed data set of n activations."""
        batch = min(self.batch_size, n)
        return lambda round_index: max(1, int(round((self.epochs if round_index == 0 else self.later_epochs) * n / batch)))

    def check_memory(self, m: int) -> None:
        """The Gram matrices of m atoms (m x m, float32 and float64) must fit a sane budget."""
        needed = 12 * m * m
        if needed > MAX_GRAM_BYTES:
            raise InvalidParameter(
                f"a dictionary of {m} atoms needs {needed / 2**30:.1f} GiB for its Gram matrices (12 m^2 bytes); the limit "
                f"is {MAX_GRAM_BYTES / 2**30:.0f} GiB: lower dictionary_multiple"
            )

    def check_sizes(self, n: int, d: int) -> None:
        """Enough samples for the dictionary and the batch."""
        m = self.dictionary_atoms(d)
        if n < m:
            raise DataError(
                f"{n} activations are too few for a dictionary of {m} atoms ({self.dictionary_multiple:g} x d = "
                f"{self.dictionary_multiple:g} x {d}); give at least {m}, or a smaller dictionary_multiple"
            )


class SyntheticParams(Params):
    """One synthetic data set of Appendix D (sparse-linear, or a control) and its coding."""

    dataset: Literal["sparse_linear", "gaussian", "heavy_tailed", "rademacher"] = Field(
        "sparse_linear", description="sparse_linear, or a control"
    )
    d: int = Field(256, ge=2, le=4096, description="embedding dimension d")
    n: int = Field(16384, ge=64, le=1_000_000, description="number of activations")
    a: float = Field(10.0, gt=0, description="sparse-linear: features active on average (the truth is a/2)")
    sigma: float = Field(0.1, ge=0, le=10.0, description="sparse-linear: noise level (variance a sigma^2 / d)")
    feature_multiple: float = Field(4.0, gt=0, le=64.0, description="sparse-linear: true features as a multiple of d (the paper: 4d)")
    seed: int = seed_field(0, "seed of the data")

    @model_validator(mode="after")
    def _a_below_features(self) -> SyntheticParams:
        features = self.feature_multiple * self.d
        if self.dataset == "sparse_linear" and not self.a < features:
            raise ValueError(f"a = {self.a:g} must be below the number of true features ({features:g} = {self.feature_multiple:g} d)")
        return self

    def n_features(self) -> int:
        """The number of true features."""
        return int(round(self.feature_multiple * self.d))


Hook = Literal["resid_post", "mlp_post"]
DEFAULT_A_VALUES = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0)
ControlKind = Literal["gaussian", "heavy_tailed", "rademacher"]
CONTROLS: tuple[ControlKind, ...] = ("gaussian", "heavy_tailed", "rademacher")


class SyntheticGridParams(Params):
    """The validation of section 3.1: sparse-linear data over a grid of a, and the controls, all at
    one (d, n, sigma, true features) with one coding setting (Appendix E's ablations change these)."""

    a_values: list[Annotated[float, Field(gt=0)]] = Field(
        list(DEFAULT_A_VALUES), min_length=0, max_length=16, description="a values of the sparse-linear sets (features active on average)"
    )
    controls: list[ControlKind] = Field(list(CONTROLS), max_length=3, description="controls to code beside them")
    d: int = Field(256, ge=2, le=4096, description="embedding dimension d (the paper: 256; ablations 64 and 512)")
    n: int = Field(16384, ge=64, le=200_000, description="activations per data set")
    sigma: float = Field(0.1, ge=0, le=10.0, description="noise level (variance a sigma^2 / d; ablations 0.05 and 0.2)")
    feature_multiple: float = Field(4.0, gt=0, le=64.0, description="true features as a multiple of d (the paper: 4d; ablation 8d)")
    coding: SparseCodingParams = Field(
        default_factory=SparseCodingParams, description="how every set is coded (dictionary 8d; ablation 16d)"
    )
    p: float = Field(1.0, gt=0, le=10.0, description="p of the average coefficient norm S_p")
    seed: int = seed_field(0, "seed of the data")

    @model_validator(mode="after")
    def _valid_sets(self) -> SyntheticGridParams:
        if not self.a_values and not self.controls:
            raise ValueError("choose at least one a value or one control")
        features = self.feature_multiple * self.d
        too_large = [a for a in self.a_values if not a < features]
        if too_large:
            raise ValueError(f"a must be below the number of true features ({features:g} = {self.feature_multiple:g} d); got {too_large}")
        self.coding.check_sizes(self.n, self.d)
        return self

    def datasets(self) -> list[SyntheticParams]:
        """Every data set of the grid: the sparse-linear ones, then the controls."""
        shared = {"d": self.d, "n": self.n, "sigma": self.sigma, "feature_multiple": self.feature_multiple, "seed": self.seed}
        return [SyntheticParams(dataset="sparse_linear", a=a, **shared) for a in self.a_values] + [
            SyntheticParams(dataset=kind, **shared) for kind in self.controls
        ]


class ModelSparsityParams(Params):
    """Sparsity by layer of a model on real text (section 4): the token embeddings and each layer."""

    model: ModelId = Field("minilm", description="a model id, local checkpoint directory or hub id")
    hook: Hook = Field(
        "resid_post", description="resid_post (the residual stream after each block) or mlp_post (the MLP's hidden activations)"
    )
    layers: LayerIndices | None = Field(
        None,
        max_length=256,
        description=f"layers to measure, e.g. [0, 5] or '0,5' (default: all, up to 12; else {DEFAULT_LAYER_COUNT} evenly spaced)",
    )
    embeddings: bool = Field(True, description="also measure the token embedding matrix (section 4.1)")
    tokens: int = Field(16384, ge=256, le=200_000, description="held-out tokens the metrics are measured on")
    max_tokens_per_text: int = Field(128, ge=8, le=512, description="tokens kept per text")
    coding: SparseCodingParams = Field(default_factory=SparseCodingParams, description="how every set is coded")
    p: float = Field(1.0, gt=0, le=10.0, description="p of the average coefficient norm S_p")
    calibrate: bool = Field(
        True,
        description="also code sparse-linear data at the same d (and the Gaussian control) to read each layer's a; stored once per "
        "width, tokens, coding and seed, and reused by later jobs",
    )
    calibration_a: list[Annotated[float, Field(gt=0)]] = Field(
        [1.0, 2.0, 5.0, 10.0, 20.0], max_length=12, description="a values of the calibration curve"
    )
    seed: int = seed_field(0, "seed of the text order and the coding")
    recipe: Recipe = Field(
        "lab",
        description=(
            "lab: the coding settings above (adaptive lambda); appendix_h: the paper's later-layer recipe (Appendix H): "
            "16d atoms, lambda fixed at 0.1 in training, held-out tokens decomposed with a smaller lambda that explains >= 98% "
            "of the variance"
        ),
    )
    decomposition_lambda: float | None = Field(
        None,
        gt=0,
        le=10.0,
        description="appendix_h: the lambda held-out tokens are decomposed with (default: the largest 0.1 x 2^-k explaining >= 98%)",
    )
    ADDED_FIELDS = ("recipe", "decomposition_lambda")

    def effective_coding(self) -> SparseCodingParams:
        """The coding settings the dictionaries are trained with: ``coding``, or Appendix H's."""
        if self.recipe == "lab":
            return self.coding
        return self.coding.model_copy(
            update={"dictionary_multiple": APPENDIX_H_ATOMS, "adaptive_lambda": False, "initial_lambda": APPENDIX_H_TRAINING_LAMBDA}
        )

    @field_validator("layers")
    @classmethod
    def _some_layers(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not value:
            raise ValueError("give at least one layer, or leave layers out to measure them all")
        return value

    def chosen_layers(self, n_layers: int) -> list[int]:
        """The layers to measure, checked against the model (see ``layers`` for the default)."""
        layers = default_layers(n_layers) if self.layers is None else sorted(set(self.layers))
        bad = [layer for layer in layers if layer >= n_layers]
        if bad:
            raise InvalidParameter(f"layer(s) {bad} out of range: the model has layers 0..{n_layers - 1}")
        if not layers:
            raise InvalidParameter("choose at least one layer")
        return layers
