"""One block of a language model as LIB's sequence of node layers (the paper's Appendix A.5 for
transformers): the residual stream is carried through every node layer, biases are folded into the
constant-1 last coordinate, and each normalisation is split into its statistic (the node layer's
first coordinate, kept out of the rotations: a LayerNorm's variance, an RMSNorm's mean of squares)
and a normalisation that the next section applies with the norm's gain.

Four block shapes, read from a Hugging Face model (``transformers``), never modified:

- post-LN (BERT family, the offline default MiniLM):
  ``resid_pre`` [h, 1] -> ``resid_mid`` [var(y), y, 1] with y = h + attn(h) -> ``mlp.hook_post``
  [act(LN1(y) W_in), LN1(y), 1] -> ``resid_post`` LN2(LN1(y) + mlp) (the block's output);
- pre-LN (GPT-2 family):
  ``resid_pre`` [var(x), x, 1] -> ``resid_mid`` [var(y), y, 1] with y = x + attn(LN1(x)) ->
  ``mlp.hook_post`` [act(LN2(y) W_in), y, 1] -> ``resid_post`` y + mlp (the block's output);
  GPT-NeoX (Pythia) with ``use_parallel_residual`` off has this shape too;
- parallel residual (GPT-NeoX, Pythia): attention and MLP both read x, so the middle node layer
  carries x beside the attention's output a:
  ``resid_pre`` [var(x), x, 1] -> ``attn_out`` [var(x), x, a, 1] with a = attn(LN1(x)) ->
  ``mlp.hook_post`` [act(LN2(x) W_in), x + a, 1] -> ``resid_post`` x + a + mlp;
- Llama (SmolLM2, the offline causal LM ``smollm2``): the pre-LN shape with RMSNorm, N(y) =
  y / sqrt(ms(y) + eps) * g with ms(y) = mean(y^2) (no centring, no bias), and a SwiGLU MLP:
  ``resid_pre`` [ms(x), x, 1] -> ``resid_mid`` [ms(y), y, 1] with y = x + attn(N1(x)) ->
  ``mlp.hook_post`` [act(N2(y) W_gate) * N2(y) W_up, y, 1] (d_mlp wide, then y) -> ``resid_post``
  y + mlp.hook_post W_down; attention has grouped-query heads (each key/value head serves
  n_heads / n_kv_heads consecutive query heads).

GPT-NeoX and Llama rotate each head's first ``rotary_ndims`` query and key coordinates (Llama: all
of them) by position (rotary embeddings, rotate-half pairing); the attention core applies that
rotation with the model's own frequencies (its ``inv_freq``, from ``rope_theta``), cos and sin
computed in float32 as transformers does. transformers computes a Llama's RMSNorm and its eager
softmax in float32 whatever the model's dtype; the float64 view computes them in float64 (the same
function, without that rounding).

Node layers are named as TransformerLens names its hooks (``blocks.{l}.hook_resid_pre``, ...).
Inputs are token windows (N, T) of equal length, so no padding enters an attention pattern.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.interaction.sequential import Section, SequentialModel, affine

BlockShape = Literal["post_ln", "pre_ln", "parallel"]
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": torch.nn.functional.gelu,
    "gelu_new": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "relu": torch.relu,
    "silu": torch.nn.functional.silu,
}
DYNAMIC_ROPE_TYPES = ("dynamic", "longrope")
"""Rotary types whose frequencies change with the sequence's length (transformers' ``dynamic_rope_update``)."""
LLAMA_MODEL_TYPES = ("llama",)
"""``config.model_type`` of the Llama-shaped models LIB's block view reads (others with the same
module names differ in ways it would miss: Gemma's (1 + g) gain, Qwen3's query/key norms, Mistral's
sliding window)."""


def node_layer_names(layer: int, parallel: bool = False) -> list[str]:
    """The four node layers of block ``layer``, in order (``hook_attn_out`` in the middle of a
    parallel-residual block, which has no residual stream between attention and MLP)."""
    middle = "hook_attn_out" if parallel else "hook_resid_mid"
    return [
        f"blocks.{layer}.hook_resid_pre",
        f"blocks.{layer}.{middle}",
        f"blocks.{layer}.mlp.hook_post",
        f"blocks.{layer}.hook_resid_post",
    ]


def _variance(y: torch.Tensor) -> torch.Tensor:
    """A LayerNorm's variance of y (..., d) over its last dimension, (..., 1)."""
    return (y - y.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True)


