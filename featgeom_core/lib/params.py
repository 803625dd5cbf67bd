"""LIB's parameters, declared once (defaults: the paper's modular-addition settings, which are the
peer's ``build_lib_seed0.yaml`` and its ablation configs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from featgeom_core.errors import InvalidParameter
from featgeom_core.lib.basis import BasisKind
from featgeom_core.lib.jacobians import IntegrationRule, integration_points
from featgeom_core.params import Params


def _names(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


NodeLayerNames = Annotated[list[str], BeforeValidator(_names)]
"""Node layer names, as a list or as comma-separated text."""


class GraphParams(Params):
    """How an interaction graph is built (section 3, Appendix A)."""

    basis: BasisKind = Field("lib", description="neuron, pca, lib (the local interaction basis) or gib (LIB against the final layer)")
    node_layers: NodeLayerNames | None = Field(None, description="node layers in model order, ending at the output (default: the model's)")
    dtype: Literal["float64", "float32"] = Field("float64", description="precision of the build (Gram and M matrices are float64 always)")
    center: bool = Field(True, description="centre activations (the constant direction becomes direction 0)")
    truncation: float = Field(1e-15, ge=0, le=1e6, description="drop directions whose Gram eigenvalue or Lambda is at or below this")
    rotate_final: bool = Field(False, description="give the final node layer its PCA basis (otherwise it keeps its neurons, the paper's choice)")
    whiten_pca: bool = Field(False, description="divide PCA directions by the square root of their variance (the peer's PCA basis does not)")
    integration: IntegrationRule = Field("gradient", description="plain gradients (the paper's runs), trapezoid or Gauss-Legendre integrated gradients")
    n_intervals: int = Field(0, ge=0, le=1000, description="integration intervals (0 with plain gradients; 0 with trapezoid = the midpoint)")
    basis_sources: int = Field(1, ge=0, le=1024, description="stochastic +-1 sources over output positions for M' (0: exact); one output position is exact anyway")
    edge_sources: int = Field(1, ge=0, le=1024, description="stochastic +-1 sources over output positions for the edges (0: exact)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the stochastic sources")
    batch_size: int = Field(4096, ge=1, le=1_000_000, description="samples per pass (memory, not results)")

    @model_validator(mode="after")
    def _consistent(self) -> "GraphParams":
        integration_points(self.integration, self.n_intervals)  # raises a clear error for gradient + intervals
        if self.node_layers is not None and len(self.node_layers) < 2:
            raise InvalidParameter("node_layers: choose at least two (the last is the output)")
        return self

    def points(self) -> list[tuple[float, float]]:
        """The integration points and weights."""
        return integration_points(self.integration, self.n_intervals)


Metric = Literal["auto", "accuracy", "ce_loss", "mse"]


class AblationParams(Params):
    """Node ablation curves and the edge-ablation bisect (section 4, Appendix B)."""

    nodes: bool = Field(True, description="node ablation curves: keep the n most important directions of one layer")
    edges: bool = Field(True, description="bisect edge ablation: the fewest edges per layer pair within the tolerance")
    tolerance: float = Field(0.001, gt=0, le=1e6, description="how far the metric may move from the unablated model's (accuracy: down; losses: up)")
    metric: Metric = Field("auto", description="accuracy or cross-entropy of the final layer's prediction, or mse of the final layer (auto: the model's)")
    dtype: Literal["float32", "float64"] = Field("float32", description="precision of the ablated forward passes (the peer's: float32)")
    exp_base: float = Field(1.05, gt=1.0, le=10.0, description="node-ablation schedule: kept counts fall geometrically with this base")
    every_below: int = Field(10, ge=0, le=100_000, description="node-ablation schedule: every count at or below this many kept directions")


class ModulesParams(Params):
    """Leiden modules of a graph (section 4.3)."""

    resolution: float = Field(1.0, gt=0, le=100.0, description="Leiden resolution gamma (larger: more, smaller modules)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Leiden's seed")
