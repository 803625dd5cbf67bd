"""Similarity geometry of feature directions: PSMs, controls, de-duplication."""

from featgeom_core.geometry.matching import match_permutation, psm_distance
from featgeom_core.geometry.similarity import DedupResult, dedup, permuted_control, psm, psm_departure

__all__ = ["DedupResult", "dedup", "match_permutation", "permuted_control", "psm", "psm_departure", "psm_distance"]
