"""The sparsity analysis's result types (frozen dataclasses; job results are stored by the store's
one mechanism, :mod:`featgeom_core.codec`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse

from featgeom_core.errors import InvalidParameter


@dataclass(frozen=True)
class SparseCode:
    """A learned dictionary and the codes of the data it was fitted to.

    ``dictionary`` (d, m) float32 with unit columns; ``codes`` (n, m) scipy CSR (non-negative);
    ``lam`` the final lambda; ``lambdas`` per adaptive round; ``losses`` the minibatch objective per
    iteration; ``method``; ``center`` (d,) the mean removed from the data before coding.
    """

    dictionary: np.ndarray
    codes: scipy.sparse.csr_array
    lam: float
    method: str
    center: np.ndarray
    lambdas: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def dictionary_size(self) -> int:
        """m, the number of atoms."""
        return int(self.dictionary.shape[1])


@dataclass(frozen=True)
class ActivationSetResult:
    """One activation set's code, metrics (scalars), per-atom usage, coefficient histogram, and its
    atoms' top rows: ``top_rows`` (m, k) indices into the set's rows (eval tokens, or vocabulary
    ids for the embeddings), ``top_values`` (m, k) their coefficients (0 where an atom has fewer)."""

    name: str
    code: SparseCode
    metrics: dict[str, Any]
    usage: np.ndarray
    histogram: np.ndarray
    histogram_edges: np.ndarray
    top_rows: np.ndarray
    top_values: np.ndarray
    calibrated_a: float | None = None


@dataclass(frozen=True)
class ModelSparsityResult:
    """Every activation set's result, the evaluation tokens (``token_text``, ``token_position``,
    ``token_id``, their strings and the texts), the vocabulary strings (for the embeddings), and the
    calibration rows (sparse-linear data at the same d, and the Gaussian control)."""

    model: str
    hook: str
    sets: list[ActivationSetResult]
    token_text: np.ndarray
    token_position: np.ndarray
    token_id: np.ndarray
    token_strings: list[str]
    texts: list[str]
    vocabulary: list[str]
    calibration: list[dict[str, Any]] = field(default_factory=list)

    def set(self, name: str) -> ActivationSetResult:
        """One activation set by name (``embeddings`` or ``layer l``)."""
        for result in self.sets:
            if result.name == name:
                return result
        raise InvalidParameter(f"no activation set {name!r}; this result has {[s.name for s in self.sets]}")

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "hook": self.hook,
            "by_set": [
                {
                    "set": s.name,
                    "normalized_loss": round(s.metrics["normalized_loss"], 3),
                    "s_p": round(s.metrics["s_p"], 3),
                    "explained_variance": round(s.metrics["explained_variance"], 4),
                    "calibrated_a": s.calibrated_a,
                }
                for s in self.sets
            ],
        }


@dataclass(frozen=True)
class SyntheticSweepResult:
    """One row per data set (see ``measure_synthetic``): sparse-linear ones by a, then controls."""

    rows: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        keep = ("dataset", "a", "truth", "planted_s1", "s_p", "normalized_loss", "n0", "explained_variance", "seconds")
        return {"rows": [{k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in keep} for r in self.rows]}
