"""The probing analysis's result types (frozen dataclasses; the job's result is stored by the
store's one mechanism, :mod:`featgeom_core.codec`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featgeom_core import codec
from featgeom_core.probing.params import KINDS, GeometryParams
from featgeom_core.probing.quality import LayerQuality, construction_warning


@dataclass(frozen=True)
class ProbeResult:
    """Probes for L layers x F features.

    ``directions`` (L, F, d): the weight vectors in the activation space (unnormalised; the
    feature directions). ``bias`` (L, F). ``test_accuracy``, ``test_balanced_accuracy``,
    ``train_accuracy`` (L, F) in [0, 1]. ``train_rows`` (n,) bool: the split used. ``scores``
    (L, n, F): ``w . x + b`` of every example; ``quality``: each layer's held-out quality beside
    the chance and majority baselines.
    """

    layers: tuple[int, ...]
    feature_names: tuple[str, ...]
    directions: np.ndarray
    bias: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    test_balanced_accuracy: np.ndarray
    train_rows: np.ndarray
    iterations: int
    scores: np.ndarray
    quality: tuple[LayerQuality, ...]


@dataclass
class GeometryResult:
    """Probe directions and their PSMs for L layers x F features.

    ``directions[control]`` (L, F, d); ``psms[(kind, control)]`` (L, F, F);
    ``test_accuracy`` / ``test_balanced_accuracy`` / ``shuffled_test_accuracy`` (L, F);
    ``quality``: each layer's held-out quality beside the chance and majority baselines.
    """

    model: str
    feature_set: str
    layers: tuple[int, ...]
    feature_names: tuple[str, ...]
    params: GeometryParams
    directions: dict[str, np.ndarray]
    psms: dict[tuple[str, str], np.ndarray]
    test_accuracy: np.ndarray
    test_balanced_accuracy: np.ndarray
    shuffled_test_accuracy: np.ndarray
    quality: tuple[LayerQuality, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)
    cached_layers: tuple[int, ...] = ()

    def warning(self) -> str | None:
        """What to say beside this geometry when its probes do not beat chance; None when they do."""
        return construction_warning(self.quality, self.feature_set)

    def departure(self, kind: str = "cosine") -> np.ndarray:
        """Per layer: mean |off-diagonal| difference between the real and shuffled-label PSMs (L,)."""
        from featgeom_core.probing.similarity import psm_departure

        real, shuffled = self.psms[(kind, "real")], self.psms[(kind, "shuffled_labels")]
        return np.asarray([psm_departure(real[i], shuffled[i]) for i in range(len(self.layers))])

    def mean_off_diagonal(self, kind: str, control: str) -> np.ndarray:
        """Per layer: the mean off-diagonal similarity (L,)."""
        matrices = self.psms[(kind, control)]
        off = ~np.eye(matrices.shape[-1], dtype=bool)
        return matrices[:, off].mean(axis=1) if off.any() else np.zeros(len(self.layers))

    def deduplicated(self, threshold: float | None, kind: str = "cosine") -> tuple[list[list[int]], list[list[tuple[int, int, float]]]]:
        """Per layer: kept feature indices and dropped pairs for de-duplication on the real PSM."""
        from featgeom_core.probing.similarity import dedup

        if threshold is None:
            every = list(range(len(self.feature_names)))
            return [every for _ in self.layers], [[] for _ in self.layers]
        results = [dedup(self.psms[(kind, "real")][i], threshold) for i in range(len(self.layers))]
        return [r.kept for r in results], [r.dropped for r in results]

    def psms_at(
        self, layer: int, kept: Sequence[int] | None = None, controls: Sequence[str] = ("real", "permuted")
    ) -> dict[str, dict[str, np.ndarray]]:
        """One layer's PSMs restricted to the ``kept`` features (e.g. after de-duplication):
        {control: {"cosine" | "rbf": (N, N)}}; the energy pages' targets."""
        i = self.layers.index(layer)
        keep = list(range(len(self.feature_names))) if kept is None else list(kept)
        return {control: {kind: self.psms[(kind, control)][i][np.ix_(keep, keep)] for kind in KINDS} for control in controls}

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings that reproduce this result."""
        return {"model": self.model, "feature_set": self.feature_set, "layers": list(self.layers), **self.params.model_dump()}

    def psm_csv(self) -> str:
        """All PSMs in long form: layer, similarity, control, feature_i, feature_j, value."""
        lines = ["layer,similarity,control,feature_i,feature_j,value"]
        for (kind, control), matrices in self.psms.items():
            for li, layer in enumerate(self.layers):
                for i, a in enumerate(self.feature_names):
                    for j, b in enumerate(self.feature_names):
                        lines.append(f"{layer},{kind},{control},{_csv(a)},{_csv(b)},{matrices[li, i, j]:.6g}")
        return "\n".join(lines) + "\n"

    def directions_npz(self) -> bytes:
        """NPZ bytes: directions_<control> (L, F, d), layers, feature_names, accuracies, settings JSON."""
        return codec.arrays_npz(
            {
                "layers": np.asarray(self.layers),
                "feature_names": np.asarray(self.feature_names, dtype=str),
                "test_accuracy": self.test_accuracy,
                "settings": np.asarray(json.dumps(self.settings())),
                **{f"directions_{control}": values for control, values in self.directions.items()},
            }
        )


def _csv(text: str) -> str:
    return f'"{text}"' if "," in text or '"' in text else text


@dataclass(frozen=True)
class LayerControls:
    """One layer's targets: ``targets[control]`` is a list (one per seed) of {"cosine" | "rbf": (N, N)}
    over the ``names`` kept; ``real`` has one entry."""

    layer: int
    names: list[str]
    targets: dict[str, list[dict[str, np.ndarray]]]

    def real(self, similarity: str) -> np.ndarray:
        """The real PSM for one similarity (N, N)."""
        return self.targets["real"][0][similarity]

    def sweep_targets(self, similarities: Sequence[str]) -> list[dict]:
        """Every target as ``{name, replicate, layer, features, psms}`` (JSON-able), the shape of an
        energy sweep's targets: each control seed is one replicate."""
        return [
            {
                "name": control,
                "replicate": k,
                "layer": self.layer,
                "features": list(self.names),
                "psms": {kind: m.tolist() for kind, m in psms.items() if kind in similarities},
            }
            for control, seeds in self.targets.items()
            for k, psms in enumerate(seeds)
        ]


