"""Language models for the Hessian analysis: texts as padded token batches, and a module that maps
them to per-token outputs, so that every real token (never a padding position) is a sample.

- An encoder (the offline MiniLM, whose checkpoint has no trained head): the outputs are the final
  hidden state (B, T, d_model), ``featgeom_output = "regression"``, so D is the MSE of each
  token's final hidden state.
- A causal language model (a ``*ForCausalLM`` checkpoint from the registry, on a networked
  machine or a local directory): the outputs are the logits (B, T, vocab),
  ``featgeom_output = "logits"``, so D is the normalised KL divergence per position.

Inputs are one integer tensor (B, 2, T): token ids and the attention mask. The model sees the
mask (real tokens never attend to padding), and the outputs at padding positions are set to 0, so
their divergence and curvature are exactly 0 whatever the weights; the fit also leaves them out
(its ``position_mask``) and :func:`token_curvatures` returns real tokens only.

Block names are the checkpoint's own (``encoder.layer.4.attention.self.key.weight``);
:data:`PREFIX` is added where the wrapped module is differentiated.
"""

from __future__ import annotations

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
        out = self.model(input_ids=ids, attention_mask=mask)
        values = out.last_hidden_state if self.output == "hidden" else out.logits
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

    def default_block(self, layer: int) -> str:
        """The attention key weight of ``layer`` (a fused QKV weight where the checkpoint fuses them)."""
        if not 0 <= layer < self.n_layers:
            raise InvalidParameter(f"layer = {layer}: {self.name} has layers 0..{self.n_layers - 1}")
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
        """The names as the wrapped module knows them (with :data:`PREFIX`); refuses an unknown name."""
        known = set(self.block_names())
        for name in names:
            if name not in known:
                listed = ", ".join(self.block_names()[:12])
                raise InvalidParameter(
                    f"parameter block {name!r} does not exist in {self.name}; its parameters are: {listed}, ... ({len(known)} in all)"
                )
        return tuple(PREFIX + name for name in names)


def is_causal(config: Any) -> bool:
    """Whether a checkpoint's config names a causal language model (``*ForCausalLM`` / ``*LMHeadModel``)."""
    return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in (getattr(config, "architectures", None) or []))


def load_language_model(model_id: str) -> LanguageModel:
    """A registry model (``minilm``, a local checkpoint directory or a hub id) wrapped for the
    analysis: encoders give their final hidden state, causal language models their logits
    (loaded with their head). Raises ``ModelUnavailable`` for a model with no Hugging Face module."""
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

        causal: torch.nn.Module = AutoModelForCausalLM.from_pretrained(loaded.source, attn_implementation="eager")
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
