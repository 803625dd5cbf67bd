"""The nearest directions of the other kinds to one direction, by cosine: which dictionary atoms
and LIB directions align with a probe direction (and every other pairing) on one model and layer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.features.directions import DirectionSet
from featgeom_core.features.result import Neighbour


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(k, d) rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float64), where=norms > 0)


def nearest_across(query: np.ndarray, sets: Sequence[DirectionSet], top: int = 5, exclude_kind: str | None = None) -> list[list[Neighbour]]:
    """Per set (skipping those of ``exclude_kind`` and those of another width), its ``top``
    directions by |cosine| with ``query`` (d,), largest first, each with the set's chance level."""
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
        chance = chance_largest_cosine(directions)
        found.append(
            [Neighbour(directions.ref(int(i)), directions.labels[int(i)], directions.source, float(cosines[i]), chance) for i in order]
        )
    return found


def chance_largest_cosine(directions: DirectionSet, draws: int = 64, seed: int = 0) -> float:
    """The largest |cosine| a *random* direction reaches against ``directions``, averaged over
    ``draws`` Gaussian directions: the control beside a neighbour's cosine (among thousands of
    atoms in a few hundred dimensions, |cosine| 0.15 is what chance gives)."""
    rng = np.random.default_rng(seed)
    queries = unit_rows(rng.normal(size=(draws, directions.vectors.shape[1])))
    return float(np.abs(queries @ unit_rows(directions.vectors).T).max(axis=1).mean())