def _mean_square(y: torch.Tensor) -> torch.Tensor:
    """An RMSNorm's mean of squares of y (..., d) over its last dimension (no centring), (..., 1)."""
    return y.pow(2).mean(-1, keepdim=True)


@dataclass(frozen=True, eq=False)
class LayerNormParams:
    """A LayerNorm's gain (d,), bias (d,) and epsilon."""

    weight: torch.Tensor
    bias: torch.Tensor
    eps: float

    def statistic(self, y: torch.Tensor) -> torch.Tensor:
        """The variance of y (..., d), (..., 1): the coordinate a node layer carries for this norm."""
        return _variance(y)

    def normalise(self, y: torch.Tensor, variance: torch.Tensor, one: torch.Tensor) -> torch.Tensor:
        """LN(y) given its variance (..., 1) as a separate input; the bias rides on the constant."""
        return (y - y.mean(-1, keepdim=True)) / torch.sqrt(variance + self.eps) * self.weight + one * self.bias


@dataclass(frozen=True, eq=False)
class RMSNormParams:
    """An RMSNorm's gain (d,) and epsilon (Llama's: no centring, no bias)."""

    weight: torch.Tensor
    eps: float

    def statistic(self, y: torch.Tensor) -> torch.Tensor:
        """The mean of squares of y (..., d), (..., 1): the coordinate a node layer carries for this norm."""
        return _mean_square(y)

    def normalise(self, y: torch.Tensor, mean_square: torch.Tensor, one: torch.Tensor) -> torch.Tensor:
        """N(y) = g * y / sqrt(ms(y) + eps) given ms(y) (..., 1) as a separate input (transformers'
        order of operations; ``one`` is unused, there is no bias)."""
        return self.weight * (y * torch.rsqrt(mean_square + self.eps))


Norm = LayerNormParams | RMSNormParams


@dataclass(frozen=True, eq=False)
class Rotary:
    """Rotary position embedding of each head's first ``2 * len(inv_freq)`` query and key
    coordinates (transformers' rotate-half convention: the rotated part's first half is paired with
    its second half), cos and sin multiplied by ``scaling``."""

    inv_freq: torch.Tensor
    scaling: float = 1.0

    def __call__(self, heads: torch.Tensor) -> torch.Tensor:
        """heads (n, p, h, e) at positions 0..p-1 -> the same with the rotary part rotated."""
        n_rot = 2 * self.inv_freq.shape[0]
        # the angles in float32, as transformers' rotary embeddings compute them at every dtype
        angles = torch.arange(heads.shape[1], dtype=torch.float32, device=heads.device)[:, None] * self.inv_freq.float().to(heads.device)
        angles = torch.cat([angles, angles], dim=-1)
        cos = (angles.cos() * self.scaling).to(heads.dtype)[None, :, None, :]
        sin = (angles.sin() * self.scaling).to(heads.dtype)[None, :, None, :]
        rotated, passed = heads[..., :n_rot], heads[..., n_rot:]
        first, second = rotated.chunk(2, dim=-1)
        return torch.cat([rotated * cos + torch.cat([-second, first], dim=-1) * sin, passed], dim=-1)


