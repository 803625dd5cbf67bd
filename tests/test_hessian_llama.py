"""The Hessian analysis on a causal LM, the write-up's own setting: D = KL(p(W) || p(W0)) of the
next-token distribution at each position, on an attention key weight W_K. Tiny seeded Llama
models (grouped-query attention, RMSNorm, rotary embeddings, SiLU MLPs) in float64: every
curvature method equals the explicit Hessian's uᵀHu of each position's KL, the KL is 0 with zero
gradient at W0, a causal checkpoint defaults to KL on ``model.layers.{l}.self_attn.k_proj.weight``,
unknown blocks and layers are refused naming what exists, a job runs end to end and reads its
features as tokens in context; and the same checks, briefly, on SmolLM2-135M (slow tier)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.autograd.functional import hessian, jacobian
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from conftest import on_one_thread
from featgeom_core.errors import InvalidParameter
from featgeom_core.hessian import (
    HessianFeaturesParams,
    directional_curvature,
    reference_curvature,
    sample_divergence,
)
from featgeom_core.hessian.curvature import CURVATURE_METHODS
from featgeom_core.hessian.divergence import choose_divergence
from featgeom_core.hessian.language import (
    PREFIX,
    LanguageModel,
    TokenBatch,
    TokenOutputs,
    block_choices,
    is_causal,
    load_language_model,
    token_curvatures,
    tokenize,
)

KEY = "model.layers.1.self_attn.k_proj.weight"
KEY_SHAPE = (16, 32)  # 2 KV heads x head_dim 8, d_model 32: grouped-query attention keeps W_K narrower than W_Q (32 x 32)
WORDS = "the a of and to in is it that for on was with as at by this be from or an are not but have you they we i".split()

pytestmark = pytest.mark.usefixtures("one_thread")


class Float64Throughout(TorchFunctionMode):
    """Hugging Face's Llama computes RMSNorm and the attention softmax in float32 whatever its weights' dtype, so a
    float64 model's curvature is good to float32 rounding only (about 1e-7 relative), by any method; under this mode
    those casts are skipped and every method can be held to float64 rounding."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.to and len(args) == 2 and args[1] is torch.float32 and args[0].dtype == torch.float64:
            return args[0]
        if func is torch.nn.functional.softmax and kwargs.get("dtype") is torch.float32:
            kwargs["dtype"] = None
        return func(*args, **kwargs)


@pytest.fixture
def float64_throughout() -> Iterator[None]:
    with Float64Throughout():
        yield


def tiny_llama_config() -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        initializer_range=0.2,  # large enough that the attention pattern, and so W_K's curvature, is far from uniform
        attn_implementation="eager",
        tie_word_embeddings=True,
        pad_token_id=1,
        eos_token_id=1,
        bos_token_id=None,
    )


@pytest.fixture(scope="module")
def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return on_one_thread(lambda: LlamaForCausalLM(tiny_llama_config()).double().eval())


