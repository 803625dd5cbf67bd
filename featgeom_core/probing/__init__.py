"""Probing (thesis sections 3.1-3.2): probe feature directions from activations, their pairwise
similarity matrices (PSMs), the permuted and shuffled-label controls, de-duplication.

Read top-down: ``params`` and ``result`` (what goes in and comes out), ``probes`` (linear probes,
the shuffled-label control), ``similarity`` (PSMs, the permuted control, de-duplication),
``pipeline`` (the cached main path, and the job's run), ``controls`` (several seeds per control),
``jobs`` (the job kind).
"""

from featgeom_core.probing.params import (
    CONTROLS,
    KINDS,
    ControlParams,
    DedupParams,
    FeatureGeometryParams,
    GeometryParams,
    ProbeParams,
)
from featgeom_core.probing.pipeline import cached_layers, feature_geometry, probe_key
from featgeom_core.probing.probes import shuffled_label_control, train_probes
from featgeom_core.probing.result import (
    DedupResult,
    GeometryResult,
    GeometrySummary,
    LayerControls,
    ProbeResult,
)
from featgeom_core.probing.similarity import dedup, permuted_control, psm, psm_departure

__all__ = [
    "CONTROLS",
    "KINDS",
    "ControlParams",
    "DedupParams",
    "DedupResult",
    "FeatureGeometryParams",
    "GeometryParams",
    "GeometryResult",
    "GeometrySummary",
    "LayerControls",
    "ProbeParams",
    "ProbeResult",
    "cached_layers",
    "dedup",
    "feature_geometry",
    "permuted_control",
    "probe_key",
    "psm",
    "psm_departure",
    "shuffled_label_control",
    "train_probes",
]