@dataclass(frozen=True, eq=False)
class SelfAttentionCore:
    """``[stat(x)?, q, k, v, x, 1]`` -> ``[stat(y), y, 1]`` with y = x + softmax(q k^T / sqrt(e)) v W_O + b_O.

    Pre-norm blocks read q, k, v from N1(x): then the input is ``[stat(x), x, 1]`` and ``norm`` and
    the q/k/v weights are applied here (``qkv`` (d, (h + 2 h_kv) e), ``qkv_bias`` ((h + 2 h_kv) e,));
    post-LN blocks get q, k, v from the linear map before the core (``norm`` None). ``n_kv_heads``
    key/value heads (None: ``n_heads``) each serve ``n_heads / n_kv_heads`` consecutive query heads
    (grouped-query attention). ``rotary`` rotates q and k by position; ``next_norm`` is the norm
    that reads y (its statistic, ``stat(y)``, leads the output; None: a LayerNorm's variance);
    ``parallel`` returns ``[stat(x), x, a, 1]`` with a = softmax(...) v W_O + b_O instead of adding
    a to x (a parallel-residual block's MLP still reads x).
    """

    n_heads: int
    d_head: int
    causal: bool
    W_O: torch.Tensor
    b_O: torch.Tensor
    norm: Norm | None = None
    qkv: torch.Tensor | None = None
    qkv_bias: torch.Tensor | None = None
    rotary: Rotary | None = None
    parallel: bool = False
    n_kv_heads: int | None = None
    next_norm: Norm | None = None

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        kv_heads = self.n_kv_heads or self.n_heads
        width, kv_width = self.n_heads * self.d_head, kv_heads * self.d_head
        if self.norm is None:
            q, k, v, x, one = pre.split([width, kv_width, kv_width, pre.shape[-1] - width - 2 * kv_width - 1, 1], dim=-1)
        else:
            statistic, x, one = pre.split([1, pre.shape[-1] - 2, 1], dim=-1)
            assert self.qkv is not None and self.qkv_bias is not None  # a pre-norm core always carries its q/k/v weights
            q, k, v = (self.norm.normalise(x, statistic, one) @ self.qkv + one * self.qkv_bias).split([width, kv_width, kv_width], dim=-1)
        n, p, _ = q.shape
        q_heads = q.reshape(n, p, self.n_heads, self.d_head)
        k_heads, v_heads = k.reshape(n, p, kv_heads, self.d_head), v.reshape(n, p, kv_heads, self.d_head)
        if self.rotary is not None:
            q_heads, k_heads = self.rotary(q_heads), self.rotary(k_heads)
        if kv_heads != self.n_heads:  # key/value head j serves query heads j * group .. (j + 1) * group - 1
            group = self.n_heads // kv_heads
            k_heads, v_heads = k_heads.repeat_interleave(group, dim=2), v_heads.repeat_interleave(group, dim=2)
        scores = torch.einsum("nqhe,nkhe->nhqk", q_heads, k_heads) / math.sqrt(self.d_head)
        if self.causal:
            scores = scores.masked_fill(torch.ones(p, p, dtype=torch.bool, device=pre.device).triu(1), float("-inf"))
        z = torch.einsum("nhqk,nkhe->nqhe", torch.softmax(scores, dim=-1), v_heads).reshape(n, p, width)
        attended = z @ self.W_O + one * self.b_O
        if self.parallel:
            return torch.cat([statistic, x, attended, one], dim=-1)
        y = x + attended
        return torch.cat([_variance(y) if self.next_norm is None else self.next_norm.statistic(y), y, one], dim=-1)


@dataclass(frozen=True, eq=False)
class NormMLPInCore:
    """``[stat(y), y, 1]`` -> ``[act(N(y) W_in + b_in), r, 1]``, r = N(y) (post-LN) or y (pre-norm).

    With ``W_gate`` (d, d_mlp) and ``b_gate`` (a gated MLP, Llama's SwiGLU) the hidden part is
    ``act(N(y) W_gate + b_gate) * (N(y) W_in + b_in)``, ``W_in`` being the up projection.
    """

    norm: Norm
    W_in: torch.Tensor
    b_in: torch.Tensor
    activation: str
    residual_normalised: bool
    W_gate: torch.Tensor | None = None
    b_gate: torch.Tensor | None = None

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        statistic, y, one = pre.split([1, pre.shape[-1] - 2, 1], dim=-1)
        normalised = self.norm.normalise(y, statistic, one)
        if self.W_gate is None:
            hidden = ACTIVATIONS[self.activation](normalised @ self.W_in + one * self.b_in)
        else:
            assert self.b_gate is not None  # a gated MLP carries its gate's bias (zeros where it has none)
            gate = ACTIVATIONS[self.activation](normalised @ self.W_gate + one * self.b_gate)
            hidden = gate * (normalised @ self.W_in + one * self.b_in)
        return torch.cat([hidden, normalised if self.residual_normalised else y, one], dim=-1)