def tiny_tokenizer() -> Any:
    """A word-level fast tokenizer of 64 ids (unknown words are <unk>, padding is <eos>): character offsets, like SmolLM2's."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["<unk>", "<eos>", ".", ",", "(", ")", "{", "}", ";", "=", "!", "?", "'", '"', ":", "-", *WORDS]
    vocab += [f"w{i}" for i in range(64 - len(vocab))]
    backend = Tokenizer(models.WordLevel({word: i for i, word in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama: torch.nn.Module) -> Path:
    """The tiny Llama saved as a Hugging Face checkpoint directory (config, float64 weights, tokenizer), its config
    without ``architectures``, like SmolLM2's converted from GGUF."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    assert config.pop("architectures") == ["LlamaForCausalLM"]
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture
def registry_of_tiny_llama(tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``shared_model(<the directory>)`` as the registry gives it, without booting a TransformerLens bridge (not used here):
    the plain base model (``AutoModel``, no head) and ``source`` pointing at the checkpoint."""
    from transformers import AutoModel, AutoTokenizer

    from featgeom_core import models
    from featgeom_core.models.registry import LoadedModel

    def shared_model(model_id: str) -> LoadedModel:
        assert model_id == str(tiny_llama_dir)
        plain = AutoModel.from_pretrained(str(tiny_llama_dir), attn_implementation="eager", dtype=torch.float64).eval()
        return LoadedModel(
            name="tiny-llama",
            bridge=None,
            tokenizer=AutoTokenizer.from_pretrained(str(tiny_llama_dir)),
            n_layers=2,
            d_model=32,
            d_mlp=48,
            device=torch.device("cpu"),
            fingerprint="tiny-llama",
            plain_model=plain,
            source=str(tiny_llama_dir),
        )

    monkeypatch.setattr(models, "shared_model", shared_model)
    return str(tiny_llama_dir)


def padded_batch() -> TokenBatch:
    """Two texts of 6 and 4 tokens, the second right-padded (id 1) to 6."""
    ids = torch.tensor([[5, 17, 40, 3, 22, 61], [9, 33, 2, 48, 1, 1]])
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    return TokenBatch(
        ids, mask, torch.zeros(2, 6, 2, dtype=torch.long), torch.zeros(2, 6, dtype=torch.bool), (("a",) * 6, ("b",) * 4), ("a", "b")
    )


def unit_directions(k: int, size: int, seed: int = 0) -> torch.Tensor:
    U = torch.randn(k, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return U / U.norm(dim=1, keepdim=True)


def explicit_kl_curvatures(model: torch.nn.Module, ids: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """uᵀH u of each position's KL(softmax logits(W) || softmax logits(W0)) in the key weight, H the full Hessian
    (``torch.autograd.functional.hessian``), the text run alone with the plain HF forward (no padding, no wrapper): (T, k)."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    shape = params[KEY].shape
    inputs = {"input_ids": ids[None], "use_cache": False}
    reference = torch.log_softmax(functional_call(model, params, (), inputs).logits[0], dim=-1)

    def kl_at(position: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def kl(w: torch.Tensor) -> torch.Tensor:
            log_p = torch.log_softmax(functional_call(model, {**params, KEY: w.view(shape)}, (), inputs).logits[0, position], dim=-1)
            return (log_p.exp() * (log_p - reference[position])).sum()

        return kl

    rows = [torch.einsum("kp,pq,kq->k", U, hessian(kl_at(t), params[KEY].reshape(-1), vectorize=True), U) for t in range(len(ids))]
    return torch.stack(rows)


def explicit_batch_curvatures(model: torch.nn.Module) -> torch.Tensor:
    """The explicit curvatures of :func:`padded_batch`'s real tokens along :func:`unit_directions` (3, 512): (10, 3),
    in token-table order."""
    batch, U = padded_batch(), unit_directions(3, KEY_SHAPE[0] * KEY_SHAPE[1])
    return torch.cat([explicit_kl_curvatures(model, batch.ids[i, batch.mask[i]], U) for i in range(2)])


@pytest.fixture(scope="module")
def truth(tiny_llama: torch.nn.Module) -> torch.Tensor:
    with Float64Throughout():
        truth: torch.Tensor = on_one_thread(lambda: explicit_batch_curvatures(tiny_llama))
    return truth


# -- curvature of the per-position KL == the explicit Hessian -------------------------------------


@pytest.mark.parametrize("method", [None, *CURVATURE_METHODS])
def test_token_curvature_of_the_kl_equals_the_explicit_hessian(
    tiny_llama: torch.nn.Module, truth: torch.Tensor, method: str | None, float64_throughout: None
) -> None:
    batch, U = padded_batch(), unit_directions(3, KEY_SHAPE[0] * KEY_SHAPE[1])
    module = TokenOutputs(tiny_llama, "logits")
    options = {} if method is None else {"method": method}  # None: token_curvatures' own default
    ours = token_curvatures(module, [PREFIX + KEY], batch, U, batch_size=2, **options)
    assert ours.shape == (6 + 4, 3)  # real tokens only
    assert truth.abs().max() > 1e-2 and (truth[1:6] > 1e-5).all()
    assert (ours - truth).abs().max() < 1e-12  # float64 rounding (2.5e-16 here); the padded text curves as if alone
    # position 0 attends to itself only: a one-key softmax does not depend on W_K, so the first token never curves
    assert truth[0].abs().max() == 0 and truth[6].abs().max() == 0


def test_the_stock_float32_internals_agree_to_float32_rounding(tiny_llama: torch.nn.Module) -> None:
    """Without :class:`Float64Throughout`: HF Llama's float32 RMSNorm and softmax bound the agreement (3.4e-9 of 0.038 here)."""
    batch, U = padded_batch(), unit_directions(3, KEY_SHAPE[0] * KEY_SHAPE[1])
    stock = explicit_batch_curvatures(tiny_llama)
    ours = token_curvatures(TokenOutputs(tiny_llama, "logits"), [PREFIX + KEY], batch, U)
    assert (ours - stock).abs().max() < 1e-6 * stock.abs().max()


@pytest.mark.parametrize("method", [None, *CURVATURE_METHODS, "double_backward"])
def test_directional_curvature_per_position_equals_the_explicit_hessian(
    tiny_llama: torch.nn.Module, truth: torch.Tensor, method: str | None, float64_throughout: None
) -> None:
    batch, U = padded_batch(), unit_directions(3, KEY_SHAPE[0] * KEY_SHAPE[1])
    module = TokenOutputs(tiny_llama, "logits")
    if method == "double_backward":  # the write-up's nested products, the benchmark's baseline
        per_position = reference_curvature(module, PREFIX + KEY, batch.inputs, U, positions="each")
    else:
        options = {} if method is None else {"method": method}  # None: directional_curvature's own default
        per_position = directional_curvature(module, PREFIX + KEY, batch.inputs, U, positions="each", **options)
    assert per_position.shape == (2, 6, 3)
    assert (per_position[~batch.mask] == 0).all()  # padding is no sample and curves 0
    assert (per_position[batch.mask] - truth).abs().max() < 1e-12


def test_the_kl_is_zero_with_zero_gradient_at_w0_at_every_position(tiny_llama: torch.nn.Module) -> None:
    batch = padded_batch()
    module = TokenOutputs(tiny_llama, "logits")
    delta = torch.zeros(KEY_SHAPE[0] * KEY_SHAPE[1], dtype=torch.float64)
    at_w0 = sample_divergence(module, PREFIX + KEY, batch.inputs, delta, positions="each")  # auto: the module declares logits
    assert at_w0.shape == (2, 6) and at_w0.abs().max() == 0
    gradients = jacobian(lambda d: sample_divergence(module, PREFIX + KEY, batch.inputs, d, positions="each"), delta)  # (2, 6, 512)
    assert gradients.shape == (2, 6, 512) and gradients.abs().max() < 1e-14
    step = 0.3 * unit_directions(1, 512)[0]
    moved = sample_divergence(module, PREFIX + KEY, batch.inputs, step, positions="each")
    later = batch.mask.clone()
    later[:, 0] = False
    assert (moved[later] > 0).all() and (moved[:, 0] == 0).all() and (moved[~batch.mask] == 0).all()
    # the write-up's direction: KL(f(W, x) || f(W0, x)), the perturbed model's next-token distribution first
    params = {name: p.detach() for name, p in tiny_llama.named_parameters()}
    ids = batch.ids[:1]
    log_q0 = torch.log_softmax(functional_call(tiny_llama, params, (), {"input_ids": ids}).logits, dim=-1)
    perturbed = {**params, KEY: params[KEY] + step.view(KEY_SHAPE)}
    log_p = torch.log_softmax(functional_call(tiny_llama, perturbed, (), {"input_ids": ids}).logits, dim=-1)
    assert torch.allclose(moved[0], (log_p.exp() * (log_p - log_q0)).sum(dim=-1)[0], rtol=1e-9, atol=1e-15)


# -- a causal checkpoint: KL by default, on its W_K ----------------------------------------------------


def test_a_causal_checkpoint_defaults_to_the_kl_on_its_key_weight(
    registry_of_tiny_llama: str, tiny_llama: torch.nn.Module, float64_throughout: None
) -> None:
    lm = load_language_model(registry_of_tiny_llama)
    assert lm.output == "logits" and lm.module.featgeom_output == "logits"
    assert type(lm.module.model).__name__ == "LlamaForCausalLM" and lm.module.model.config._attn_implementation == "eager"
    assert next(lm.module.parameters()).dtype == torch.float64  # the registry's float64 weights are kept
    assert lm.default_block(1) == KEY and lm.default_block(0) == "model.layers.0.self_attn.k_proj.weight"
    assert lm.shape(KEY) == KEY_SHAPE and lm.describe([KEY]) == f"{KEY} (16 × 32)"
    assert lm.canonical(["layers.1.self_attn.k_proj.weight"]) == (KEY,)  # the base model's (AutoModel's) name for it
    batch = tokenize(lm.tokenizer, ["the cat is on the mat .", "it was"], max_tokens=8)
    reference = lm.module(batch.inputs)
    assert reference.shape == (2, batch.ids.shape[1], 64)
    assert choose_divergence(lm.module, reference, "auto") == "kl"
    ours = token_curvatures(lm.module, lm.block([KEY]), batch, unit_directions(2, 512))
    head = {name: p for name, p in lm.module.model.named_parameters()}
    assert torch.equal(head[KEY], dict(tiny_llama.named_parameters())[KEY])  # the reloaded checkpoint is the saved model
    first = explicit_kl_curvatures(tiny_llama, batch.ids[0, batch.mask[0]], unit_directions(2, 512))
    assert (ours[: len(first)] - first).abs().max() < 1e-12


def test_causal_lms_are_told_from_encoders_with_or_without_architectures() -> None:
    from transformers import BertConfig, LlamaConfig

    assert is_causal(LlamaConfig()) and is_causal(LlamaConfig(architectures=["LlamaForCausalLM"]))  # the first: SmolLM2's converted config
    assert not is_causal(BertConfig()) and not is_causal(BertConfig(architectures=["BertModel"]))  # MiniLM's
    assert is_causal(BertConfig(is_decoder=True)) and not is_causal(LlamaConfig(architectures=["LlamaForSequenceClassification"]))
    assert not is_causal(None)


def test_the_page_offers_the_block_names_the_job_takes(registry_of_tiny_llama: str) -> None:
    from featgeom_core import models

    plain = models.shared_model(registry_of_tiny_llama).plain_model
    assert plain is not None and next(iter(dict(plain.named_parameters()))) == "embed_tokens.weight"  # the base model's names
    choices = block_choices(plain)
    assert KEY in choices and choices[0] == "model.embed_tokens.weight"
    lm = load_language_model(registry_of_tiny_llama)
    assert set(choices) <= set(lm.block_names())


def test_a_block_or_layer_the_model_lacks_is_refused_naming_what_exists(tiny_llama: torch.nn.Module) -> None:
    lm = LanguageModel("tiny-llama", TokenOutputs(tiny_llama, "logits"), None, 2, "tiny")
    with pytest.raises(InvalidParameter, match=r"layer = 2: tiny-llama has 2 layers, 0\.\.1"):
        lm.default_block(2)
    with pytest.raises(InvalidParameter) as missing:
        lm.block(["model.layers.5.self_attn.k_proj.weight"])
    message = str(missing.value)
    assert "'model.layers.5.self_attn.k_proj.weight' does not exist in tiny-llama" in message
    assert "closest: model.layers.0.self_attn.k_proj.weight" in message or "closest: model.layers.1.self_attn.k_proj.weight" in message
    assert "model.embed_tokens.weight" in message and "in all, 2 layers 0..1" in message
    with pytest.raises(InvalidParameter, match="'self_attn.key.weight' does not exist"):
        lm.block(["self_attn.key.weight"])
    with pytest.raises(InvalidParameter, match=r"does not exist in TokenOutputs; its parameters are: model\.model\.embed_tokens\.weight"):
        directional_curvature(lm.module, "model.layers.1.self_attn.k_proj.weight", padded_batch().inputs, unit_directions(1, 512))


# -- the job ----------------------------------------------------------------------------------------


def test_a_job_on_smollm2_validates() -> None:
    from featgeom_core.hessian.jobs import HESSIAN_FEATURES

    nested = HESSIAN_FEATURES.parse({"target": {"kind": "language", "model": "smollm2", "layer": 12}})
    flat = HESSIAN_FEATURES.parse({"model": "smollm2", "layer": 12})  # the CLI's shorthand
    assert nested == flat and nested.target.kind == "language" and nested.target.model == "smollm2"
    fit = nested.target.fit
    assert (fit.divergence, fit.positions, fit.curvature) == ("auto", "each", "output_jvp")  # auto: KL for a causal LM's logits
    named = HessianFeaturesParams.parse({"model": "smollm2", "block": "model.layers.3.self_attn.k_proj.weight"})
    assert named.target.block == ["model.layers.3.self_attn.k_proj.weight"]
    with pytest.raises(InvalidParameter, match="layer"):
        HessianFeaturesParams.parse({"model": "smollm2", "layer": -1})


def test_a_job_on_a_causal_checkpoint_learns_kl_features_read_as_tokens(registry_of_tiny_llama: str) -> None:
    from featgeom_core.hessian.run import run_features

    params = HessianFeaturesParams.parse(
        {
            "target": {
                "kind": "language",
                "model": registry_of_tiny_llama,
                "layer": 1,
                "n_texts": 3,
                "heldout_texts": 2,
                "max_tokens": 8,
                "fit": {"k": 2, "steps": 2, "init_iterations": 1, "device": "cpu"},
            }
        }
    )
    messages: list[str] = []
    result = run_features(params, lambda fraction, message, metrics=None, /: messages.append(message)).result
    features = result.features
    assert features.divergence == "kl" and result.output == "logits"
    assert features.block == (KEY,) and features.block_shapes == (KEY_SHAPE,) and tuple(features.U.shape) == (2, 512)
    assert "KL(perturbed || trained) of the next-token distribution" in result.description and f"{KEY} (16 × 32)" in result.description
    assert any(f"block {KEY} (16 × 32)" in message for message in messages)
    assert features.curvatures.shape == (len(result.train_tokens), 2) and result.heldout_curvatures.shape == (len(result.heldout_tokens), 2)
    rows = result.top_rows(0, 3, "held-out")
    assert len(rows) == 3 and all(row["token"] and row["value"] >= 0 for row in rows)
    assert all(row["position"] > 0 for row in rows)  # a text's first token never curves along W_K
    assert result.summary()["block"] == [KEY]


# -- SmolLM2-135M (slow tier) ----------------------------------------------------------------------


def test_smollm2_curves_along_its_key_weight_by_the_kl(smollm2: Any) -> None:
    lm = load_language_model("smollm2")
    assert lm.n_layers == 30 and lm.output == "logits" and type(lm.module.model).__name__ == "LlamaForCausalLM"
    block = lm.default_block(4)
    assert block == "model.layers.4.self_attn.k_proj.weight" and lm.shape(block) == (192, 576)  # 3 KV heads x 64
    assert lm.describe([block]) == "model.layers.4.self_attn.k_proj.weight (192 × 576)"
    with pytest.raises(InvalidParameter, match="30 layers, 0..29"):
        lm.default_block(30)
    batch = tokenize(lm.tokenizer, ["The capital of France is Paris.", "def add(a, b):"], max_tokens=8)
    U = unit_directions(2, 192 * 576, seed=3).float()
    fast = token_curvatures(lm.module, lm.block([block]), batch, U)  # output_jvp, the job's default
    nested = token_curvatures(lm.module, lm.block([block]), batch, U, method="nested_jvp")
    assert fast.shape == (batch.n_tokens, 2) and torch.isfinite(fast).all() and (fast >= 0).all()
    assert (fast - nested).abs().max() <= 1e-3 * fast.abs().max() + 1e-6  # float32: the two methods agree to rounding
    first = batch.token_table()["position"] == 0
    assert fast[first].abs().max() < 1e-6 * fast.abs().max() and fast[~first].max() > 0
    at_w0 = sample_divergence(lm.module, lm.block([block]), batch.inputs, None, positions="each")
    assert at_w0.abs().max() == 0
