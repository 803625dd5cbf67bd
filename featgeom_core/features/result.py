"""The features view's result types (frozen dataclasses; the corpus job's result is stored by the
store's one mechanism, :mod:`featgeom_core.codec`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featgeom_core.features.directions import DirectionSet
from featgeom_core.features.ref import FeatureRef


@dataclass(frozen=True)
class Context:
    """One stretch of a text around a token that activates the feature strongly.

    ``tokens`` and ``values`` (the feature's activation on each token, same length); ``focus``: the
    peak token's place in ``tokens``; ``text``: which text; ``peak``: its value.
    """

    text: int
    tokens: tuple[str, ...]
    values: tuple[float, ...]
    focus: int
    peak: float


@dataclass(frozen=True)
class CorpusTokens:
    """Every real token of ``texts``: ``values`` (n, d) float32 activations, ``text`` and
    ``position`` (n,) where each sits, ``strings`` (n,) the token as text (with its leading space)."""

    values: np.ndarray
    text: np.ndarray
    position: np.ndarray
    strings: list[str]
    texts: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {"tokens": int(len(self.text)), "texts": len(self.texts), "width": int(self.values.shape[1]) if self.values.ndim == 2 else 0}


@dataclass(frozen=True)
class TextReading:
    """``tokens`` (T,) the text's real tokens as text; ``values`` (T,) the feature's activation on each."""

    tokens: list[str]
    values: np.ndarray


@dataclass(frozen=True)
class Neighbour:
    """One direction of another set: its ``ref``, ``label``, ``source`` and ``cosine`` with the query
    (signed; |cosine| ranks, since an atom and a probe may point opposite ways for one concept);
    ``chance``: the largest |cosine| a random direction reaches against the same set."""

    ref: FeatureRef
    label: str
    source: str
    cosine: float
    chance: float = 0.0


@dataclass(frozen=True)
class FeatureData:
    """One feature's page, as data.

    ``values`` (n,): its activation on each of the ``n`` tokens (or samples) ``where`` says;
    ``contexts``: the top ones in their text (empty for a toy's samples); ``count``: directions in
    its set (Prev/Next); ``direction``: its set, for the nearest neighbours (None in parameter
    space); ``by_magnitude``: the sign means nothing (ranked by |value|); ``nonzero_only``: the
    histogram leaves zeros out (a sparse code); ``facts``: short label -> value lines.
    """

    ref: FeatureRef
    title: str
    where: str
    values: np.ndarray
    contexts: list[Context]
    count: int
    direction: DirectionSet | None = None
    by_magnitude: bool = False
    nonzero_only: bool = False
    facts: dict[str, str] = field(default_factory=dict)
    unranked: np.ndarray | None = None
    """(n,) bool: the tokens left out of the ranking and the histogram (each text's first token)."""
    warning: str = ""
    """What to say beside the feature before anything else (probes that do not beat chance)."""

    def shown_values(self) -> np.ndarray:
        """The values the histogram counts: all but the ``unranked`` tokens."""
        return self.values if self.unranked is None else self.values[~self.unranked]
