"""Probing (thesis sections 3.1-3.2): probe feature directions from activations, their pairwise
similarity matrices (PSMs), the permuted and shuffled-label controls, de-duplication.

Read top-down: ``probes`` (linear probes, the shuffled-label control), ``similarity`` (PSMs, the
permuted control, de-duplication), ``pipeline`` (the cached main path), ``jobs`` (the job kind).
"""

from featgeom_core.probing.pipeline import CONTROLS, KINDS, GeometryParams, GeometryResult, cached_layers, feature_geometry, probe_key
from featgeom_core.probing.probes import ProbeParams, ProbeResult, shuffled_label_control, train_probes
from featgeom_core.probing.similarity import DedupParams, DedupResult, dedup, permuted_control, psm, psm_departure

__all__ = [
    "CONTROLS", "KINDS", "DedupParams", "DedupResult", "GeometryParams", "GeometryResult", "ProbeParams", "ProbeResult", "cached_layers", "dedup",
    "feature_geometry", "permuted_control", "probe_key", "psm", "psm_departure", "shuffled_label_control", "train_probes",
]
