"""Language models for the Hessian analysis: texts as padded token batches, and a module that maps
them to per-token outputs, so that every real token (never a padding position) is a sample.

- An encoder (the offline MiniLM, whose checkpoint has no trained head): the outputs are the final
  hidden state (B, T, d_model), ``featgeom_output = "regression"``, so D is the MSE of each
  token's final hidden state.
- A causal language model (``smollm2``, or any ``*ForCausalLM`` checkpoint: a local directory, a
  hub id): the checkpoint is reloaded with its head, the outputs are the logits (B, T, vocab),
  ``featgeom_output = "logits"``, so D is the write-up's setting: at every position, the KL
  divergence KL(p(W) || p(W0)) of the next-token distribution of the perturbed model from the
  trained one's, in nats (0 at W0 with zero gradient there). The default block is the attention
  key weight W_K of a layer (``model.layers.{l}.self_attn.k_proj.weight`` for Llama-style models,
  (n_kv_heads * head_dim, d_model) under grouped-query attention).

Inputs are one integer tensor (B, 2, T): token ids and the attention mask. The model sees the
mask (real tokens never attend to padding), and the outputs at padding positions are set to 0, so
their divergence and curvature are exactly 0 whatever the weights; the fit also leaves them out
(its ``position_mask``) and :func:`token_curvatures` returns real tokens only.

Block names are the checkpoint's own, as the loaded module names them
(``encoder.layer.4.attention.self.key.weight``; a causal LM's with its base model's attribute,
``model.layers.4.self_attn.k_proj.weight``); the base model's names (``layers.4.self_attn...``,
what ``AutoModel`` calls them) are accepted for the same parameters. :data:`PREFIX` is added where
the wrapped module is differentiated.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from featgeom_core.errors import DataError, InvalidParameter, ModelUnavailable
from featgeom_core.hessian.blocks import trainable_parameter_names
from featgeom_core.hessian.curvature import CurvatureMethod, directional_curvature
from featgeom_core.progress import Progress, silent

PREFIX = "model."
"""The wrapped checkpoint's attribute in :class:`TokenOutputs`: block names gain it inside."""
Output = Literal["hidden", "logits"]
KEY_WEIGHT_PATTERNS = (
    r"attention\.self\.key\.weight$",
    r"k_proj\.weight$",
    r"attn\.W_K$",
    r"query_key_value\.weight$",
    r"attn\.c_attn\.weight$",
    r"qkv(_proj)?\.weight$",
)
"""Where an attention key weight lives in common checkpoints (the fused QKV forms last)."""


@dataclass(frozen=True)
class TokenBatch:
    """Texts as a padded batch. ``ids`` and ``mask`` (n_texts, T): token ids and which positions
    are real tokens (True) rather than padding; ``offsets`` (n_texts, T, 2): each token's
    character span in its text (special tokens (0, 0)); ``special`` (n_texts, T): special tokens
    such as [CLS]; ``strings``: each text's token strings (real positions only); ``texts``: the
    texts, cut after their last token."""

    ids: torch.Tensor
    mask: torch.Tensor
    offsets: torch.Tensor
    special: torch.Tensor
    strings: tuple[tuple[str, ...], ...]
    texts: tuple[str, ...]

    @property
    def inputs(self) -> torch.Tensor:
        """(n_texts, 2, T) long: ids and attention mask, what :class:`TokenOutputs` takes."""
        return torch.stack([self.ids, self.mask.long()], dim=1)

    @property
    def n_tokens(self) -> int:
        """Real tokens in the batch (padding left out)."""
        return int(self.mask.sum())

    def token_table(self) -> dict[str, np.ndarray]:
        """One row per real token, in the order of ``curvatures[mask]``: ``text`` and ``position``
        (n_tokens,) int, ``offsets`` (n_tokens, 2) int, ``special`` (n_tokens,) bool, ``token_ids``
        (n_tokens,) int."""
        text, position = torch.nonzero(self.mask, as_tuple=True)
        return {
            "text": text.numpy(),
            "position": position.numpy(),
            "offsets": self.offsets[self.mask].numpy(),
            "special": self.special[self.mask].numpy(),
            "token_ids": self.ids[self.mask].numpy(),
        }


def tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> TokenBatch:
    """``texts`` as a right-padded batch of at most ``max_tokens`` tokens each (longer texts are
    cut), padded to the longest. A tokenizer without a pad token pads with its end-of-text token."""
    if not texts:
        raise DataError("no texts to tokenize")
    if max_tokens < 2:
        raise InvalidParameter(f"max_tokens = {max_tokens}: at least 2")
    if getattr(tokenizer, "pad_token", None) is None:
        if getattr(tokenizer, "eos_token", None) is None:
            raise DataError(f"{type(tokenizer).__name__} has neither a pad token nor an end-of-text token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    try:
        encoded = tokenizer(
            list(texts),
            truncation=True,
            max_length=max_tokens,
            padding="longest",
            return_tensors="pt",
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        offsets = encoded["offset_mapping"].long()
    except NotImplementedError:  # a slow tokenizer: no character offsets (contexts are then built from token strings)
        encoded = tokenizer(
            list(texts), truncation=True, max_length=max_tokens, padding="longest", return_tensors="pt", return_special_tokens_mask=True
        )
        offsets = torch.zeros(*encoded["input_ids"].shape, 2, dtype=torch.long)
    ids, mask = encoded["input_ids"].long(), encoded["attention_mask"].bool()
    if not mask.any(dim=1).all():
        empty = torch.nonzero(~mask.any(dim=1)).flatten().tolist()
        raise DataError(f"texts {empty[:5]} have no tokens")
    special = encoded["special_tokens_mask"].bool() & mask
    strings = tuple(tuple(tokenizer.convert_ids_to_tokens(row[m].tolist())) for row, m in zip(ids, mask))
    ends = offsets[..., 1].max(dim=1).values
    cut = tuple(text[: int(end)] if int(end) > 0 else text for text, end in zip(texts, ends))
    return TokenBatch(ids, mask, offsets, special, strings, cut)


class TokenOutputs(torch.nn.Module):
    """A language model as the Hessian analysis sees it: inputs (B, 2, T) long (ids, attention
    mask) -> outputs (B, T, d) with padding positions set to 0. ``output="hidden"``: the final
    hidden state (MSE divergence); ``"logits"``: the logits (KL divergence)."""

    def __init__(self, model: torch.nn.Module, output: Output) -> None:
        super().__init__()
        if output not in ("hidden", "logits"):
            raise InvalidParameter(f"output {output!r}: use hidden or logits")
        self.model = model
        self.output = output
        self.featgeom_output = "regression" if output == "hidden" else "logits"

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.ndim != 3 or inputs.shape[1] != 2:
            raise DataError(f"inputs {tuple(inputs.shape)}: a language model takes (texts, 2, tokens): ids and attention mask")
        ids, mask = inputs[:, 0], inputs[:, 1]
        if self.output == "logits":  # a causal LM: no key/value cache, which every forward would otherwise build and drop
            values = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        else:
            values = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return values * mask[..., None].to(values.dtype)


@dataclass
class LanguageModel:
    """A loaded language model for the Hessian analysis: the wrapped module, its tokenizer, its
    layer count, which output D is taken of, and the checkpoint's fingerprint."""

    name: str
    module: TokenOutputs
    tokenizer: Any
    n_layers: int
    fingerprint: str

    @property
    def output(self) -> Output:
        return self.module.output

    def block_names(self) -> list[str]:
        """Parameter names a block can be made of, as the checkpoint names them."""
        return [name[len(PREFIX) :] for name in trainable_parameter_names(self.module)]

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of one block parameter (a name of :meth:`block_names`, or its base model's name)."""
        (canonical,) = self.canonical([name])
        return tuple(self.module.get_parameter(PREFIX + canonical).shape)

    def canonical(self, names: Sequence[str]) -> tuple[str, ...]:
        """The names as :meth:`block_names` has them: a causal LM's base-model name (``layers.4.self_attn.k_proj.weight``,
        as ``AutoModel`` loads it) gains the base model's attribute (``model.``). Refuses a name that is neither,
        naming the parameters that exist (and the closest ones)."""
        names_here = self.block_names()
        known = set(names_here)
        base = getattr(self.module.model, "base_model_prefix", "")
        out = []
        for name in names:
            if name in known:
                out.append(name)
            elif base and f"{base}.{name}" in known:
                out.append(f"{base}.{name}")
            else:
                close = difflib.get_close_matches(name, names_here, n=3, cutoff=0.6)
                hint = f"; closest: {', '.join(close)}" if close else ""
                listed = ", ".join(names_here[:12])
                raise InvalidParameter(
                    f"parameter block {name!r} does not exist in {self.name}{hint}; its parameters are: {listed}, ... "
                    f"({len(known)} in all, {self.n_layers} layers 0..{self.n_layers - 1})"
                )
        return tuple(out)

    def describe(self, names: Sequence[str]) -> str:
        """The block for a summary: each name with its shape, ``model.layers.4.self_attn.k_proj.weight (192 × 576)``,
        and the total count of numbers when there are several."""
        shapes = [self.shape(name) for name in names]
        parts = [f"{name} ({' × '.join(map(str, shape))})" for name, shape in zip(names, shapes)]
        total = sum(math.prod(shape) for shape in shapes)
        return ", ".join(parts) + (f", {total:,} numbers" if len(parts) > 1 else "")

    def default_block(self, layer: int) -> str:
        """The attention key weight of ``layer`` (a fused QKV weight where the checkpoint fuses them)."""
        if not 0 <= layer < self.n_layers:
            raise InvalidParameter(f"layer = {layer}: {self.name} has {self.n_layers} layers, 0..{self.n_layers - 1}")
        names = self.block_names()
        in_layer = [n for n in names if re.search(rf"(^|\.){layer}\.", n)]
        for pattern in KEY_WEIGHT_PATTERNS:
            found = [n for n in in_layer if re.search(pattern, n)]
            if found:
                return found[0]
        raise InvalidParameter(
            f"no attention key weight found in layer {layer} of {self.name}; name a block, e.g. one of "
            f"{', '.join(in_layer[:8]) or ', '.join(names[:8])}"
        )

    def block(self, names: Sequence[str]) -> tuple[str, ...]:
        """The names as the wrapped module knows them (:meth:`canonical`, with :data:`PREFIX`); refuses an unknown name."""
        return tuple(PREFIX + name for name in self.canonical(names))


def block_choices(plain_model: torch.nn.Module) -> list[str]:
    """The floating-point parameter names of a registry model's plain module (``LoadedModel.plain_model``, an
    ``AutoModel``: a causal LM's base model, without its head) as the analysis names them: a causal LM's with
    its base model's attribute first (``model.layers.4.self_attn.k_proj.weight``), what the job's result shows."""
    names = [name for name, p in plain_model.named_parameters() if p.is_floating_point()]
    prefix = getattr(plain_model, "base_model_prefix", "")
    if is_causal(getattr(plain_model, "config", None)) and prefix:
        return [f"{prefix}.{name}" for name in names]
    return names


def is_causal(config: Any) -> bool:
    """Whether a checkpoint's config is a causal language model's: its ``architectures`` name one
    (``*ForCausalLM`` / ``*LMHeadModel``); a config without them (SmolLM2's, converted from GGUF) is
    one when it says ``is_decoder`` or its ``model_type`` has a causal-LM class and no masked-LM one
    (Llama, GPT-2, ... but not BERT, which has both)."""
    architectures = getattr(config, "architectures", None)
    if architectures:
        return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures)
    if config is None:
        return False
    if getattr(config, "is_decoder", False):
        return True
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = getattr(config, "model_type", None)
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def load_language_model(model_id: str) -> LanguageModel:
    """A registry model (``minilm``, ``smollm2``, a local checkpoint directory or a hub id) wrapped
    for the analysis: encoders give their final hidden state (D = MSE), causal language models
    their logits (D = KL of the next-token distribution): a causal LM is reloaded from its
    checkpoint (``LoadedModel.source``) with its head, eager attention (forward-mode AD has no rule
    for fused attention kernels) and float32 weights unless the registry's are float64. Raises
    ``ModelUnavailable`` for a model with no Hugging Face module."""
    from featgeom_core.models import shared_model

    loaded = shared_model(model_id)
    if loaded.plain_model is None:
        raise ModelUnavailable(
            f"{model_id!r} is a TransformerLens-native model with no Hugging Face module to differentiate; "
            f"choose minilm, a local Hugging Face checkpoint directory or a hub id"
        )
    model: torch.nn.Module = loaded.plain_model
    output: Output = "hidden"
    if is_causal(model.config):
        from transformers import AutoModelForCausalLM

        if not loaded.source:
            raise ModelUnavailable(f"{model_id!r}: the registry did not say which checkpoint it loaded, so its head cannot be loaded")
        dtype = torch.float64 if next(model.parameters()).dtype == torch.float64 else torch.float32  # half precision curves badly
        causal: torch.nn.Module = AutoModelForCausalLM.from_pretrained(loaded.source, attn_implementation="eager", dtype=dtype)
        model = causal.to(loaded.device).eval()
        output = "logits"
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return LanguageModel(loaded.name, TokenOutputs(model.eval(), output), loaded.tokenizer, loaded.n_layers, loaded.fingerprint)


def token_curvatures(
    module: TokenOutputs,
    block: Sequence[str],
    batch: TokenBatch,
    U: torch.Tensor,
    *,
    batch_size: int = 16,
    method: CurvatureMethod = "output_jvp",
    device: str | torch.device | None = None,
    progress: Progress = silent,
) -> torch.Tensor:
    """uᵀH(x)u of every real token of ``batch`` along every row of U (k, block size): (n_tokens, k),
    rows in the order of :meth:`TokenBatch.token_table` (padding left out). ``block``: names as
    the wrapped module knows them (see :meth:`LanguageModel.block`)."""
    per_position = directional_curvature(
        module, list(block), batch.inputs, U, positions="each", batch_size=batch_size, method=method, device=device, progress=progress
    )  # (n_texts, T, k)
    return per_position[batch.mask.to(per_position.device)].cpu()
