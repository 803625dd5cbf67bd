"""The Local Interaction Basis analysis's result types (frozen dataclasses; job results are stored by
the store's one mechanism, :mod:`featgeom_core.codec`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class LayerBasis:
    """One node layer's basis. C: (d, n), C_pinv: (n, d), ``values``: (n,) each direction's
    importance (LIB/GIB: Lambda; PCA: the Gram eigenvalue; neuron: the coordinate's second
    moment); ``constant_first``: direction 0 is the constant direction."""

    node_layer: str
    kind: str
    C: torch.Tensor
    C_pinv: torch.Tensor
    values: torch.Tensor
    constant_first: bool

    @property
    def orig_dim(self) -> int:
        return int(self.C.shape[0])

    @property
    def dim(self) -> int:
        return int(self.C.shape[1])


@dataclass(frozen=True)
class InteractionGraph:
    """Per node layer a basis, per consecutive pair the edges E (n_out, n_in), float64, with the
    settings that made them. ``edges[k]`` joins ``node_layers[k]`` to ``node_layers[k + 1]``."""

    model: str
    node_layers: list[str]
    bases: list[LayerBasis]
    edges: list[torch.Tensor]
    params: dict[str, Any]
    n_samples: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def basis_kind(self) -> str:
        return str(self.params["basis"])

    def dims(self) -> list[int]:
        """Directions per node layer."""
        return [b.dim for b in self.bases]


@dataclass(frozen=True)
class TrainedModel:
    """A trained model's state dict (float32 arrays), which model it is, and its training history."""

    model: str
    state: dict[str, np.ndarray]
    history: dict[str, list[float]]
    params: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        accuracy = self.history.get("test_accuracy", [])
        return {
            "model": self.model,
            "epochs": int(self.history["epoch"][-1]) + 1 if self.history.get("epoch") else 0,
            "test_accuracy": round(accuracy[-1], 4) if accuracy else None,
        }

    def torch_state(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.array(v)) for k, v in self.state.items()}


@dataclass(frozen=True)
class BasisResult:
    """One basis's graph, node-ablation curves ({layer: {kept: score}}) and bisect traces."""

    graph: InteractionGraph
    node_curves: dict[str, dict[int, float]] = field(default_factory=dict)
    bisect: dict[str, dict[str, Any]] = field(default_factory=dict)
    fourier: list[list[dict[str, float]]] = field(default_factory=list)

    def edges_required(self) -> dict[str, int]:
        """{input node layer: edges the bisect kept}."""
        return {layer: int(trace["required"]) for layer, trace in self.bisect.items()}

    def eps(self) -> list[float] | None:
        """Per layer pair, the smallest edge the bisect kept (None without a bisect)."""
        if not self.bisect:
            return None
        return [float(self.bisect[layer]["smallest_kept_edge"]) or 1e-300 for layer in self.graph.node_layers[:-1]]


@dataclass(frozen=True)
class InteractionGraphResult:
    """Graphs of one model in several bases, with the model's unablated score."""

    model: str
    checkpoint: str
    metric: str
    base_score: float
    results: dict[str, BasisResult]
    timings: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric,
            "base_score": round(self.base_score, 4),
            **{f"{kind} dims": r.graph.dims() for kind, r in self.results.items()},
            **{f"{kind} edges required": list(r.edges_required().values()) for kind, r in self.results.items()},
        }
