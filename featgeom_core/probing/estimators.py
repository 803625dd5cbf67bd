"""Feature directions from activations by the estimator a geometry asks for: the thesis's
one-vs-rest logistic probes or class means in whitened activations (:mod:`.class_means`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.models import LoadedModel
from featgeom_core.probing.class_means import train_class_mean_directions
from featgeom_core.probing.params import GeometryParams, ProbeParams
from featgeom_core.probing.probes import shuffle_labels, train_probe_sets
from featgeom_core.probing.result import ProbeResult
from featgeom_core.store import Store


def estimate_directions(
    activations: Mapping[int, np.ndarray],
    feature_set: FeatureSet,
    params: GeometryParams,
    device: str = "auto",
    background: Mapping[int, np.ndarray] | None = None,
) -> ProbeResult:
    """Every (layer, feature) direction of ``feature_set`` on activations {layer: (n, d)}, by
    ``params.estimator``; ``background`` {layer: (m, d)}: generic activations the class-mean
    estimator whitens with (see :func:`background_activations`)."""
    return estimate_direction_sets(activations, [feature_set], params, device, background)[0]


def estimate_direction_sets(
    activations: Mapping[int, np.ndarray],
    feature_sets: Sequence[FeatureSet],
    params: GeometryParams,
    device: str = "auto",
    background: Mapping[int, np.ndarray] | None = None,
) -> list[ProbeResult]:
    """:func:`estimate_directions` for several labellings of the same examples (real and shuffled
    labels): logistic probes solve them as one problem, sharing the training span."""
    probe_params = ProbeParams(C=params.C, seed=params.seed)
    if params.estimator == "class_mean":
        return [
            train_class_mean_directions(activations, feature_set, probe_params.train_fraction, params.seed, device, background)
            for feature_set in feature_sets
        ]
    return train_probe_sets(activations, feature_sets, probe_params, device)


def background_activations(
    model: LoadedModel, layers: Sequence[int], params: GeometryParams, store: Store | None = None
) -> dict[int, np.ndarray] | None:
    """Activations of generic text at ``layers`` where the estimator needs them (class means), else None."""
    if params.estimator != "class_mean":
        return None
    from featgeom_core.activations import extract
    from featgeom_core.data.background import background_set

    return extract(model, background_set(), list(layers), params.hook, store=store)


def shuffled_label_directions_of(
    activations: Mapping[int, np.ndarray],
    feature_set: FeatureSet,
    params: GeometryParams,
    label_seeds: Sequence[int],
    device: str = "auto",
    background: Mapping[int, np.ndarray] | None = None,
) -> list[ProbeResult]:
    """The same estimator on labels shuffled with each of ``label_seeds``: the geometry the label
    structure alone gives (one result per seed, solved as one problem).

    With balanced one-vs-rest classes the class-mean differences sum to zero, so K logistic probe
    directions sit near a simplex (cosines near -1/(K-1)) whatever the model knows.
    """
    shuffled = [shuffle_labels(feature_set, seed) for seed in label_seeds]
    return estimate_direction_sets(activations, shuffled, params, device, background)


def settings_key(params: GeometryParams) -> dict[str, object]:
    """The estimator settings a cached direction depends on (the estimator named only when it is not
    the thesis's probes, so their entries keep the keys they were stored under)."""
    settings: dict[str, object] = {"hook": params.hook, "C": params.C, "seed": params.seed}
    if params.estimator != "logistic":
        settings["estimator"] = params.estimator
    return settings
