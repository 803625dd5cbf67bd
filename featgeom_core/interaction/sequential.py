"""A model as a sequence of node layers, each a function of the previous one (the paper's
Appendix A.4-A.5), the shape every LIB computation takes.

Activations at a node layer are (batch, positions, width) tensors. Biases are folded in: every
node layer but a final output carries a constant-1 coordinate *last*, which each section passes
through and which multiplies the biases, so a section maps the constant direction to itself and
mean-centring is a linear map. A transformer's residual stream is carried through every section;
a section may keep fewer positions than it reads (the modular-addition model keeps only the last
position after attention). A LayerNorm's variance, where a node layer carries it, is its first
coordinate (``leading_fixed`` says how many such coordinates the rotations keep out).

A :class:`Section` is ``core(x @ linear_in) @ linear_out`` with position-wise linear maps around a
core; the edge-ablation bisect uses that shape to evaluate hundreds of masked inputs cheaply (the
input map is linear in the mask), and any callable core still works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from featgeom_core.errors import InvalidParameter

Core = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Section:
    """``out = core(x @ linear_in) @ linear_out``.

    x: (batch, positions, d_in). ``linear_in``: (d_in, d_pre) or None (identity); ``core``:
    (batch, positions, d_pre) -> (batch, positions', d_mid) or None (identity); ``linear_out``:
    (d_mid, d_out) or None (identity).
    """

    core: Core | None = None
    linear_in: torch.Tensor | None = None
    linear_out: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(self.start(x))

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ linear_in``."""
        return x if self.linear_in is None else x @ self.linear_in

    def finish(self, pre: torch.Tensor) -> torch.Tensor:
        """``core(pre) @ linear_out``."""
        mid = pre if self.core is None else self.core(pre)
        return mid if self.linear_out is None else mid @ self.linear_out

    def then(self, other: Section) -> Section:
        """This section followed by ``other``, keeping the linear-core-linear shape where one of
        the two cores is the identity."""
        if other.core is None:
            return Section(self.core, self.linear_in, _matmul(_matmul(self.linear_out, other.linear_in), other.linear_out))
        if self.core is None:
            return Section(other.core, _matmul(_matmul(self.linear_in, self.linear_out), other.linear_in), other.linear_out)
        return Section(lambda x: other(self(x)))


def _matmul(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a @ b


@dataclass
class SequentialModel:
    """``node_layers`` (names, in order) with ``sections[k]`` mapping node layer k to k + 1, and
    ``embed`` mapping raw inputs to node layer 0.

    ``constant[k]``: whether node layer k carries the constant coordinate (all but a final
    output); ``leading_fixed[k]``: how many leading coordinates (a LayerNorm variance) the
    rotations leave alone; ``default_node_layers``: the graph's layers unless chosen (empty: all);
    ``metric``: how ablations score the final layer (accuracy, ce_loss or mse).
    """

    name: str
    node_layers: list[str]
    embed: Callable[[Any], torch.Tensor]
    sections: list[Section]
    constant: list[bool]
    leading_fixed: list[int] = field(default_factory=list)
    default_node_layers: list[str] = field(default_factory=list)
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if len(self.sections) != len(self.node_layers) - 1 or len(self.constant) != len(self.node_layers):
            raise InvalidParameter("a sequential model needs one section between each pair of consecutive node layers")
        if not self.leading_fixed:
            self.leading_fixed = [0] * len(self.node_layers)

    def index(self, node_layer: str) -> int:
        """The position of a node layer; a clear error for an unknown one."""
        if node_layer not in self.node_layers:
            raise InvalidParameter(f"unknown node layer {node_layer!r}; this model has {', '.join(self.node_layers)}")
        return self.node_layers.index(node_layer)

    def activations(self, inputs: Any) -> list[torch.Tensor]:
        """Every node layer's activations for a batch of inputs."""
        acts = [self.embed(inputs)]
        for section in self.sections:
            acts.append(section(acts[-1]))
        return acts

    def run_from(self, k: int, acts: torch.Tensor) -> torch.Tensor:
        """The final node layer from node layer k's activations."""
        for section in self.sections[k:]:
            acts = section(acts)
        return acts

    def restricted(self, chosen: Sequence[str]) -> SequentialModel:
        """The same model seen at a subsequence of its node layers (sections composed); the last
        chosen layer must be the model's last, since the graph ends at the output."""
        indices = [self.index(name) for name in chosen]
        if indices != sorted(indices) or len(set(indices)) != len(indices):
            raise InvalidParameter(
                f"node layers must be distinct and in the model's order ({', '.join(self.node_layers)}); got {list(chosen)}"
            )
        if len(indices) < 2:
            raise InvalidParameter("choose at least two node layers")
        if indices[-1] != len(self.node_layers) - 1:
            raise InvalidParameter(f"the last node layer must be the output, {self.node_layers[-1]!r}")
        prefix = self.sections[: indices[0]]

        def embed(inputs: Any) -> torch.Tensor:
            acts = self.embed(inputs)
            for section in prefix:
                acts = section(acts)
            return acts

        sections = [_compose(self.sections[a:b]) for a, b in zip(indices, indices[1:])]
        return replace(
            self,
            node_layers=[self.node_layers[i] for i in indices],
            embed=embed,
            sections=sections,
            constant=[self.constant[i] for i in indices],
            leading_fixed=[self.leading_fixed[i] for i in indices],
        )


def _compose(parts: list[Section]) -> Section:
    composed = parts[0]
    for part in parts[1:]:
        composed = composed.then(part)
    return composed


def split_constant(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the activations without the constant coordinate, the constant coordinate (..., 1))."""
    return acts[..., :-1], acts[..., -1:]


def with_constant(values: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
    """Append the constant coordinate."""
    return torch.cat([values, constant], dim=-1)


def affine(weight: torch.Tensor, bias: torch.Tensor | None, keep_constant: bool = True) -> torch.Tensor:
    """The folded matrix of ``x -> x @ weight + bias`` on inputs that end in the constant
    coordinate: (d_in + 1, d_out [+ 1]), passing the constant through when ``keep_constant``."""
    d_in, d_out = weight.shape
    rows = torch.cat([weight, (bias if bias is not None else torch.zeros(d_out, dtype=weight.dtype)).reshape(1, d_out)], dim=0)
    if not keep_constant:
        return rows
    constant = torch.zeros(d_in + 1, 1, dtype=weight.dtype)
    constant[-1, 0] = 1.0
    return torch.cat([rows, constant], dim=1)
