"""The energy pages' target: the Feature geometry page's current choice at one layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from featgeom_core.feature_geometry import GeometryParams, energy_targets, feature_geometry
from ui.resources import cached_store


@dataclass
class EnergyTarget:
    """PSMs of the chosen layer's probe directions (and the permuted control), de-duplicated as chosen."""

    label: str
    names: list[str]
    targets: dict[str, dict[str, np.ndarray]]


def choose_target(selection) -> EnergyTarget | None:
    """Layer picker + the geometry result (from the cache, or computed with progress)."""
    if selection.model is None or selection.feature_set is None or not selection.layers:
        st.info("Pick a model, a feature set and at least one layer in the sidebar.")
        return None
    layer = st.selectbox("Layer", selection.layers, key="energy_layer", format_func=lambda l: f"layer {l}")
    progress = st.progress(0.0, "probe directions…")
    result = feature_geometry(
        selection.model, selection.feature_set, [layer], GeometryParams(hook=selection.hook), store=cached_store(),
        progress=lambda f, m: progress.progress(min(max(f, 0.0), 1.0), m),
    )
    progress.empty()
    threshold = st.session_state.get("threshold", 0.9) if st.session_state.get("dedup") else None
    kept, dropped = result.deduplicated(threshold)
    if dropped[0]:
        st.caption(f"De-duplication (cosine > {threshold:g}, set on the Feature geometry page) dropped "
                   + ", ".join(result.feature_names[a] for a, _, _ in dropped[0]))
    names = [result.feature_names[k] for k in kept[0]]
    if len(names) < 3:
        st.warning(f"Only {len(names)} features: the energy analyses need at least 3.")
        return None
    label = f"{selection.model_id} · {selection.feature_set_name} · layer {layer} · {selection.hook}"
    return EnergyTarget(label=label, names=names, targets=energy_targets(result, layer, kept[0]))
