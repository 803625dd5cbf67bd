"""Modules of an interaction graph: Leiden community detection (the paper's section 4.3 and the
peer's notes) on edge weights log10(E / eps), where eps is the smallest edge the bisect kept for
that layer pair, so an edge the model needs weighs at least 0 and weaker edges are dropped.

Edges into or out of the constant direction are excluded (it touches everything and would join
every module); constant directions get module -1. Quality is the weighted modularity Q at
resolution 1 of the partition found at the chosen resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.interaction.result import InteractionGraph

MASS_WITHOUT_BISECT = 0.99
"""Without a bisect, eps per pair is the smallest edge among the largest that carry this share of
the pair's total E (a stand-in for "the edges the model needs")."""


def default_eps(E: np.ndarray, mass: float = MASS_WITHOUT_BISECT) -> float:
    """The smallest edge among the largest ones that together carry ``mass`` of sum(E)."""
    values = np.sort(E[E > 0].ravel())[::-1]
    if values.size == 0:
        return 1.0
    cumulative = np.cumsum(values) / values.sum()
    return float(values[min(int(np.searchsorted(cumulative, mass)), values.size - 1)])


def edge_list(graph: InteractionGraph, eps: Sequence[float] | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """(node ids per layer (-1 for constant directions), sources, targets, weights) with weight
    log10(E / eps) > 0 for every kept non-constant edge."""
    ids: list[np.ndarray] = []
    next_id = 0
    for basis in graph.bases:
        layer = np.arange(next_id, next_id + basis.dim)
        if basis.constant_first:
            layer[0] = -1
            layer[1:] -= 1
            next_id += basis.dim - 1
        else:
            next_id += basis.dim
        ids.append(layer)
    sources, targets, weights = [], [], []
    for k, edges_k in enumerate(graph.edges):
        E = edges_k.numpy() if hasattr(edges_k, "numpy") else np.asarray(edges_k)
        threshold = float(eps[k]) if eps is not None else default_eps(E)
        if not threshold > 0:
            raise InvalidParameter(f"eps for layer pair {k} is {threshold}; it must be > 0")
        rows, cols = np.nonzero(E > threshold)
        keep = (ids[k + 1][rows] >= 0) & (ids[k][cols] >= 0)
        rows, cols = rows[keep], cols[keep]
        sources.append(ids[k][cols])
        targets.append(ids[k + 1][rows])
        weights.append(np.log10(E[rows, cols] / threshold))
    return ids, np.concatenate(sources), np.concatenate(targets), np.concatenate(weights)


def leiden_modules(
    graph: InteractionGraph, resolution: float = 1.0, seed: int = 0, eps: Sequence[float] | None = None
) -> tuple[list[np.ndarray], float]:
    """(module of each direction per node layer, int arrays, -1 for constant directions; the
    modularity Q at resolution 1). ``eps`` per layer pair: the smallest edge the bisect kept
    (default: ``default_eps``). Seeded: the same inputs give the same modules."""
    import igraph
    import leidenalg

    if not resolution > 0:
        raise InvalidParameter(f"resolution = {resolution}: must be > 0 (larger: more, smaller modules)")
    if eps is not None and len(eps) != len(graph.edges):
        raise InvalidParameter(f"eps needs one value per layer pair ({len(graph.edges)}), got {len(eps)}")
    ids, sources, targets, weights = edge_list(graph, eps)
    n_nodes = int(max((layer.max() for layer in ids if layer.size), default=-1)) + 1
    g = igraph.Graph(n=n_nodes, edges=list(zip(sources.tolist(), targets.tolist())), directed=False)
    g.es["weight"] = weights.tolist()
    partition = leidenalg.find_partition(
        g, leidenalg.RBConfigurationVertexPartition, weights="weight", resolution_parameter=float(resolution), seed=int(seed)
    )
    membership = np.asarray(partition.membership, dtype=np.int64)
    quality = float(g.modularity(partition.membership, weights="weight")) if len(weights) else 0.0
    return [np.where(layer >= 0, membership[np.maximum(layer, 0)], -1) for layer in ids], quality
