"""The class-mean estimator (Park et al. 2024) against planted geometry: it reads the planted
cosines where one-vs-rest probes are pulled onto the simplex of their construction."""

from __future__ import annotations

import numpy as np

from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.probing.class_means import train_class_mean_directions
from featgeom_core.probing.params import GeometryParams
from featgeom_core.probing.probes import shuffle_labels, train_probes
from featgeom_core.probing.similarity import psm

D, PER_CLASS = 24, 300


def planted(seed: int = 0) -> tuple[FeatureSet, dict[int, np.ndarray], np.ndarray, dict[int, np.ndarray]]:
    """Four classes whose means have planted cosines (classes 0 and 1 at 0.8, the rest orthogonal),
    unit within-class noise, and background text that is the noise alone."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(D, D)))[0]
    means = 3.0 * np.stack([basis[0], 0.8 * basis[0] + 0.6 * basis[1], basis[2], basis[3]])
    labels = np.repeat(np.arange(4), PER_CLASS)
    X = means[labels] + rng.normal(size=(len(labels), D))
    n = len(labels)
    feature_set = FeatureSet(
        name="planted",
        texts=tuple(f"t{i}" for i in range(n)),
        example_text=np.arange(n),
        example_pos=np.zeros(n, dtype=int),
        labels=np.eye(4, dtype=bool)[labels],
        mask=np.ones((n, 4), dtype=bool),
        feature_names=("a", "b", "c", "d"),
        kind="multiclass",
    )
    planted_cosines = means @ means.T / 9.0
    return feature_set, {0: X.astype(np.float32)}, planted_cosines, {0: rng.normal(size=(2000, D)).astype(np.float32)}


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    return matrix[~np.eye(len(matrix), dtype=bool)]


def test_class_means_read_the_planted_cosines_where_probes_read_the_simplex() -> None:
    feature_set, activations, truth, background = planted()
    ours = train_class_mean_directions(activations, feature_set, background=background, device="cpu")
    cosines = psm(ours.directions[0], "cosine")
    assert np.abs(off_diagonal(cosines - truth)).max() < 0.1, np.round(cosines, 2)
    assert ours.quality[0].encoded and ours.quality[0].balanced_accuracy > 0.8
    # one-vs-rest probes on the same data: the four directions sum to about zero, so the orthogonal
    # pairs come out negative and the mean cosine sits at the simplex's -1/3
    probes = psm(train_probes(activations, feature_set, device="cpu").directions[0], "cosine")
    assert abs(off_diagonal(probes).mean() + 1 / 3) < 0.1
    assert probes[2, 3] < -0.2 and abs(cosines[2, 3]) < 0.1


def test_shuffled_labels_give_every_class_the_same_vector_and_no_accuracy() -> None:
    feature_set, activations, _, background = planted()
    shuffled = train_class_mean_directions(activations, shuffle_labels(feature_set, 1), background=background, device="cpu")
    assert off_diagonal(psm(shuffled.directions[0], "cosine")).min() > 0.8
    assert not shuffled.quality[0].encoded


def test_whitening_from_the_classes_themselves_puts_them_back_on_the_simplex() -> None:
    feature_set, activations, _, _ = planted()
    own = train_class_mean_directions(activations, feature_set, device="cpu")
    assert abs(off_diagonal(psm(own.directions[0], "cosine")).mean() + 1 / 3) < 0.1


def test_the_estimator_is_a_geometry_setting_that_keeps_the_probes_keys() -> None:
    assert "estimator" not in GeometryParams().normalised()
    assert GeometryParams(estimator="class_mean").normalised()["estimator"] == "class_mean"
