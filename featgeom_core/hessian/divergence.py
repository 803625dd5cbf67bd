"""The divergence D(f, x, W): how far the model's output on one sample moves when its weights go
from the trained W0 to W (the write-up's "Divergence").

- ``mse`` (regression): the mean over output dimensions of (f(W, x) - f(W0, x))^2, per position.
  Its minimum, 0, is at W0.
- ``kl`` (classifiers, language models): outputs are logits over the last dimension; D is
  KL(softmax f(W, x) || softmax f(W0, x)) - KL(softmax f(W0, x) || softmax f(W0, x)), in nats per
  position, normalised so that it is 0 at W0 (with zero gradient there).

Outputs are read as (samples, positions, dims): (B,) is one scalar per sample, (B, d) one
position, (B, P, d) P positions, and any middle dimensions are flattened into positions.
``positions="sum"`` adds the positions' divergences into one per sample (shape (B,)); ``"each"``
keeps them (shape (B, P)), so every sample-position counts as a sample of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch.func import functional_call

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.hessian.blocks import ParameterBlock

DivergenceKind = Literal["mse", "kl"]
DivergenceChoice = Literal["auto", "mse", "kl"]
Positions = Literal["sum", "each"]

OUTPUT_KIND_ATTRIBUTE = "featgeom_output"
"""A model may declare ``featgeom_output = "logits"`` (``divergence="auto"`` then picks KL) or
``"regression"`` (MSE). Undeclared models get MSE under ``"auto"``."""


def forward(model: torch.nn.Module, tensors: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """``model(inputs)`` with its parameters and buffers replaced by ``tensors``; the output must
    be one floating-point tensor whose leading dimension is the batch."""
    out = functional_call(model, tensors, (inputs,), tie_weights=True)
    if not isinstance(out, torch.Tensor):
        raise DataError(
            f"{type(model).__name__}'s forward returned {type(out).__name__}; the Hessian analysis needs a module whose forward "
            f"maps an input batch to one output tensor (wrap it, e.g. to return last_hidden_state or logits)"
        )
    if not out.is_floating_point() or out.ndim == 0 or out.shape[0] != inputs.shape[0]:
        raise DataError(
            f"{type(model).__name__}'s output has shape {tuple(out.shape)} and dtype {out.dtype} for {inputs.shape[0]} samples: "
            f"it must be floating point with the samples as its leading dimension"
        )
    return out


def choose_divergence(model: torch.nn.Module, outputs: torch.Tensor, divergence: DivergenceChoice) -> DivergenceKind:
    """Resolve ``"auto"`` (the model's ``featgeom_output`` declaration: KL for ``"logits"``, MSE
    otherwise) and check that KL gets logits over at least two classes."""
    if divergence not in ("auto", "mse", "kl"):
        raise InvalidParameter(f"divergence {divergence!r}: use auto, mse or kl")
    kind: DivergenceKind
    if divergence == "auto":
        kind = "kl" if getattr(model, OUTPUT_KIND_ATTRIBUTE, None) == "logits" else "mse"
    else:
        kind = divergence
    if kind == "kl" and (outputs.ndim < 2 or outputs.shape[-1] < 2):
        raise InvalidParameter(
            f"divergence 'kl' treats the model's outputs as logits over classes (softmax over the last dimension), but "
            f"the output has shape {tuple(outputs.shape)}: its last dimension is not a distribution over 2 or more classes "
            f"(a regression output); use divergence='mse'"
        )
    return kind


def as_positions(outputs: torch.Tensor) -> torch.Tensor:
    """Outputs (B,), (B, d) or (B, ..., d) as (B, P, d)."""
    if outputs.ndim == 1:
        return outputs[:, None, None]
    if outputs.ndim == 2:
        return outputs[:, None, :]
    return outputs.reshape(outputs.shape[0], -1, outputs.shape[-1])


def divergence_from_outputs(
    outputs: torch.Tensor, reference: torch.Tensor, kind: DivergenceKind, positions: Positions = "sum"
) -> torch.Tensor:
    """D per sample (B,) (``positions="sum"``) or per sample and position (B, P) (``"each"``),
    from the outputs at W and the reference outputs at W0 (same shape). MSE in squared output
    units, KL in nats."""
    out, ref = as_positions(outputs), as_positions(reference)
    if kind == "mse":
        per_position = ((out - ref) ** 2).mean(dim=-1)
    elif kind == "kl":
        log_p, log_q0 = torch.log_softmax(out, dim=-1), torch.log_softmax(ref, dim=-1)
        kl = (log_p.exp() * (log_p - log_q0)).sum(dim=-1)
        at_w0 = (log_q0.exp() * (log_q0 - log_q0)).sum(dim=-1)  # KL(f(W0) || f(W0)): the write-up's normalisation (exactly 0)
        per_position = kl - at_w0
    else:
        raise InvalidParameter(f"divergence {kind!r}: use mse or kl")
    return per_position.sum(dim=1) if positions == "sum" else per_position


def curvature_from_tangent(
    tangent: torch.Tensor, reference: torch.Tensor, kind: DivergenceKind, positions: Positions = "sum"
) -> torch.Tensor:
    """d²D/dt² at W0 along a direction whose output tangent is ``tangent`` = J u (same shape as the
    outputs), in closed form: (B,) or (B, P). Exact at the trained weights, where D and its gradient
    in the outputs vanish, so uᵀH(x)u = (J u)ᵀ ∇²_y D (J u): MSE 2·mean(a²) over output dimensions;
    KL Σ p0 a² - (Σ p0 a)² with p0 = softmax f(W0, x) (the softmax Fisher form), in nats."""
    a, ref = as_positions(tangent), as_positions(reference)
    if kind == "mse":
        per_position = 2 * (a**2).mean(dim=-1)
    elif kind == "kl":
        p0 = torch.softmax(ref, dim=-1)
        per_position = (p0 * a**2).sum(dim=-1) - (p0 * a).sum(dim=-1) ** 2
    else:
        raise InvalidParameter(f"divergence {kind!r}: use mse or kl")
    return per_position.sum(dim=1) if positions == "sum" else per_position


def divergence_function(
    model: torch.nn.Module,
    block: ParameterBlock,
    inputs: torch.Tensor,
    reference: torch.Tensor,
    kind: DivergenceKind,
    positions: Positions = "sum",
) -> Callable[[torch.Tensor], torch.Tensor]:
    """w (block size,) -> D(f, x, W0 with the block set to w) for every sample of ``inputs``:
    (B,) or (B, P). ``reference``: the outputs at W0 on ``inputs``."""

    def divergence(w: torch.Tensor) -> torch.Tensor:
        return divergence_from_outputs(forward(model, block.substitute(w), inputs), reference, kind, positions)

    return divergence


def reference_outputs(model: torch.nn.Module, block: ParameterBlock, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """f(W0, x) for every sample, in batches, without gradients: (n_samples, ...)."""
    with torch.no_grad():
        return torch.cat([forward(model, block.tensors, inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])
