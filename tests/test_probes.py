"""Batched probes against scikit-learn, and the shuffled-label control on planted data."""

import numpy as np
import pytest

from featgeom_core.data.knowledge import multiclass_feature_set
from featgeom_core.probing import psm
from featgeom_core.probing.params import ProbeParams
from featgeom_core.probing.probes import (
    balanced_sample_weights,
    shuffle_labels,
    shuffled_label_control,
    train_probe_sets,
    train_probes,
    train_probes_sklearn,
)


def planted_multiclass(n_per_class: int, n_classes: int, d: int, separation: float, seed: int):
    """Gaussian clusters around random class means; returns (activations {layer: X}, feature set, means)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, d)) * separation
    classes = np.repeat(np.arange(n_classes), n_per_class)
    X = means[classes] + rng.normal(size=(len(classes), d))
    fs = multiclass_feature_set("planted", [f"t{i}" for i in range(len(classes))], [f"c{c}" for c in classes], None, "planted")
    return {0: X.astype(np.float32), 3: (2 * X + 1).astype(np.float32)}, fs, means


def test_batched_probes_match_sklearn_on_separable_data() -> None:
    activations, fs, _ = planted_multiclass(150, 3, 64, separation=0.6, seed=0)
    ours = train_probes(activations, fs, ProbeParams(), device="cpu")
    reference = train_probes_sklearn(activations, fs, ProbeParams())
    assert ours.test_accuracy.shape == (2, 3)
    np.testing.assert_allclose(ours.test_accuracy, reference.test_accuracy, atol=0.01)
    assert ours.test_accuracy.min() > 0.9
    # Same optimum: directions agree, and ours is never a worse minimum of sklearn's objective.
    cos = np.sum(ours.directions * reference.directions, -1) / (
        np.linalg.norm(ours.directions, axis=-1) * np.linalg.norm(reference.directions, axis=-1)
    )
    assert cos.min() > 0.99
    train = ours.train_rows
    weights = balanced_sample_weights(fs.labels, fs.mask & train[:, None])
    for li, layer in enumerate(ours.layers):
        X = activations[layer].astype(np.float64)
        for f in range(fs.n_features):
            y = np.where(fs.labels[:, f], 1.0, -1.0)

            def objective(w: np.ndarray, b: float) -> float:
                w = w.astype(np.float64)
                return 0.5 * w @ w + float(np.sum(weights[:, f] * np.logaddexp(0.0, -y * (X @ w + b))))

            ours_value = objective(ours.directions[li, f], ours.bias[li, f])
            assert ours_value <= objective(reference.directions[li, f], reference.bias[li, f]) * (1 + 1e-4)


def test_directions_live_in_activation_space() -> None:
    activations, fs, means = planted_multiclass(200, 3, 32, separation=1.0, seed=1)
    result = train_probes(activations, fs, device="cpu")
    assert result.directions.shape == (2, 3, 32)
    # The probe for class k points along the class mean's offset from the other classes.
    for k in range(3):
        offset = means[k] - np.delete(means, k, axis=0).mean(axis=0)
        cosine = offset @ result.directions[0, k] / np.linalg.norm(offset) / np.linalg.norm(result.directions[0, k])
        assert cosine > 0.8


def test_a_probe_is_the_same_whatever_is_solved_beside_it() -> None:
    """Each (layer, feature) problem has its own L-BFGS: a layer's probes alone equal those solved
    with another layer and a shuffled-label set beside them (a cache per layer relies on it). One
    torch L-BFGS on the summed loss moved them by 0.6-1.3% here."""
    activations, fs, _ = planted_multiclass(120, 4, 48, separation=0.4, seed=3)
    alone = train_probes({3: activations[3]}, fs, device="cpu")
    together, _ = train_probe_sets(activations, [fs, shuffle_labels(fs, 1)], device="cpu")
    np.testing.assert_allclose(together.directions[1], alone.directions[0], rtol=0, atol=1e-4 * np.abs(alone.directions).max())
    np.testing.assert_allclose(together.bias[1], alone.bias[0], rtol=0, atol=1e-4 * np.abs(alone.bias).max())


def test_split_is_seeded_and_by_text() -> None:
    activations, fs, _ = planted_multiclass(50, 2, 8, separation=1.0, seed=2)
    a = train_probes(activations, fs, ProbeParams(seed=5), device="cpu")
    b = train_probes(activations, fs, ProbeParams(seed=5), device="cpu")
    c = train_probes(activations, fs, ProbeParams(seed=6), device="cpu")
    np.testing.assert_array_equal(a.train_rows, b.train_rows)
    assert not np.array_equal(a.train_rows, c.train_rows)
    assert a.train_rows.mean() == pytest.approx(0.7, abs=0.01)


@pytest.mark.parametrize("n_classes", [3, 4, 6])
def test_shuffled_label_control_sits_near_a_simplex(n_classes: int) -> None:
    activations, fs, _ = planted_multiclass(300, n_classes, 64, separation=0.5, seed=n_classes)
    control = shuffled_label_control(activations, fs, device="cpu")
    off = ~np.eye(n_classes, dtype=bool)
    mean_cosine = psm(control.directions[0])[off].mean()
    assert mean_cosine == pytest.approx(-1 / (n_classes - 1), abs=0.05)
    assert np.all(control.test_accuracy < 0.75)  # chance-level probes


def test_invalid_probe_params_raise() -> None:
    from featgeom_core.errors import FeatgeomError

    with pytest.raises(FeatgeomError, match="C = 0: Input should be greater than 0"):
        ProbeParams(C=0)
    with pytest.raises(FeatgeomError, match="train_fraction"):
        ProbeParams(train_fraction=1.0)
