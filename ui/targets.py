"""The energy pages' targets: the Feature geometry page's current choice at one or more layers,
with its controls (the permuted control and the shuffled-label control, several seeds each)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from featgeom_core.probing import GeometryParams
from featgeom_core.probing.controls import controls_by_layer
from featgeom_core.probing.params import ControlParams
from featgeom_core.probing.result import LayerControls
from ui.report import warn
from ui.resources import cached_store
from ui.state import adopt_url, flag, keep_valid, list_of, publish_fields, set_query

MIN_FEATURES = 3


@dataclass(frozen=True)
class EnergyTarget(LayerControls):
    """One layer's targets (see ``LayerControls``) with a label naming model, features, layer and hook."""

    label: str = ""
    warning: str | None = None
    """Why these probes' geometry may be the probing construction (probes not beating chance); None when they beat it."""


def layer_targets(selection, layers: list[int], controls: ControlParams) -> list[EnergyTarget]:
    """The probes for ``layers`` (from the cache, or computed with progress) and the shuffled-label
    probes of every seed, as one target per layer; layers left with fewer than 3 features after
    de-duplication are skipped with a warning."""
    adopt_url("dedup", flag)  # a link (a finding's, say) may ask for the Feature geometry page's de-duplication
    adopt_url("threshold", float)
    threshold = st.session_state.get("threshold", 0.9) if st.session_state.get("dedup") else None
    if threshold is not None:
        set_query(dedup="1", threshold=f"{threshold:g}")
    progress = st.progress(0.0, "probe directions…")
    result, by_layer, dropped = controls_by_layer(
        selection.model,
        selection.feature_set,
        layers,
        GeometryParams(hook=selection.hook, estimator=st.session_state.get("estimator", "logistic")),
        controls,
        dedup_threshold=threshold,
        store=cached_store(),
        progress=lambda f, m, *_: None if progress.progress(min(max(f, 0.0), 1.0), m) else None,
    )
    progress.empty()
    warning = result.warning()
    if warning:
        warn(st, warning)
    targets = []
    for found in by_layer:
        if dropped[found.layer]:
            st.caption(
                f"Layer {found.layer}: de-duplication (cosine > {threshold:g}; the Feature geometry page changes it) dropped "
                + ", ".join(result.feature_names[a] for a, _, _ in dropped[found.layer])
            )
        if len(found.names) < MIN_FEATURES:
            st.warning(f"Layer {found.layer}: only {len(found.names)} features; the energy analyses need at least {MIN_FEATURES}.")
            continue
        estimator = st.session_state.get("estimator", "logistic")
        label = f"{selection.model_id} · {selection.feature_set_name} · layer {found.layer} · {selection.hook}" + (
            "" if estimator == "logistic" else f" · {estimator}"
        )
        targets.append(EnergyTarget(layer=found.layer, names=found.names, targets=found.targets, label=label, warning=warning))
    return targets


def _have_selection(selection) -> bool:
    if selection.model is None or selection.feature_set is None or not selection.layers:
        st.info("Pick a model, a feature set and at least one layer in the sidebar.")
        return False
    return True


def choose_target(selection, controls: ControlParams) -> EnergyTarget | None:
    """Layer picker + that layer's target."""
    if not _have_selection(selection):
        return None
    adopt_url("energy_layer", int)
    keep_valid("energy_layer", selection.layers)
    layer = st.selectbox("Layer", selection.layers, key="energy_layer", format_func=lambda layer: f"layer {layer}")
    publish_fields(["energy_layer"])
    found = layer_targets(selection, [layer], controls)
    return found[0] if found else None


def choose_targets(selection, controls: ControlParams) -> list[EnergyTarget]:
    """Layers picker (default: every layer chosen in the sidebar) + one target per layer."""
    if not _have_selection(selection):
        return []
    adopt_url("energy_layers", list_of(int))
    keep_valid("energy_layers", selection.layers)
    layers = st.multiselect(
        "Layers",
        selection.layers,
        default=None if "energy_layers" in st.session_state else selection.layers,
        key="energy_layers",
        format_func=lambda layer: f"layer {layer}",
    )
    publish_fields(["energy_layers"])
    if not layers:
        st.info("Choose at least one layer.")
        return []
    return layer_targets(selection, sorted(layers), controls)
