"""Direction sets from the results other analyses made: a feature set's probes (from the store), a
sparsity job's dictionary, a LIB job's language-block basis; and every set that lives in one
activation space, for the nearest-neighbour view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.features.directions import DirectionSet, Space, atom_set, lib_set, lib_vectors, probe_set, space_of_node_layer
from featgeom_core.features.ref import FeatureRef
from featgeom_core.models import LoadedModel
from featgeom_core.sparsity.model import set_layer
from featgeom_core.store import Store

DEFAULT_PROBE_HOOK = "resid_post"


def probe_params(hook: str):
    """The geometry settings a feature page's probes use: the thesis's logistic probes at ``hook``."""
    from featgeom_core.probing.params import GeometryParams

    return GeometryParams(hook=hook)


def probe_directions(model: LoadedModel, ref: FeatureRef, store: Store | None, compute: bool = True, progress=None) -> DirectionSet | None:
    """The probe directions of ``ref``'s feature set at its layer and hook, from ``store`` (trained
    there first when ``compute``; None when not stored and not ``compute``)."""
    from featgeom_core.data.registry import load_feature_set
    from featgeom_core.probing.pipeline import feature_geometry, probe_key

    if not ref.features:
        raise InvalidParameter("a probe feature needs its feature set (features=...)")
    hook = ref.hook or DEFAULT_PROBE_HOOK
    layer = ref.layer_number()
    feature_set = load_feature_set(ref.features, tokenizer=model.tokenizer)
    params = probe_params(hook)
    if not compute:
        cached = store.get(probe_key(model, feature_set, layer, params), stale_as_missing=True) if store is not None else None
        if cached is None:
            return None
        directions, bias = cached.arrays["directions"], cached.arrays["bias"]
        quality, warning = None, ""
    else:
        result = feature_geometry(model, feature_set, [layer], params, store=store, progress=progress)  # stores the layer's probes
        directions = result.directions["real"][0]
        stored = store.get(probe_key(model, feature_set, layer, params), stale_as_missing=True) if store is not None else None
        bias = stored.arrays["bias"] if stored is not None else np.zeros(feature_set.n_features)  # the geometry keeps no biases
        quality, warning = result.quality[0], result.warning() or ""
    template = FeatureRef("probe", 0, model=ref.model, layer=str(layer), features=ref.features, hook=hook)
    return probe_set(template, Space(ref.model, hook, layer), feature_set.feature_names, directions, bias, quality, warning)


def atom_layer(set_name: str) -> int:
    """A sparsity result's activation set name as a layer: ``layer 6`` -> 6, ``embeddings`` -> -1."""
    return set_layer(set_name)


def set_name_of(layer: str) -> str:
    """The activation set a feature link's ``layer`` names (``6`` -> ``layer 6``, ``embeddings``)."""
    return "embeddings" if layer in ("embeddings", "-1") else f"layer {int(layer)}"


def atom_directions(result: Any, job_id: str, model_id: str, set_name: str) -> DirectionSet:
    """The atoms of one activation set of a sparsity-by-layer result (``ModelSparsityResult``)."""
    chosen = result.set(set_name)
    layer = atom_layer(set_name)
    hook = "resid_post" if layer < 0 else result.hook
    template = FeatureRef("atom", 0, model=model_id, layer="embeddings" if layer < 0 else str(layer), job=job_id)
    return atom_set(template, Space(model_id, hook, layer), chosen.code.dictionary, chosen.usage)


def lib_directions(result: Any, job_id: str, model_id: str, k: int, d_model: int, d_mlp: int) -> DirectionSet | None:
    """Node layer ``k``'s directions of a language-block LIB result in its activation space, or None
    where that node layer is no plain hook (the middle residual, a toy's layers)."""
    graph = result.results["lib"].graph
    if not 0 <= k < len(graph.node_layers):
        raise InvalidParameter(f"node layer {k}: this graph has 0..{len(graph.node_layers) - 1}")
    name = graph.node_layers[k]
    space = space_of_node_layer(model_id, name)
    vectors = lib_vectors(graph.bases[k].C.double().numpy(), name, d_model, d_mlp)
    if space is None or vectors is None:
        return None
    template = FeatureRef("lib", 0, model=model_id, layer=str(k), job=job_id)
    return lib_set(template, space, vectors, graph.bases[k].values.double().numpy(), name)


def sets_in_space(
    space: Space,
    model: LoadedModel,
    store: Store | None,
    load_sparsity: Callable[[str], Any],
    load_graph: Callable[[str], Any],
) -> list[DirectionSet]:
    """Every direction set of ``space`` this lab holds: the probes of each named feature set stored
    at that layer and hook (default settings), the dictionaries of finished sparsity jobs of the
    model at that layer, and the LIB bases of finished language-block jobs whose node layers are it.
    ``load_sparsity``/``load_graph``: job id -> result (the caller's cache)."""
    from featgeom_core.data.registry import list_feature_sets
    from featgeom_core.interaction.jobs import LIB_GRAPH
    from featgeom_core.sparsity.jobs import SPARSITY_MODEL

    sets: list[DirectionSet] = []
    if space.layer >= 0:
        for info in list_feature_sets():
            ref = FeatureRef("probe", 0, model=space.model, layer=str(space.layer), features=info.name, hook=space.hook)
            found = probe_directions(model, ref, store, compute=False)
            if found is not None:
                sets.append(found)
    for record in SPARSITY_MODEL.finished(store):
        params = record.params
        if params.get("model") != space.model or (space.layer >= 0 and params.get("hook") != space.hook):
            continue
        result = load_sparsity(record.job_id)
        name = "embeddings" if space.layer < 0 else f"layer {space.layer}"
        if name in [s.name for s in result.sets]:
            sets.append(atom_directions(result, record.job_id, space.model, name))
    for record in LIB_GRAPH.finished(store):
        target = record.params.get("target", {})
        if target.get("kind") != "language" or target.get("model") != space.model:
            continue
        result = load_graph(record.job_id)
        if "lib" not in result.results:
            continue
        for k, name in enumerate(result.results["lib"].graph.node_layers):
            if space_of_node_layer(space.model, name) == space:
                found = lib_directions(result, record.job_id, space.model, k, model.d_model, model.d_mlp)
                if found is not None:
                    sets.append(found)
    return sets
