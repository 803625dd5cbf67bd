"""Similarity geometry of feature directions: PSMs, controls, de-duplication."""

from featgeom_core.geometry.similarity import DedupResult, dedup, permuted_control, psm, psm_departure

__all__ = ["DedupResult", "dedup", "permuted_control", "psm", "psm_departure"]
