"""The nearest directions of the other kinds to one direction, by cosine: which dictionary atoms
and LIB directions align with a probe direction (and every other pairing) on one model and layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.features.directions import DirectionSet
from featgeom_core.features.ref import FeatureRef


@dataclass(frozen=True)
class Neighbour:
    """One direction of another set: its ``ref``, ``label``, ``source`` and ``cosine`` with the query
    (signed; |cosine| ranks, since an atom and a probe may point opposite ways for one concept)."""

    ref: FeatureRef
    label: str
    source: str
    cosine: float


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(k, d) rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float64), where=norms > 0)


def nearest_across(query: np.ndarray, sets: Sequence[DirectionSet], top: int = 5, exclude_kind: str | None = None) -> list[list[Neighbour]]:
    """Per set (skipping those of ``exclude_kind`` and those of another width), its ``top``
    directions by |cosine| with ``query`` (d,), largest first. One matrix product per set."""
    q = np.asarray(query, dtype=np.float64).ravel()
    norm = np.linalg.norm(q)
    if norm == 0:
        raise InvalidParameter("this direction is zero: it has no nearest neighbours")
    q = q / norm
    found = []
    for directions in sets:
        if directions.kind == exclude_kind or directions.vectors.shape[1] != len(q):
            continue
        cosines = unit_rows(directions.vectors) @ q
        order = np.argsort(-np.abs(cosines), kind="stable")[:top]
        found.append([Neighbour(directions.ref(int(i)), directions.labels[int(i)], directions.source, float(cosines[i])) for i in order])
    return found