@dataclass(frozen=True, eq=False)
class ParallelMLPInCore:
    """``[var(x), x, a, 1]`` -> ``[act(LN(x) W_in + b_in), x + a, 1]`` (a parallel-residual block)."""

    norm: LayerNormParams
    W_in: torch.Tensor
    b_in: torch.Tensor
    activation: str

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        d = self.W_in.shape[0]
        variance, x, attended, one = pre.split([1, d, d, 1], dim=-1)
        hidden = ACTIVATIONS[self.activation](self.norm.normalise(x, variance, one) @ self.W_in + one * self.b_in)
        return torch.cat([hidden, x + attended, one], dim=-1)


@dataclass(frozen=True, eq=False)
class FinalNormCore:
    """y -> LN(y) with its own variance (the post-LN block's output; no constant follows)."""

    norm: LayerNormParams

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return self.norm.normalise(y, self.norm.statistic(y), torch.ones_like(y[..., :1]))


@dataclass
class BlockWeights:
    """One block's weights as (in, out) matrices, whatever the source's conventions.

    ``W_q`` (d, h e), ``W_k`` and ``W_v`` (d, h_kv e) with ``n_kv_heads`` h_kv key/value heads
    (None: h); ``ln1``/``ln2`` LayerNorms or RMSNorms; ``W_gate``/``b_gate`` (d, d_mlp)/(d_mlp,)
    for a gated MLP (Llama's ``gate_proj``; ``W_in`` is then its ``up_proj``), None otherwise.
    """

    shape: BlockShape
    n_heads: int
    W_q: torch.Tensor
    W_k: torch.Tensor
    W_v: torch.Tensor
    b_q: torch.Tensor
    b_k: torch.Tensor
    b_v: torch.Tensor
    W_O: torch.Tensor
    b_O: torch.Tensor
    ln1: Norm
    ln2: Norm
    W_in: torch.Tensor
    b_in: torch.Tensor
    W_out: torch.Tensor
    b_out: torch.Tensor
    activation: str
    causal: bool
    rotary: Rotary | None = None
    n_kv_heads: int | None = None
    W_gate: torch.Tensor | None = None
    b_gate: torch.Tensor | None = None


def _ln(module: Any) -> LayerNormParams:
    return LayerNormParams(module.weight.detach(), module.bias.detach(), float(module.eps))


def _rms(module: Any) -> RMSNormParams:
    return RMSNormParams(module.weight.detach(), float(module.variance_epsilon))


def _is_llama(base: Any) -> bool:
    config = getattr(base, "config", None)
    return (
        getattr(config, "model_type", None) in LLAMA_MODEL_TYPES
        and hasattr(base, "layers")
        and hasattr(base, "embed_tokens")
        and hasattr(base, "rotary_emb")
    )


def _blocks(model: Any) -> tuple[BlockShape, Any]:
    """('post_ln', layers) for a BERT-family encoder, ('pre_ln', layers) for GPT-2 and Llama,
    ('parallel' or 'pre_ln', layers) for GPT-NeoX; else a clear error."""
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer") and hasattr(base, "embeddings"):
        return "post_ln", encoder.layer
    if hasattr(base, "h") and hasattr(base, "wte"):
        return "pre_ln", base.h
    if hasattr(base, "layers") and hasattr(base, "embed_in") and hasattr(base, "rotary_emb"):
        return ("parallel" if base.config.use_parallel_residual else "pre_ln"), base.layers
    if _is_llama(base):
        return "pre_ln", base.layers
    raise InvalidParameter(
        "LIB's block view reads BERT-family (post-LN), GPT-2-family (pre-LN), GPT-NeoX-family (Pythia) and Llama "
        f"(SmolLM2) models; {type(model).__name__} is none of them"
    )