@dataclass(frozen=True)
class DedupResult:
    """Which features survive de-duplication: ``kept`` indices (ascending) and
    ``dropped`` (dropped index, the kept index it duplicates, their similarity)."""

    kept: list[int]
    dropped: list[tuple[int, int, float]]


@dataclass(frozen=True)
class GeometrySummary:
    """Per layer (L) x feature (F): held-out ``test_accuracy`` (L, F); per layer: the mean
    off-diagonal cosine of the real and the shuffled-label PSMs and their departure (L,);
    ``quality`` per layer beside the chance and majority baselines (empty in results stored before
    it was recorded)."""

    feature_names: list[str]
    params: dict[str, Any]
    test_accuracy: np.ndarray
    mean_cosine_real: np.ndarray
    mean_cosine_shuffled: np.ndarray
    departure_cosine: np.ndarray
    quality: tuple[LayerQuality, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Per layer: mean held-out accuracy, mean off-diagonal cosine of the real and shuffled-label PSMs."""
        return {
            "layers": self.params.get("layers"),
            "mean_test_accuracy": [round(float(a), 4) for a in self.test_accuracy.mean(axis=1)],
            "mean_cosine_real": [round(float(v), 4) for v in self.mean_cosine_real],
            "mean_cosine_shuffled": [round(float(v), 4) for v in self.mean_cosine_shuffled],
            **(
                {
                    "balanced_accuracy": [round(q.balanced_accuracy, 4) for q in self.quality],
                    "chance": round(self.quality[0].chance, 4),
                    "majority": [round(q.majority, 4) for q in self.quality],
                    "beats_chance": [q.encoded for q in self.quality],
                }
                if self.quality
                else {}
            ),
            **({"warning": warning} if (warning := construction_warning(self.quality, str(self.params.get("feature_set")))) else {}),
        }
