"""One node of an interaction graph, read for a panel: its facts (eigenvalue, module, Fourier
label), its strongest incoming and outgoing edges, and what drives its direction (the (x, y)
pattern for modular addition, the inputs that activate it most for any other model)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from featgeom_core.errors import InvalidParameter
from featgeom_core.interaction.graph import sequential_view
from featgeom_core.interaction.modadd import all_pairs
from featgeom_core.interaction.result import InteractionGraph


@dataclass(frozen=True)
class NodeEdge:
    """An edge at a node: the direction at the other end (its node layer and index) and E."""

    node_layer: str
    index: int
    strength: float


@dataclass(frozen=True)
class NodeFacts:
    """Node ``index`` of node layer ``layer`` (position ``k`` among the graph's node layers)."""

    k: int
    layer: str
    index: int
    eigenvalue: float
    constant: bool
    module: int
    fourier: dict[str, float] | None
    incoming: list[NodeEdge]
    outgoing: list[NodeEdge]
    share_in: float
    """This node's share of all edge strength into its node layer (0 for the first node layer)."""
    share_out: float
    """This node's share of all edge strength out of its node layer (0 for the last node layer)."""


def check_layer(graph: InteractionGraph, k: int) -> None:
    """InvalidParameter unless node layer ``k`` exists."""
    if not 0 <= k < len(graph.bases):
        raise InvalidParameter(f"node layer {k} does not exist: the graph has {len(graph.bases)} ({', '.join(graph.node_layers)})")


def check_node(graph: InteractionGraph, k: int, index: int) -> None:
    """InvalidParameter unless node layer ``k`` exists and has a direction ``index``."""
    check_layer(graph, k)
    if not 0 <= index < graph.bases[k].dim:
        raise InvalidParameter(f"direction {index} does not exist in {graph.node_layers[k]} (0 to {graph.bases[k].dim - 1})")


def node_facts(
    graph: InteractionGraph, modules: Sequence[np.ndarray], k: int, index: int, top: int = 8, fourier: Sequence[Sequence[dict]] = ()
) -> NodeFacts:
    """The facts of direction ``index`` of node layer ``k``: the ``top`` strongest edges each way
    (strongest first), its module (``modules[k]``, -1 when none) and Fourier label where given."""
    check_node(graph, k, index)

    def strongest(values: np.ndarray, layer: str) -> list[NodeEdge]:
        order = np.argsort(-values, kind="stable")[:top]
        return [NodeEdge(layer, int(i), float(values[i])) for i in order if values[i] > 0]

    incoming = outgoing = []
    share_in = share_out = 0.0
    if k > 0:
        E = graph.edges[k - 1].numpy()  # (n_k, n_{k-1})
        incoming = strongest(E[index], graph.node_layers[k - 1])
        share_in = float(E[index].sum() / max(E.sum(), 1e-300))
    if k < len(graph.edges):
        E = graph.edges[k].numpy()  # (n_{k+1}, n_k)
        outgoing = strongest(E[:, index], graph.node_layers[k + 1])
        share_out = float(E[:, index].sum() / max(E.sum(), 1e-300))
    basis = graph.bases[k]
    membership = modules[k] if k < len(modules) else np.full(basis.dim, -1)
    return NodeFacts(
        k=k,
        layer=graph.node_layers[k],
        index=index,
        eigenvalue=float(basis.values[index]),
        constant=bool(basis.constant_first and index == 0),
        module=int(membership[index]),
        fourier=dict(fourier[k][index]) if k < len(fourier) and index < len(fourier[k]) else None,
        incoming=incoming,
        outgoing=outgoing,
        share_in=share_in,
        share_out=share_out,
    )


def layer_activations(model, graph: InteractionGraph, k: int, inputs: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Node layer ``k``'s activations on ``inputs``, float64: (n, positions, width) for sequence
    models, (n, 1, width) otherwise; read once, every direction of the layer is a product with it."""
    check_layer(graph, k)
    view = sequential_view(model, torch.float64, graph.node_layers)
    parts = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            acts = view.activations(inputs[start : start + batch_size])[k].to(torch.float64)
            parts.append(acts if acts.ndim == 3 else acts[:, None, :])
    return torch.cat(parts) if parts else torch.zeros((0, 1, graph.bases[k].C.shape[0]), dtype=torch.float64)


def coordinates(activations: torch.Tensor, graph: InteractionGraph, k: int, index: int) -> np.ndarray:
    """Direction ``index`` of node layer ``k`` on ``activations`` (n, positions, width) from
    :func:`layer_activations`: (n, positions), the coordinate the basis gives (activations @ C[:, index])."""
    check_node(graph, k, index)
    return (activations @ graph.bases[k].C[:, index].to(torch.float64)).numpy()


def direction_values(model, graph: InteractionGraph, k: int, index: int, inputs: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Direction ``index`` of node layer ``k`` read on ``inputs``: (n, positions) for sequence
    models, (n, 1) otherwise; the coordinate the graph's basis gives (activations @ C[:, index])."""
    check_node(graph, k, index)
    return coordinates(layer_activations(model, graph, k, inputs, batch_size), graph, k, index)


def modadd_pattern(model, graph: InteractionGraph, k: int, index: int, modulus: int, position: int = -1) -> np.ndarray:
    """(modulus, modulus): the direction over every input (x, y) = (row, column), read at token
    ``position`` (default the last, where the answer is read)."""
    return pattern_of(direction_values(model, graph, k, index, all_pairs(modulus)), modulus, position)


def pattern_of(values: np.ndarray, modulus: int, position: int = -1) -> np.ndarray:
    """(modulus, modulus): ``values`` (modulus², positions) over every (x, y) in :func:`all_pairs`'s
    order, read at ``position``."""
    return values[:, position if values.shape[1] > 1 else 0].reshape(modulus, modulus)


def top_activating(values: np.ndarray, count: int = 8) -> list[tuple[int, int, float]]:
    """The ``count`` largest entries of ``values`` (n, positions) by absolute value, largest first:
    (input, position, value). A direction's sign is arbitrary, so both signs count."""
    flat = np.abs(values).ravel()
    count = min(count, flat.size)
    order = np.argsort(-flat, kind="stable")[:count]
    return [(int(i // values.shape[1]), int(i % values.shape[1]), float(values.ravel()[i])) for i in order]


@dataclass(frozen=True)
class Pruned:
    """What cumulative-influence pruning keeps: per layer pair a boolean mask of E's shape (n_out, n_in),
    per node layer a boolean mask over its directions."""

    edges: list[np.ndarray]
    nodes: list[np.ndarray]

    def edge_counts(self) -> list[int]:
        return [int(mask.sum()) for mask in self.edges]

    def node_counts(self) -> list[int]:
        return [int(mask.sum()) for mask in self.nodes]


def smallest_share(values: np.ndarray, share: float) -> np.ndarray:
    """A boolean mask of the fewest entries of ``values`` (>= 0, any shape) whose sum is at least
    ``share`` of the total: the largest first (ties in index order). share 1 keeps every non-zero entry."""
    if not 0 < share <= 1:
        raise InvalidParameter(f"share = {share}: must be in (0, 1]")
    flat = np.asarray(values, dtype=np.float64).ravel()
    total = flat.sum()
    mask = np.zeros(flat.shape, dtype=bool)
    if total <= 0 or share >= 1:
        return (flat > 0).reshape(np.shape(values))
    order = np.argsort(-flat, kind="stable")
    cumulative = np.cumsum(flat[order])
    count = int(np.searchsorted(cumulative, share * total * (1 - 1e-12))) + 1  # guard the last step's rounding
    mask[order[: min(count, int((flat > 0).sum()))]] = True
    return mask.reshape(np.shape(values))


def prune_by_influence(graph: InteractionGraph, edge_share: float, node_share: float) -> Pruned:
    """Per layer pair, the fewest edges that keep ``edge_share`` of its total edge strength; per
    node layer, the fewest directions that keep ``node_share`` of its total node strength (the sum
    of a direction's incoming and outgoing edges, each side as a share of its layer pair's total,
    so every layer pair weighs the same); an edge is kept only where both its ends are."""
    strengths = []
    for k, basis in enumerate(graph.bases):
        strength = np.zeros(basis.dim)
        if k > 0:
            E = graph.edges[k - 1].numpy()
            strength += E.sum(axis=1) / max(E.sum(), 1e-300)
        if k < len(graph.edges):
            E = graph.edges[k].numpy()
            strength += E.sum(axis=0) / max(E.sum(), 1e-300)
        strengths.append(strength)
    nodes = [smallest_share(strength, node_share) for strength in strengths]
    edges = [smallest_share(E.numpy(), edge_share) & nodes[k + 1][:, None] & nodes[k][None, :] for k, E in enumerate(graph.edges)]
    return Pruned(edges=edges, nodes=nodes)