def block_weights(model: Any, layer: int) -> BlockWeights:
    """Block ``layer`` of a Hugging Face model as (in, out) matrices; a clear error for a layer the
    model does not have or an activation function LIB does not know."""
    shape, layers = _blocks(model)
    if not 0 <= layer < len(layers):
        raise InvalidParameter(f"block {layer} does not exist: this model has blocks 0 to {len(layers) - 1}")
    config = model.config
    block = layers[layer]
    activation = getattr(config, "hidden_act", None) or getattr(config, "activation_function", None)
    if activation not in ACTIVATIONS:
        raise InvalidParameter(f"activation {activation!r} of block {layer}: LIB's block view knows {', '.join(ACTIVATIONS)}")
    detach = lambda t: t.detach()  # noqa: E731
    if shape == "post_ln":
        attention = block.attention
        W_q, W_k, W_v = (detach(getattr(attention.self, name).weight).T for name in ("query", "key", "value"))
        b_q, b_k, b_v = (detach(getattr(attention.self, name).bias) for name in ("query", "key", "value"))
        return BlockWeights(
            shape,
            int(config.num_attention_heads),
            W_q,
            W_k,
            W_v,
            b_q,
            b_k,
            b_v,
            detach(attention.output.dense.weight).T,
            detach(attention.output.dense.bias),
            _ln(attention.output.LayerNorm),
            _ln(block.output.LayerNorm),
            detach(block.intermediate.dense.weight).T,
            detach(block.intermediate.dense.bias),
            detach(block.output.dense.weight).T,
            detach(block.output.dense.bias),
            activation,
            causal=False,
        )
    if hasattr(block, "attention") and hasattr(block.attention, "query_key_value"):
        return _neox_block_weights(model, block, shape, activation)
    if _is_llama(getattr(model, "base_model", model)):
        return _llama_block_weights(model, block, activation)
    d = int(config.n_embd)
    W_qkv, b_qkv = detach(block.attn.c_attn.weight), detach(block.attn.c_attn.bias)  # Conv1D: (in, out)
    W_q, W_k, W_v = W_qkv.split(d, dim=1)
    b_q, b_k, b_v = b_qkv.split(d)
    return BlockWeights(
        shape,
        int(config.n_head),
        W_q,
        W_k,
        W_v,
        b_q,
        b_k,
        b_v,
        detach(block.attn.c_proj.weight),
        detach(block.attn.c_proj.bias),
        _ln(block.ln_1),
        _ln(block.ln_2),
        detach(block.mlp.c_fc.weight),
        detach(block.mlp.c_fc.bias),
        detach(block.mlp.c_proj.weight),
        detach(block.mlp.c_proj.bias),
        activation,
        causal=True,
    )


def _rotary(model: Any) -> Rotary:
    """The model's rotary embedding (its ``inv_freq`` and cos/sin scaling); a clear error for a
    rotary type whose frequencies depend on the sequence's length."""
    rope = getattr(model, "base_model", model).rotary_emb
    rope_type = getattr(rope, "rope_type", "default")
    if not isinstance(rope_type, str) or any(kind in rope_type for kind in DYNAMIC_ROPE_TYPES):
        raise InvalidParameter(f"rotary embeddings of type {rope_type!r}: LIB's block view knows rotary embeddings of fixed frequencies")
    return Rotary(rope.inv_freq.detach().clone(), float(rope.attention_scaling))


