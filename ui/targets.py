"""The energy pages' targets: the Feature geometry page's current choice, at one or more layers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from featgeom_core.probing import GeometryParams, feature_geometry
from ui.resources import cached_store

MIN_FEATURES = 3


@dataclass
class EnergyTarget:
    """PSMs of one layer's probe directions (and the permuted control), de-duplicated as chosen."""

    label: str
    layer: int
    names: list[str]
    targets: dict[str, dict[str, np.ndarray]]


def layer_targets(selection, layers: list[int]) -> list[EnergyTarget]:
    """The geometry result for ``layers`` (from the cache, or computed with progress), as one
    target per layer; layers left with fewer than 3 features after de-duplication are skipped
    with a warning."""
    progress = st.progress(0.0, "probe directions…")
    result = feature_geometry(
        selection.model, selection.feature_set, layers, GeometryParams(hook=selection.hook), store=cached_store(),
        progress=lambda f, m: progress.progress(min(max(f, 0.0), 1.0), m),
    )
    progress.empty()
    threshold = st.session_state.get("threshold", 0.9) if st.session_state.get("dedup") else None
    kept, dropped = result.deduplicated(threshold)
    targets = []
    for i, layer in enumerate(result.layers):
        if dropped[i]:
            st.caption(f"Layer {layer}: de-duplication (cosine > {threshold:g}, set on the Feature geometry page) dropped "
                       + ", ".join(result.feature_names[a] for a, _, _ in dropped[i]))
        names = [result.feature_names[k] for k in kept[i]]
        if len(names) < MIN_FEATURES:
            st.warning(f"Layer {layer}: only {len(names)} features; the energy analyses need at least {MIN_FEATURES}.")
            continue
        label = f"{selection.model_id} · {selection.feature_set_name} · layer {layer} · {selection.hook}"
        targets.append(EnergyTarget(label=label, layer=layer, names=names, targets=result.psms_at(layer, kept[i])))
    return targets


def _have_selection(selection) -> bool:
    if selection.model is None or selection.feature_set is None or not selection.layers:
        st.info("Pick a model, a feature set and at least one layer in the sidebar.")
        return False
    return True


def choose_target(selection) -> EnergyTarget | None:
    """Layer picker + that layer's target."""
    if not _have_selection(selection):
        return None
    layer = st.selectbox("Layer", selection.layers, key="energy_layer", format_func=lambda l: f"layer {l}")
    found = layer_targets(selection, [layer])
    return found[0] if found else None


def choose_targets(selection) -> list[EnergyTarget]:
    """Layers picker (default: every layer chosen in the sidebar) + one target per layer."""
    if not _have_selection(selection):
        return []
    layers = st.multiselect("Layers", selection.layers, default=selection.layers, key="energy_layers", format_func=lambda l: f"layer {l}")
    if not layers:
        st.info("Choose at least one layer.")
        return []
    return layer_targets(selection, sorted(layers))
