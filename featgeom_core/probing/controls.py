"""Control targets with several seeds, so that each control is a band rather than one draw.

Two controls answer different questions. The thesis's *permuted* control shuffles each probe
direction's coordinates: it keeps norms and value distributions and destroys alignment, so it asks
"is there any geometry at all?". The *shuffled-label* control retrains the probes on shuffled
labels: with balanced one-vs-rest classes, K probe directions sit near a simplex whatever the model
knows, so it asks "is this geometry more than the probing construction gives?". A real PSM that
sits closer to an energy minimum than the permuted control but not than the shuffled-label one
reflects the construction, not what the model learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featgeom_core.activations import extract
from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.models import LoadedModel
from featgeom_core.probing.estimators import background_activations, settings_key, shuffled_label_directions_of
from featgeom_core.probing.params import (
    KINDS,
    ControlParams,
    GeometryParams,
)
from featgeom_core.probing.pipeline import probe_key
from featgeom_core.probing.result import GeometryResult, LayerControls
from featgeom_core.probing.similarity import permuted_control, psm
from featgeom_core.progress import Progress, silent
from featgeom_core.store import Store, result_key

PERMUTATION_STRIDE = 7919  # seed k of a layer's permuted control: permutation_seed + layer + k * stride (k = 0 as before)


def label_seeds(params: GeometryParams, controls: ControlParams) -> list[int]:
    """The label-shuffle seeds: the probe entry's own ``label_seed`` first, then the next ones."""
    return [params.label_seed + k for k in range(controls.label_seeds)]


def _shuffled_key(model: LoadedModel, feature_set: FeatureSet, layer: int, params: GeometryParams, label_seed: int) -> str:
    return result_key(
        "shuffled_probes.v2",  # v2: each probe solved alone (v1's moved with the layers solved beside it)
        {"layer": layer, **settings_key(params), "label_seed": label_seed},
        {"model": model.fingerprint, "features": feature_set.fingerprint()},
    )


def shuffled_label_directions(
    model: LoadedModel,
    feature_set: FeatureSet,
    layers: Sequence[int],
    params: GeometryParams,
    seeds: Sequence[int],
    *,
    store: Store | None = None,
    progress: Progress | None = None,
    device: str = "auto",
) -> dict[int, np.ndarray]:
    """Probe directions trained on shuffled labels, one set per seed: {layer: (S, F, d)}.

    The seed ``params.label_seed`` is read from the layer's probe entry when it is stored; every
    other (layer, seed) is cached on its own, so adding a seed trains only that seed.
    """
    report = progress or silent
    found: dict[tuple[int, int], np.ndarray] = {}
    for layer in layers:
        for seed in seeds:
            if store is None:
                continue
            if seed == params.label_seed:
                entry = store.get(probe_key(model, feature_set, layer, params), stale_as_missing=True)
                if entry is not None:
                    found[(layer, seed)] = entry.arrays["shuffled_directions"]
                    continue
            entry = store.get(_shuffled_key(model, feature_set, layer, params, seed), stale_as_missing=True)
            if entry is not None:
                found[(layer, seed)] = entry.arrays["directions"]
    # Seeds missing at the same layers are trained together, as one problem.
    by_layers: dict[tuple[int, ...], list[int]] = {}
    for seed in seeds:
        todo = tuple(layer for layer in layers if (layer, seed) not in found)
        if todo:
            by_layers.setdefault(todo, []).append(seed)
    for k, (todo, group) in enumerate(by_layers.items()):
        report(k / len(by_layers), f"probes on shuffled labels, seeds {', '.join(map(str, group))}")
        activations = extract(model, feature_set, list(todo), params.hook, store=store)
        background = background_activations(model, list(todo), params, store)
        for seed, trained in zip(group, shuffled_label_directions_of(activations, feature_set, params, group, device, background)):
            for i, layer in enumerate(trained.layers):
                found[(layer, seed)] = trained.directions[i]
                if store is not None:
                    store.put(
                        _shuffled_key(model, feature_set, layer, params, seed),
                        {"directions": trained.directions[i], "test_accuracy": trained.test_accuracy[i]},
                        {"model": model.name, "feature_set": feature_set.name, "layer": layer, "label_seed": seed},
                    )
    report(1.0, "shuffled-label probes ready")
    return {layer: np.stack([found[(layer, seed)] for seed in seeds]) for layer in layers}


def layer_controls(
    result: GeometryResult,
    layer: int,
    kept: Sequence[int],
    controls: ControlParams,
    shuffled: np.ndarray | None = None,
) -> LayerControls:
    """The real PSMs of one layer and its controls' PSMs per seed, over the ``kept`` features.

    ``shuffled`` (S, F, d): the shuffled-label directions of this layer (``shuffled_label_directions``);
    leave it out (or turn the control off) for real and permuted only. The permuted control of
    seed 0 is the one the Feature geometry page shows.
    """
    i = result.layers.index(layer)
    keep = list(kept)
    names = [result.feature_names[k] for k in keep]
    rbf_c = result.params.rbf_c
    every = result.directions["real"][i]
    real = every[keep]

    def psms_of(directions: np.ndarray) -> dict[str, np.ndarray]:
        return {kind: psm(directions, kind, rbf_c) for kind in KINDS}

    targets: dict[str, list[dict[str, np.ndarray]]] = {"real": [psms_of(real)]}
    targets["permuted"] = [
        psms_of(permuted_control(every, result.params.permutation_seed + layer + k * PERMUTATION_STRIDE)[keep])
        for k in range(controls.permutation_seeds)
    ]
    if controls.shuffled_labels and shuffled is not None:
        targets["shuffled_labels"] = [psms_of(directions[keep]) for directions in shuffled]
    return LayerControls(layer=layer, names=names, targets=targets)


def controls_by_layer(
    model: LoadedModel,
    feature_set: FeatureSet,
    layers: Sequence[int],
    params: GeometryParams,
    controls: ControlParams,
    *,
    dedup_threshold: float | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    device: str = "auto",
) -> tuple[GeometryResult, list[LayerControls], dict[int, list[tuple[int, int, float]]]]:
    """The probes (cached), the shuffled-label probes of every seed (cached) and each layer's
    targets, de-duplicated on the real cosine PSM when ``dedup_threshold`` is given. Returns the
    geometry result, the targets per layer, and per layer the dropped (index, kept twin, cosine)."""
    from featgeom_core.probing.pipeline import feature_geometry

    report = progress or silent
    result = feature_geometry(model, feature_set, layers, params, store=store, device=device, progress=lambda f, m, *_: report(0.6 * f, m))
    shuffled: dict[int, np.ndarray] = {}
    if controls.shuffled_labels:
        shuffled = shuffled_label_directions(
            model,
            feature_set,
            result.layers,
            params,
            label_seeds(params, controls),
            store=store,
            device=device,
            progress=lambda f, m, *_: report(0.6 + 0.4 * f, m),
        )
    kept, dropped = result.deduplicated(dedup_threshold)
    by_layer = [layer_controls(result, layer, kept[i], controls, shuffled.get(layer)) for i, layer in enumerate(result.layers)]
    return result, by_layer, {layer: dropped[i] for i, layer in enumerate(result.layers)}
