"""How well probes read a feature set, beside what guessing gets: held-out balanced accuracy
against chance, plain accuracy against always giving the commonest answer, and a flag when the
probes do not beat the baseline (then the geometry of their directions is the probing
construction, not the model's: K balanced one-vs-rest probes sit near a simplex whatever the
model knows).

- Multi-class sets: the class is the argmax of the K one-vs-rest scores; balanced accuracy is the
  mean recall over classes (chance 1/K for any guess that ignores the input), the majority
  baseline the held-out share of the commonest class.
- Multi-label sets: each feature is its own binary problem (chance 0.5, majority the share of
  the commoner answer in the feature's held-out sample); the layer's figures are their means and
  the flag is raised per feature.

A probe *beats the baseline* when its balanced accuracy exceeds chance by at least
:data:`MIN_LIFT` of the way to perfect ((acc - chance) / (1 - chance), Cohen-style) and by
:data:`Z_MIN` binomial standard errors of a chance-level classifier on that many held-out
examples. Both are stated in every verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featgeom_core.data.feature_set import FeatureSet

MIN_LIFT = 0.2
"""Least chance-corrected balanced accuracy, (acc - chance) / (1 - chance), that counts as encoded."""
Z_MIN = 3.0
"""Least distance above chance, in standard errors of a chance-level classifier."""
CONSTRUCTION_WARNING = "this geometry is the probing construction, not the model's"


@dataclass(frozen=True)
class LayerQuality:
    """One layer's held-out probe quality (fractions in [0, 1]).

    ``balanced_accuracy``, ``accuracy``, ``chance`` and ``majority`` are the layer's figures (for a
    multi-label set, means over features); ``threshold`` is the balanced accuracy that counts as
    beating chance; ``feature_balanced_accuracy``, ``feature_accuracy`` and ``feature_majority``
    (F,) are each one-vs-rest probe's; ``weak_features`` the features whose probe does not beat
    chance (multi-label sets; empty for multi-class sets, which are judged as one K-way probe).
    """

    layer: int
    kind: str
    n_test: int
    balanced_accuracy: float
    accuracy: float
    chance: float
    majority: float
    threshold: float
    feature_balanced_accuracy: np.ndarray
    feature_accuracy: np.ndarray
    feature_majority: np.ndarray
    weak_features: tuple[str, ...] = ()

    @property
    def encoded(self) -> bool:
        """Whether the probes beat the chance baseline by the stated margin."""
        return self.balanced_accuracy >= self.threshold

    @property
    def lift(self) -> float:
        """Chance-corrected balanced accuracy, (acc - chance) / (1 - chance)."""
        return (self.balanced_accuracy - self.chance) / (1.0 - self.chance)

    def verdict(self) -> str:
        """One line: the figures and whether they beat the baselines."""
        figures = (
            f"layer {self.layer}: balanced accuracy {self.balanced_accuracy:.3f} (chance {self.chance:.3f}, needs {self.threshold:.3f}); "
            f"accuracy {self.accuracy:.3f} (always the commonest answer: {self.majority:.3f}); {self.n_test} held out"
        )
        if self.kind == "multilabel" and self.weak_features:
            return f"{figures}; not above chance: {', '.join(self.weak_features)}"
        return figures + ("" if self.encoded else f"; not above chance: {CONSTRUCTION_WARNING}")


def threshold_for(chance: float, n_test: int) -> float:
    """The balanced accuracy a probe must reach to count as beating ``chance`` on ``n_test`` examples."""
    standard_error = float(np.sqrt(chance * (1.0 - chance) / max(n_test, 1)))
    return chance + max(MIN_LIFT * (1.0 - chance), Z_MIN * standard_error)


def layer_quality(scores: np.ndarray, feature_set: FeatureSet, train_rows: np.ndarray, layer: int) -> LayerQuality:
    """Quality of one layer's probes from their scores ``w . x + b`` on every example, (n, F),
    judged on the held-out rows (``train_rows`` (n,) bool False)."""
    labels, mask = feature_set.labels, feature_set.mask
    test = mask & ~train_rows[:, None]  # (n, F)
    predicted = scores > 0
    correct = predicted == labels
    n_f = np.maximum(test.sum(axis=0), 1)
    positives = (labels & test).sum(axis=0)
    negatives = (~labels & test).sum(axis=0)
    recall_pos = (correct & labels & test).sum(axis=0) / np.maximum(positives, 1)
    recall_neg = (correct & ~labels & test).sum(axis=0) / np.maximum(negatives, 1)
    feature_balanced = 0.5 * (recall_pos + recall_neg)
    feature_accuracy = (correct & test).sum(axis=0) / n_f
    feature_majority = np.maximum(positives, negatives) / n_f
    if feature_set.kind == "multiclass":
        rows = ~train_rows
        truth = labels[rows].argmax(axis=1)
        guess = scores[rows].argmax(axis=1)
        k = labels.shape[1]
        present = [c for c in range(k) if (truth == c).any()]
        balanced = float(np.mean([(guess[truth == c] == c).mean() for c in present]))
        chance = 1.0 / k
        n_test = int(rows.sum())
        counts = np.bincount(truth, minlength=k)
        return LayerQuality(
            layer=layer,
            kind="multiclass",
            n_test=n_test,
            balanced_accuracy=balanced,
            accuracy=float((guess == truth).mean()),
            chance=chance,
            majority=float(counts.max() / max(n_test, 1)),
            threshold=threshold_for(chance, n_test),
            feature_balanced_accuracy=feature_balanced,
            feature_accuracy=feature_accuracy,
            feature_majority=feature_majority,
        )
    weak = tuple(name for f, name in enumerate(feature_set.feature_names) if feature_balanced[f] < threshold_for(0.5, int(n_f[f])))
    n_test = int(test.any(axis=1).sum())
    return LayerQuality(
        layer=layer,
        kind="multilabel",
        n_test=n_test,
        balanced_accuracy=float(feature_balanced.mean()),
        accuracy=float(feature_accuracy.mean()),
        chance=0.5,
        majority=float(feature_majority.mean()),
        threshold=threshold_for(0.5, int(n_f.min())),
        feature_balanced_accuracy=feature_balanced,
        feature_accuracy=feature_accuracy,
        feature_majority=feature_majority,
        weak_features=weak,
    )


def construction_warning(quality: tuple[LayerQuality, ...] | list[LayerQuality], feature_set: str) -> str | None:
    """The warning to show beside a geometry whose probes do not beat chance at some layer (or, in a
    multi-label set, whose features do not at any layer); None when all do."""
    if not quality:
        return None
    weak = [q.layer for q in quality if not q.encoded]
    never = sorted(set.intersection(*(set(q.weak_features) for q in quality)))
    if weak:
        best = max(quality, key=lambda q: q.lift)
        where = "at every layer" if len(weak) == len(quality) else f"at layer(s) {weak}"
        return f"The probes of {feature_set} do not beat the chance baseline {where}: {CONSTRUCTION_WARNING}. Best: {best.verdict()}."
    if never:
        return f"In {feature_set}, the probes of {', '.join(never)} do not beat chance at any layer: for them, {CONSTRUCTION_WARNING}."
    return None
