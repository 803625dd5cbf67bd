"""Parameter blocks: the part of a model's weights W that the sample-level Hessian is taken over.

A block is one parameter name from ``model.named_parameters()`` (e.g. ``"W"`` or
``"encoder.layer.4.attention.self.key.weight"``), or several names whose tensors are flattened and
concatenated in the order given. Directions u live in the flat block space (``size`` numbers).
The model itself is never modified: every evaluation goes through ``torch.func.functional_call``
with detached copies of the trained weights W0 (and buffers), the block replaced by a flat vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from featgeom_core.errors import InvalidParameter

BlockSpec = str | Sequence[str]
"""One parameter name, or several (concatenated in the order given)."""


@dataclass(frozen=True)
class ParameterBlock:
    """The trained weights of a model on one device, with a block of them singled out.

    ``tensors``: every parameter and buffer by name (detached, W0). ``names``/``shapes``: the
    block's parameters; ``w0``: the block flattened, (size,), in the block's dtype.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    w0: torch.Tensor
    tensors: dict[str, torch.Tensor]

    @property
    def size(self) -> int:
        """Numbers in the block (the length of a direction u)."""
        return int(self.w0.numel())

    @property
    def dtype(self) -> torch.dtype:
        return self.w0.dtype

    @property
    def device(self) -> torch.device:
        return self.w0.device

    def substitute(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """All tensors of the model with the block replaced by ``flat`` (size,), reshaped into
        the block's parameters (views, so derivatives flow back to ``flat``)."""
        tensors = dict(self.tensors)
        start = 0
        for name, shape in zip(self.names, self.shapes):
            count = shape.numel()
            tensors[name] = flat[start : start + count].view(shape)
            start += count
        return tensors


def trainable_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names a block can be made of: floating-point parameters with ``requires_grad`` True."""
    return [name for name, p in model.named_parameters() if p.requires_grad and p.is_floating_point()]


def block_names(block: BlockSpec) -> tuple[str, ...]:
    """The block's parameter names as a tuple (checks it is not empty and has no repeats)."""
    names = (block,) if isinstance(block, str) else tuple(block)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidParameter(f"parameter block {block!r}: give a parameter name (or a list of names) from the model's named_parameters()")
    if len(set(names)) != len(names):
        raise InvalidParameter(f"parameter block {list(names)} names a parameter twice")
    return names


def resolve_block(model: torch.nn.Module, block: BlockSpec, device: torch.device | None = None) -> ParameterBlock:
    """The model's trained weights on ``device`` (default: where the block's first parameter lives)
    with ``block`` singled out. Raises ``InvalidParameter`` for a name the model does not have, a
    parameter with ``requires_grad`` False, a non-floating parameter, or mixed dtypes."""
    names = block_names(block)
    parameters = dict(model.named_parameters())
    for name in names:
        if name not in parameters:
            known = list(parameters)
            listed = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
            raise InvalidParameter(
                f"parameter block {name!r} does not exist in {type(model).__name__}; its parameters are: {listed or '(none)'}"
            )
        parameter = parameters[name]
        if not parameter.is_floating_point():
            raise InvalidParameter(f"parameter block {name!r} has dtype {parameter.dtype}: curvature needs a floating-point parameter")
        if not parameter.requires_grad:
            raise InvalidParameter(
                f"parameter block {name!r} has requires_grad=False (frozen): choose a trainable parameter, "
                f"or call {name}.requires_grad_(True) first"
            )
    dtypes = {parameters[name].dtype for name in names}
    if len(dtypes) > 1:
        raise InvalidParameter(f"parameter block {list(names)} mixes dtypes {sorted(map(str, dtypes))}: choose parameters of one dtype")
    target = device if device is not None else parameters[names[0]].device
    tensors = {name: t.detach().to(target) for name, t in model.named_parameters()}
    tensors.update({name: t.detach().to(target) for name, t in model.named_buffers()})
    w0 = torch.cat([tensors[name].reshape(-1) for name in names])
    return ParameterBlock(names, tuple(parameters[name].shape for name in names), w0, tensors)
