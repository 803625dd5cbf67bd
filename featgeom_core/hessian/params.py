"""The Hessian-feature analysis's parameters, declared once. The write-up gives no numbers for its
optimiser; these defaults learn the toy models' features (XOR, TMS) in a few seconds on a CPU."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from featgeom_core.models.ids import ModelId
from featgeom_core.params import CommaSeparated, Params, Seed, seed_field


class HessianParams(Params):
    """How k feature directions U are learned in one parameter block (the write-up's bi-level
    optimisation of the steepness and interference losses)."""

    k: int = Field(3, ge=1, le=4096, description="feature directions u to learn in the block (at most the block's size)")
    lambda_interference: float = Field(
        5.0,
        ge=0,
        le=1e6,
        description="weight lambda of the interference loss against the steepness loss (0: steepness only); dimensionless",
    )
    steps: int = Field(300, ge=1, le=1_000_000, description="optimisation steps; each takes one batch of samples through both levels")
    learning_rate: float = Field(
        0.3,
        gt=0,
        le=10.0,
        description="first step size, as a fraction of the current L_steep per unit gradient; decays (cosine) to 5% of it",
    )
    batch_size: int = Field(256, ge=1, le=1_000_000, description="samples per step, and per pass when curvatures are evaluated")
    restarts: int = Field(4, ge=1, le=256, description="starts optimised together as one batched problem; the best final objective is kept")
    init: Literal["eigenvectors", "random"] = Field(
        "eigenvectors", description="the first start: top-k eigenvectors of the batch-mean Hessian (matrix-free), or random like the others"
    )
    init_iterations: int = Field(
        15, ge=1, le=1000, description="subspace-iteration rounds for the eigenvector start (2k Hessian-vector products each)"
    )
    seed: int = seed_field(0, "seed of the starting directions and the batch order")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to compute: auto (CUDA when present), cpu or cuda")
    divergence: Literal["auto", "mse", "kl"] = Field(
        "auto",
        description="D: mse (regression, squared output units), kl (outputs are logits; nats, normalised to 0 at W0) or auto "
        "(kl for models that declare featgeom_output = 'logits', mse otherwise)",
    )
    positions: Literal["sum", "each"] = Field(
        "sum",
        description="outputs with positions (B, P, d): sum the positions' divergences per sample, "
        "or treat each sample-position as a sample",
    )
    curvature: Literal["nested_jvp", "output_jvp"] = Field(
        "nested_jvp",
        description="how uᵀH(x)u is computed: nested_jvp (jvp of jvp of D) or output_jvp (one jvp of the outputs and D's "
        "closed-form second derivative in them; the same values, exact at W0, several times faster on deep models)",
    )
    directions_per_pass: int = Field(64, ge=1, le=4096, description="directions evaluated at once (memory, not results)")


class ToyFit(HessianParams):
    """A toy's fit: every input is a sample (its outputs' divergences summed)."""

    positions: Literal["sum"] = Field("sum", description="a toy's sample is one input: its outputs' divergences are summed")


class LanguageFit(HessianParams):
    """A language model's fit: every real token is a sample; defaults that take a few minutes for
    MiniLM's W_K on a 2-core CPU."""

    k: int = Field(8, ge=1, le=4096, description="feature directions u to learn in the block (at most the block's size)")
    batch_size: int = Field(4, ge=1, le=1_000_000, description="texts per step, and per pass when curvatures are evaluated")
    restarts: int = Field(1, ge=1, le=256, description="starts optimised together as one batched problem; the best final objective is kept")
    init_iterations: int = Field(
        10, ge=1, le=1000, description="subspace-iteration rounds for the eigenvector start (2k Hessian-vector products each)"
    )
    curvature: Literal["nested_jvp", "output_jvp"] = Field(
        "output_jvp",
        description="how uᵀH(x)u is computed: output_jvp (one jvp of the outputs and D's closed-form second derivative "
        "in them; several times faster on deep models) or nested_jvp (jvp of jvp of D)",
    )
    positions: Literal["each"] = Field("each", description="a language model's sample is one real token (padding never is)")


BlockNames = Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]], CommaSeparated, Field(max_length=64)]