def _neox_block_weights(model: Any, block: Any, shape: BlockShape, activation: str) -> BlockWeights:
    """A GPT-NeoX block: the fused query_key_value rows are (head, [q|k|v], e), torch's (out, in)."""
    config = model.config
    d, n_heads = int(config.hidden_size), int(config.num_attention_heads)
    attention = block.attention
    rotary = _rotary(model)
    zeros = torch.zeros(3 * d, dtype=attention.query_key_value.weight.dtype)
    weight = attention.query_key_value.weight.detach().T.reshape(d, n_heads, 3, d // n_heads)
    bias = (attention.query_key_value.bias.detach() if attention.query_key_value.bias is not None else zeros).reshape(
        n_heads, 3, d // n_heads
    )
    dense_bias = attention.dense.bias.detach() if attention.dense.bias is not None else zeros[:d]
    W_q, W_k, W_v = (weight[:, :, j].reshape(d, d) for j in range(3))
    b_q, b_k, b_v = (bias[:, j].reshape(d) for j in range(3))
    return BlockWeights(
        shape,
        n_heads,
        W_q,
        W_k,
        W_v,
        b_q,
        b_k,
        b_v,
        attention.dense.weight.detach().T,
        dense_bias,
        _ln(block.input_layernorm),
        _ln(block.post_attention_layernorm),
        block.mlp.dense_h_to_4h.weight.detach().T,
        block.mlp.dense_h_to_4h.bias.detach(),
        block.mlp.dense_4h_to_h.weight.detach().T,
        block.mlp.dense_4h_to_h.bias.detach(),
        activation,
        causal=True,
        rotary=rotary,
    )


def _llama_block_weights(model: Any, block: Any, activation: str) -> BlockWeights:
    """A Llama decoder layer: separate q/k/v projections (torch's (out, in); k and v have
    ``num_key_value_heads`` heads), RMSNorms, a SwiGLU MLP; biases where the config has them."""
    config = model.config
    attention, mlp = block.self_attn, block.mlp

    def linear(module: Any) -> tuple[torch.Tensor, torch.Tensor]:
        weight = module.weight.detach()
        bias = module.bias.detach() if module.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
        return weight.T, bias

    (W_q, b_q), (W_k, b_k), (W_v, b_v), (W_O, b_O) = (
        linear(m) for m in (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj)
    )
    (W_gate, b_gate), (W_up, b_up), (W_down, b_down) = (linear(m) for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
    n_heads, n_kv_heads = int(config.num_attention_heads), int(config.num_key_value_heads)
    if n_heads % n_kv_heads or W_q.shape[1] % n_heads or W_k.shape[1] != n_kv_heads * (W_q.shape[1] // n_heads):
        raise InvalidParameter(
            f"a Llama block with {n_heads} query heads ({W_q.shape[1]} wide) and {n_kv_heads} key/value heads ({W_k.shape[1]} wide): "
            "LIB's block view needs key/value heads as wide as query heads, each serving the same number of them"
        )
    return BlockWeights(
        "pre_ln",
        n_heads,
        W_q,
        W_k,
        W_v,
        b_q,
        b_k,
        b_v,
        W_O,
        b_O,
        _rms(block.input_layernorm),
        _rms(block.post_attention_layernorm),
        W_up,
        b_up,
        W_down,
        b_down,
        activation,
        causal=True,
        rotary=_rotary(model),
        n_kv_heads=n_kv_heads,
        W_gate=W_gate,
        b_gate=b_gate,
    )


def block_sections(w: BlockWeights) -> list[Section]:
    """The three sections of the block (see the module docstring)."""
    d = w.W_q.shape[0]
    heads: dict[str, Any] = dict(
        n_heads=w.n_heads,
        d_head=w.W_q.shape[1] // w.n_heads,
        causal=w.causal,
        W_O=w.W_O,
        b_O=w.b_O,
        rotary=w.rotary,
        n_kv_heads=w.n_kv_heads,
    )
    if w.shape == "post_ln":
        # [h, 1] -> [q, k, v, h, 1]
        qkv = affine(torch.cat([w.W_q, w.W_k, w.W_v], dim=1), torch.cat([w.b_q, w.b_k, w.b_v]), keep_constant=False)
        identity = torch.eye(d + 1, dtype=w.W_q.dtype)
        attention = Section(SelfAttentionCore(**heads, next_norm=w.ln1), torch.cat([qkv, identity], dim=1))
    else:
        attention = Section(
            SelfAttentionCore(
                **heads,
                norm=w.ln1,
                qkv=torch.cat([w.W_q, w.W_k, w.W_v], dim=1),
                qkv_bias=torch.cat([w.b_q, w.b_k, w.b_v]),
                parallel=w.shape == "parallel",
                next_norm=w.ln2,
            )
        )
    if w.shape == "parallel":
        assert isinstance(w.ln2, LayerNormParams)  # GPT-NeoX's
        mlp_in = Section(ParallelMLPInCore(w.ln2, w.W_in, w.b_in, w.activation))
    else:
        mlp_in = Section(
            NormMLPInCore(
                w.ln2 if w.shape == "pre_ln" else w.ln1,
                w.W_in,
                w.b_in,
                w.activation,
                residual_normalised=w.shape == "post_ln",
                W_gate=w.W_gate,
                b_gate=w.b_gate,
            )
        )
    # [hidden, r, 1] -> r + hidden W_out + b_out
    out_rows = torch.cat([w.W_out, torch.eye(d, dtype=w.W_out.dtype), w.b_out.reshape(1, d)], dim=0)
    if w.shape == "post_ln":
        assert isinstance(w.ln2, LayerNormParams)  # BERT's
        mlp_out = Section(FinalNormCore(w.ln2), out_rows)
    else:
        mlp_out = Section(None, out_rows)
    return [attention, mlp_in, mlp_out]


@dataclass
class LanguageBlock:
    """Block ``layer`` of a Hugging Face language model, for ``build_graph`` (``sequential``)."""

    model: Any
    layer: int
    name: str = "language model"

    def __post_init__(self) -> None:
        block_weights(self.model, self.layer)  # a clear error now rather than in a job's middle

    def sequential(self, dtype: torch.dtype = torch.float64) -> SequentialModel:
        """The block's node layers at ``dtype`` (a copy of the model at that dtype runs the
        blocks before it)."""
        model = self.model if _dtype_of(self.model) == dtype else copy.deepcopy(self.model).to(dtype)
        model.eval()
        weights = block_weights(model, self.layer)
        layer = self.layer
        pre_ln = weights.shape != "post_ln"
        statistic = weights.ln1.statistic

        def embed(tokens: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                hidden = model(input_ids=tokens, output_hidden_states=True).hidden_states[layer]
            one = torch.ones_like(hidden[..., :1])
            return torch.cat([statistic(hidden), hidden, one] if pre_ln else [hidden, one], dim=-1)

        names = node_layer_names(layer, parallel=weights.shape == "parallel")
        return SequentialModel(
            f"{self.name} block {layer}",
            names,
            embed,
            block_sections(weights),
            constant=[True, True, True, False],
            leading_fixed=[1 if pre_ln else 0, 1, 0, 0],
            metric="mse",
        )


def _dtype_of(model: Any) -> torch.dtype:
    return next(model.parameters()).dtype


def token_windows(tokenizer: Any, texts: list[str] | tuple[str, ...], n_windows: int, n_tokens: int) -> torch.Tensor:
    """(n_windows, n_tokens) token ids: consecutive windows of the texts' tokens (no special
    tokens, no padding), texts concatenated in order. DataError where the texts hold too few."""
    if n_windows < 1 or n_tokens < 2:
        raise InvalidParameter(f"{n_windows} windows of {n_tokens} tokens: give at least 1 window of 2 tokens")
    needed = n_windows * n_tokens
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= needed:
            break
    if len(ids) < needed:
        raise DataError(f"the texts hold {len(ids)} tokens, fewer than {n_windows} windows x {n_tokens} tokens = {needed}")
    return torch.tensor(np.asarray(ids[:needed], dtype=np.int64).reshape(n_windows, n_tokens))
