"""Probe quality beside the chance and majority baselines: the flag fires on a planted no-signal
set and not on a planted separable one, for multi-class and multi-label sets."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.data.knowledge import multiclass_feature_set
from featgeom_core.probing import GeometryParams
from featgeom_core.probing.pipeline import assemble_geometry, train_layer_probes
from featgeom_core.probing.probes import train_probes
from featgeom_core.probing.quality import CONSTRUCTION_WARNING, MIN_LIFT, construction_warning, threshold_for


def _planted_multiclass(signal: float, n: int = 600, k: int = 3, d: int = 40, seed: int = 0, counts: list[int] | None = None):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, k, n) if counts is None else np.repeat(np.arange(k), counts)
    means = rng.normal(size=(k, d)) * signal
    X = rng.normal(size=(len(classes), d)) + means[classes]
    fs = multiclass_feature_set("planted", [f"t{i}" for i in range(len(classes))], [f"c{c}" for c in classes], None, "planted")
    return {0: X.astype(np.float32)}, fs


def test_a_set_with_no_signal_is_flagged_as_the_probing_construction() -> None:
    activations, fs = _planted_multiclass(signal=0.0)
    quality = train_probes(activations, fs).quality[0]
    assert quality.chance == pytest.approx(1 / 3)
    assert abs(quality.balanced_accuracy - 1 / 3) < 0.08
    assert not quality.encoded
    warning = construction_warning([quality], "planted")
    assert warning is not None and CONSTRUCTION_WARNING in warning


def test_a_separable_set_is_not_flagged() -> None:
    activations, fs = _planted_multiclass(signal=1.0)
    quality = train_probes(activations, fs).quality[0]
    assert quality.balanced_accuracy > 0.9 and quality.encoded
    assert construction_warning([quality], "planted") is None


def test_the_majority_baseline_is_the_commonest_held_out_class() -> None:
    activations, fs = _planted_multiclass(signal=0.0, counts=[400, 100, 100])
    result = train_probes(activations, fs)
    quality = result.quality[0]
    truth = fs.labels[~result.train_rows].argmax(axis=1)
    assert quality.majority == pytest.approx(np.bincount(truth).max() / len(truth))
    assert quality.majority > 0.55  # so plain accuracy near 0.67 says nothing here; balanced accuracy does
    # the one-vs-rest majority: the share of the commoner answer in each feature's held-out sample
    held = fs.labels[~result.train_rows]
    np.testing.assert_allclose(quality.feature_majority, np.maximum(held.mean(0), 1 - held.mean(0)))


def test_the_threshold_asks_for_both_a_lift_and_significance() -> None:
    assert threshold_for(0.5, 10_000) == pytest.approx(0.5 + MIN_LIFT * 0.5)
    assert threshold_for(0.5, 20) > 0.5 + 3 * np.sqrt(0.25 / 20) - 1e-12


def test_a_multilabel_set_names_its_features_that_do_not_beat_chance() -> None:
    rng = np.random.default_rng(1)
    n, d = 800, 30
    X = rng.normal(size=(n, d))
    informative = X[:, 0] > 0.3
    random = rng.random(n) < 0.3
    fs = FeatureSet(
        name="planted-multilabel",
        texts=tuple(f"t{i}" for i in range(n)),
        example_text=np.arange(n),
        example_pos=np.zeros(n, dtype=np.int64),
        labels=np.stack([informative, random], axis=1),
        mask=np.ones((n, 2), dtype=bool),
        feature_names=("informative", "random"),
        kind="multilabel",
    )
    per_layer = train_layer_probes({3: X.astype(np.float32)}, fs, GeometryParams())
    result = assemble_geometry("planted", fs, (3,), GeometryParams(), per_layer)
    (quality,) = result.quality
    assert quality.weak_features == ("random",)
    assert quality.feature_balanced_accuracy[0] > 0.9
    warning = result.warning()
    assert warning is not None and "random" in warning and "informative" not in warning