class ToyTarget(Params):
    """One of the write-up's toys, trained here from a seed."""

    kind: Literal["toy"] = Field("toy", description="a toy model trained here")
    model: Literal["xor", "tms"] = Field(
        "xor", description="xor (the XOR net) or tms (the toy model of superposition, 5 features in 2 dims)"
    )
    block: BlockNames = Field(
        default_factory=list,
        description="the block's parameter names (comma-separated); empty: the toy's default (XOR: its weights and biases; TMS: W)",
    )
    seed: Seed = seed_field(0, "the seed the toy is trained from (retrained from derived seeds until it solves its task)")
    fit: ToyFit = Field(default_factory=ToyFit, description="the optimisation (k, lambda_interference, steps, ...)")

    @model_validator(mode="after")
    def _block_of_the_toy(self) -> ToyTarget:
        from featgeom_core.hessian.toys import TOYS

        spec = TOYS[self.model]
        unknown = [name for name in self.block if name not in spec.parameters]
        if unknown:
            raise ValueError(
                f"block: {', '.join(map(repr, unknown))} is not a parameter of the {self.model} toy; its parameters: "
                f"{', '.join(spec.parameters)}"
            )
        size = spec.block_size(self.block_names())
        if self.fit.k > size:
            raise ValueError(f"fit.k = {self.fit.k} directions do not fit the block {list(self.block_names())}, which has {size} numbers")
        return self

    def block_names(self) -> tuple[str, ...]:
        """The block's parameter names (the toy's default when none is given)."""
        from featgeom_core.hessian.toys import TOYS

        return tuple(self.block) or TOYS[self.model].default_block


class LanguageTarget(Params):
    """A language model of the registry: every real token of packaged texts is a sample. An
    encoder's D is the MSE of its final hidden state at the token, a causal LM's the KL divergence
    of its next-token distribution there (the write-up's setting)."""

    kind: Literal["language"] = Field("language", description="a language model of the registry")
    model: ModelId = Field(
        "minilm",
        description="minilm (offline encoder: D = MSE of the final hidden state), smollm2 (offline causal LM: D = KL of the "
        "next-token distribution at each position), a local Hugging Face checkpoint directory or a hub id",
    )
    layer: int = Field(4, ge=0, le=255, description="the layer whose attention key weight W_K is the default block (0-based)")
    block: BlockNames = Field(
        default_factory=list,
        description="the block's parameter names as the checkpoint names them "
        "(comma-separated); empty: the attention key weight of `layer`",
    )
    n_texts: int = Field(200, ge=1, le=5000, description="training texts from the packaged corpus (news, reviews, code)")
    heldout_texts: int = Field(100, ge=1, le=5000, description="further texts of the corpus, not trained on, that the features are read on")
    max_tokens: int = Field(32, ge=4, le=512, description="tokens per text at most (longer texts are cut); padding is never a sample")
    data_seed: Seed = seed_field(0, "the seed of the corpus order the texts are taken from")
    fit: LanguageFit = Field(default_factory=LanguageFit, description="the optimisation (k, lambda_interference, steps, ...)")


Target = Annotated[ToyTarget | LanguageTarget, Field(discriminator="kind")]
LEGACY_FIELDS = ("model", "block", "layer", "model_seed", "n_texts", "heldout_texts", "max_tokens", "data_seed", "fit")
"""The flat fields of featgeom 0.1's hessian.features params, read into a target."""


class HessianFeaturesParams(Params):
    """Hessian features of one model's parameter block: a toy or a language model (``target.kind``),
    each with its own fields and fit defaults. The flat form ``model=..., block=..., fit=...``
    (featgeom 0.1's, and the CLI's shorthand) is read into the target."""

    target: Target = Field(
        default_factory=ToyTarget,
        description="the model and block: {kind: toy, model: xor|tms, block, seed, fit} or "
        "{kind: language, model, layer, block, n_texts, heldout_texts, max_tokens, "
        "data_seed, fit}",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "target" in data or not any(name in data for name in LEGACY_FIELDS):
            return data
        return {"target": flat_to_target(data)}


def flat_to_target(data: Mapping[str, Any]) -> dict[str, Any]:
    """The target of featgeom 0.1's flat params: a toy when ``model`` is xor or tms (``model_seed``
    its seed), else a language model; ``positions`` dropped from ``fit`` when it is the target's own
    (0.1 always set it so). Unknown fields are left in, to be refused by name."""
    values = dict(data)
    model = str(values.get("model", "xor")).strip()
    toy = model in ("xor", "tms")
    target: dict[str, Any] = {"kind": "toy" if toy else "language"}
    fit = values.pop("fit", None)
    if isinstance(fit, Params):
        fit = fit.model_dump()
    if isinstance(fit, Mapping):
        fit = dict(fit)
        if fit.get("positions") == ("sum" if toy else "each"):
            fit.pop("positions")
        target["fit"] = fit
    elif fit is not None:
        target["fit"] = fit
    if toy and "model_seed" in values:
        target["seed"] = values.pop("model_seed")
    block = values.pop("block", None)
    if block not in (None, ""):
        target["block"] = block
    # 0.1 carried every field for every model; the other kind's fields at their 0.1 defaults meant nothing
    others = {"layer": 4, "n_texts": 200, "heldout_texts": 100, "max_tokens": 32, "data_seed": 0} if toy else {"model_seed": 0}
    for name, default in others.items():
        if values.get(name) == default:
            values.pop(name)
    target.update(values)
    return target
