"""The thesis's main path (sections 3.1-3.2): activations -> probes (real and shuffled-label) ->
PSMs with controls, cached.

Probe results are cached per layer, so adding a layer trains only that layer; PSMs and
de-duplication are cheap and computed on demand from the cached directions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from featgeom_core.activations import extract
from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.models import LoadedModel
from featgeom_core.probing.estimators import background_activations, estimate_direction_sets, settings_key
from featgeom_core.probing.params import (
    KINDS,
    GeometryParams,
    ProbeParams,
)
from featgeom_core.probing.probes import shuffle_labels, split_rows
from featgeom_core.probing.quality import layer_quality
from featgeom_core.probing.result import GeometryResult
from featgeom_core.probing.similarity import permuted_control, psm
from featgeom_core.progress import Progress, silent, sub_progress
from featgeom_core.store import Store, result_key


def probe_key(model: LoadedModel, feature_set: FeatureSet, layer: int, params: GeometryParams) -> str:
    """Store key of one layer's probe results (real and shuffled-label) for these inputs."""
    return result_key(
        # v2: with every example's scores, from which the probe quality is judged; v3: each probe
        # solved alone (v2's moved with the layers solved beside it)
        "probes.v3",
        {"layer": layer, **settings_key(params), "label_seed": params.label_seed},
        {"model": model.fingerprint, "features": feature_set.fingerprint()},
    )


def train_layer_probes(
    activations: Mapping[int, np.ndarray],
    feature_set: FeatureSet,
    params: GeometryParams = GeometryParams(),
    device: str = "auto",
    progress: Progress | None = None,
    background: Mapping[int, np.ndarray] | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Real and shuffled-label directions on activations {layer: (n, d)}: logistic probes (one
    batched problem each) or class means in whitened activations, as ``params.estimator`` says.

    Returns {layer: arrays} with ``directions`` (F, d), ``bias``, ``test_accuracy``,
    ``test_balanced_accuracy``, ``scores`` (n, F), ``shuffled_directions`` and ``shuffled_test_accuracy``.
    """
    report = progress or silent
    what = "class-mean directions" if params.estimator == "class_mean" else "probes"
    report(0.0, f"estimating {len(activations) * feature_set.n_features} {what} and their shuffled-label control")
    real, shuffled = estimate_direction_sets(
        activations, [feature_set, shuffle_labels(feature_set, params.label_seed)], params, device, background
    )
    return {
        layer: {
            "directions": real.directions[i],
            "bias": real.bias[i],
            "test_accuracy": real.test_accuracy[i],
            "test_balanced_accuracy": real.test_balanced_accuracy[i],
            "scores": real.scores[i],
            "shuffled_directions": shuffled.directions[i],
            "shuffled_test_accuracy": shuffled.test_accuracy[i],
        }
        for i, layer in enumerate(real.layers)
    }


def cached_layers(model: LoadedModel, feature_set: FeatureSet, layers: Sequence[int], params: GeometryParams, store: Store) -> list[int]:
    """The layers whose probe results are already in ``store``."""
    return [layer for layer in layers if store.contains(probe_key(model, feature_set, layer, params))]


def feature_geometry(
    model: LoadedModel,
    feature_set: FeatureSet,
    layers: Sequence[int],
    params: GeometryParams = GeometryParams(),
    *,
    store: Store | None = None,
    progress: Progress | None = None,
    device: str = "auto",
) -> GeometryResult:
    """Probe every feature at every layer (and on shuffled labels), then build all PSMs. ``store``
    caches the activations and the per-layer probes."""
    layers = tuple(sorted(set(int(layer) for layer in layers)))
    report = progress or silent
    keys = {layer: probe_key(model, feature_set, layer, params) for layer in layers}
    per_layer: dict[int, dict[str, np.ndarray]] = {}
    if store is not None:
        for layer in layers:
            cached = store.get(keys[layer], stale_as_missing=True)
            if cached is not None:
                per_layer[layer] = cached.arrays
    from_cache = tuple(per_layer)
    missing = [layer for layer in layers if layer not in per_layer]
    if missing:
        activations = extract(model, feature_set, missing, params.hook, store=store, progress=sub_progress(report, 0.0, 0.7))
        background = background_activations(model, missing, params, store)
        computed = train_layer_probes(activations, feature_set, params, device, sub_progress(report, 0.7, 0.95), background)
        for layer, arrays in computed.items():
            if store is not None:
                store.put(keys[layer], arrays, {"model": model.name, "feature_set": feature_set.name, "layer": layer})
            per_layer[layer] = arrays
    return assemble_geometry(model.name, feature_set, layers, params, per_layer, from_cache, report)


def assemble_geometry(
    model_name: str,
    feature_set: FeatureSet,
    layers: tuple[int, ...],
    params: GeometryParams,
    per_layer: dict[int, dict[str, np.ndarray]],
    from_cache: tuple[int, ...] = (),
    progress: Progress | None = None,
) -> GeometryResult:
    """Controls and PSMs from per-layer probe results (cheap: no model involved)."""
    report = progress or silent
    report(0.95, "building PSMs")
    train_rows = split_rows(feature_set, ProbeParams().train_fraction, params.seed)
    real_dirs = np.stack([per_layer[layer]["directions"] for layer in layers])
    directions = {
        "real": real_dirs,
        "permuted": np.stack([permuted_control(real_dirs[i], params.permutation_seed + layer) for i, layer in enumerate(layers)]),
        "shuffled_labels": np.stack([per_layer[layer]["shuffled_directions"] for layer in layers]),
    }
    psms: dict[tuple[str, str], np.ndarray] = {
        (kind, control): np.stack([psm(values[i], kind, params.rbf_c) for i in range(len(layers))])
        for kind in KINDS
        for control, values in directions.items()
    }
    report(1.0, "done")
    return GeometryResult(
        model=model_name,
        feature_set=feature_set.name,
        layers=layers,
        feature_names=feature_set.feature_names,
        params=params,
        directions=directions,
        psms=psms,
        test_accuracy=np.stack([per_layer[layer]["test_accuracy"] for layer in layers]),
        test_balanced_accuracy=np.stack([per_layer[layer]["test_balanced_accuracy"] for layer in layers]),
        shuffled_test_accuracy=np.stack([per_layer[layer]["shuffled_test_accuracy"] for layer in layers]),
        quality=tuple(layer_quality(per_layer[layer]["scores"], feature_set, train_rows, layer) for layer in layers),
        notes=dict(feature_set.notes),
        cached_layers=from_cache,
    )
