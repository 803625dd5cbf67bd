"""Feature geometry: probe accuracy per feature and layer; PSMs of the directions beside their controls."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from featgeom_core import jobs
from featgeom_core.features.ref import FeatureRef
from featgeom_core.probing import (
    CONTROLS,
    KINDS,
    DedupParams,
    GeometryParams,
    GeometryResult,
    cached_layers,
    feature_geometry,
)
from featgeom_core.probing.jobs import FEATURE_GEOMETRY
from featgeom_core.probing.params import ESTIMATORS
from ui.errors import render_safely
from ui.feature_view import feature_link
from ui.links import link
from ui.params import help_text, slider
from ui.plots import psm_heatmap
from ui.report import chart, warn
from ui.resources import cached_store
from ui.state import adopt_url, flag, keep_valid, one_of, require_selection, set_query

CONTROL_TITLES = {"real": "probe directions", "permuted": "permuted control", "shuffled_labels": "shuffled-label control"}


def _dedup_controls() -> float | None:
    adopt_url("dedup", flag)
    adopt_url("threshold", float)
    st.session_state.setdefault("dedup", False)
    left, right = st.columns([1, 3])
    enabled = left.toggle("De-duplicate", key="dedup", help=help_text(DedupParams, "threshold"))
    threshold = slider(DedupParams, "threshold", "Cosine threshold", "threshold", container=right, disabled=not enabled)
    set_query(dedup="1" if enabled else "0", threshold=f"{threshold:g}")
    return threshold if enabled else None


ESTIMATOR_TITLES = {"logistic": "logistic probes (the thesis)", "class_mean": "class means, whitened (Park et al. 2024)"}


def _estimator_control() -> str:
    """How the directions are estimated (kept in the URL as ``estimator``)."""
    adopt_url("estimator", one_of(ESTIMATORS))
    st.session_state.setdefault("estimator", "logistic")
    estimator = (
        st.segmented_control(
            "Directions",
            ESTIMATORS,
            key="estimator",
            format_func=ESTIMATOR_TITLES.get,
            help=help_text(GeometryParams, "estimator"),
        )
        or "logistic"
    )
    set_query(estimator=estimator)
    return estimator


def _layer_picker(layers: tuple[int, ...]) -> int:
    """One layer's heatmaps at a time (drawing every layer's 6 charts made a cached view slow)."""
    adopt_url("layer", int, "view_layer")
    keep_valid("view_layer", layers)
    if st.session_state.get("view_layer") not in layers:
        st.session_state["view_layer"] = layers[0]
    layer = st.segmented_control("Layer", layers, key="view_layer", format_func=lambda layer: f"layer {layer}") or layers[0]
    set_query(layer=str(layer))
    return layer


def _quality_table(result: GeometryResult) -> pd.DataFrame:
    """Per layer: the held-out figures beside chance and the majority baseline."""
    multiclass = bool(result.quality) and result.quality[0].kind == "multiclass"
    rows = {
        f"layer {q.layer}": {
            ("balanced accuracy (K-way)" if multiclass else "balanced accuracy (mean)"): q.balanced_accuracy,
            "chance": q.chance,
            "needed to beat chance": q.threshold,
            "accuracy": q.accuracy,
            "always the commonest answer": q.majority,
            "beats chance": "yes" if q.encoded else "no",
            **({} if multiclass else {"features not above chance": ", ".join(q.weak_features) or "none"}),
        }
        for q in result.quality
    }
    return pd.DataFrame(rows).T


def _accuracy_table(result: GeometryResult) -> pd.DataFrame:
    columns = {}
    if result.quality:
        columns["always 'no'/'yes'"] = result.quality[0].feature_majority
    for i, layer in enumerate(result.layers):
        columns[f"L{layer} acc"] = result.test_accuracy[i]
        columns[f"L{layer} bal. acc"] = result.test_balanced_accuracy[i]
        columns[f"L{layer} shuffled"] = result.shuffled_test_accuracy[i]
    return pd.DataFrame(columns, index=pd.Index(result.feature_names, name="feature"))


def _summary_table(result: GeometryResult) -> pd.DataFrame:
    rows = {}
    for kind in KINDS:
        for control in CONTROLS:
            rows[f"mean off-diag {kind}, {control}"] = result.mean_off_diagonal(kind, control)
        rows[f"|real − shuffled| {kind}"] = result.departure(kind)
    return pd.DataFrame(rows, index=pd.Index([f"layer {layer}" for layer in result.layers], name="layer")).T


def _follow_background_job(selection, missing: list[int], estimator: str) -> None:
    """Submit the uncached layers as a job (idempotent) and show its progress until it is done."""
    job_id = FEATURE_GEOMETRY.submit(
        {
            "model": selection.model_id,
            "feature_set": selection.feature_set_name,
            "layers": missing,
            "hook": selection.hook,
            "estimator": estimator,
        }
    ).job_id
    st.info(f"Layers {missing} are computing as background job `{job_id}`; keep using the app. This page shows the result when it is done.")
    link("pages/jobs.py", "See all jobs")

    @st.fragment(run_every=1.0)
    def poll() -> None:
        record = jobs.status(job_id)
        st.progress(record.progress, f"{record.status}: {record.message}")
        if record.status == "done":
            st.rerun()
        elif record.status in ("failed", "cancelled", "interrupted"):
            st.error(f"Job {job_id} {record.status}" + (f": {record.error}" if record.error else ""))

    poll()


def render() -> None:
    selection = require_selection()
    st.title("Feature geometry")
    if selection.model is None or selection.feature_set is None:
        st.info("Pick a model and a feature set that load (see the sidebar).")
        return
    if not selection.layers:
        st.warning("Choose at least one layer in the sidebar.")
        return
    feature_set = selection.feature_set
    st.caption(f"{selection.model_id} · {feature_set.name}: {feature_set.description} · {selection.hook} · layers {selection.layers}")
    if feature_set.notes:
        st.info("Not probed here: " + "; ".join(f"**{name}**: {why}" for name, why in feature_set.notes.items()))
    threshold = _dedup_controls()
    estimator = _estimator_control()

    params = GeometryParams(hook=selection.hook, estimator=estimator)
    if selection.background and not selection.feature_set_name.startswith("upload:"):
        done = cached_layers(selection.model, feature_set, selection.layers, params, cached_store())
        missing = [layer for layer in selection.layers if layer not in done]
        if missing:
            _follow_background_job(selection, missing, estimator)
            return
    progress = st.progress(0.0, "starting…")
    result = feature_geometry(
        selection.model,
        feature_set,
        selection.layers,
        params,
        store=cached_store(),
        progress=lambda fraction, message, *_: None if progress.progress(min(max(fraction, 0.0), 1.0), message) else None,
    )
    progress.empty()
    warning = result.warning()
    if warning:
        warn(st, warning)

    st.subheader("Does the model encode these features?")
    st.caption(
        "Held-out balanced accuracy beside chance (what any guess that ignores the input gets) and the majority baseline "
        "(always the commonest answer). For a multi-class set the class is the argmax of the one-vs-rest probes. "
        "Beating chance needs a lift of a fifth of the way to perfect and 3 standard errors."
    )
    st.dataframe(_quality_table(result).style.format(lambda v: f"{v:.3f}" if isinstance(v, float) else v), width="stretch")

    st.subheader("Held-out probe accuracy")
    st.caption(
        "L2 logistic regression per feature (one-vs-rest, balanced class weights, C=1, 70/30 split by text). "
        "'always no/yes' is the accuracy of always giving the commoner answer; 'shuffled' is the same probe trained on "
        "shuffled labels: chance level."
    )
    st.dataframe(_accuracy_table(result).style.format("{:.3f}"), width="stretch")

    st.subheader("Real against controls")
    st.caption(
        "With balanced one-vs-rest classes, K probe directions sit near a simplex (cosine ≈ −1/(K−1)) whatever "
        "the model knows; the shuffled-label control shows that baseline, the permuted control cannot."
    )
    st.dataframe(_summary_table(result).style.format("{:.3f}"), width="stretch")

    kept, dropped = result.deduplicated(threshold)
    layer = _layer_picker(result.layers)
    i = result.layers.index(layer)
    names = [result.feature_names[k] for k in kept[i]]
    if dropped[i]:
        st.caption(
            "Dropped as duplicates: "
            + ", ".join(f"{result.feature_names[a]} (≈ {result.feature_names[b]}, {v:.3f})" for a, b, v in dropped[i])
        )
    opened = st.selectbox("A direction's feature page", names, key="geo_feature", help="its top contexts, histogram, your text, neighbours")
    index = result.feature_names.index(opened)
    feature_link(FeatureRef("probe", index, model=selection.model_id, layer=str(layer), features=feature_set.name, hook=selection.hook))
    for kind in KINDS:
        for column, control in zip(st.columns(3), CONTROLS):
            matrix = result.psms[(kind, control)][i][kept[i]][:, kept[i]]
            chart(
                column,
                psm_heatmap(matrix, names, f"layer {layer} · {kind} · {CONTROL_TITLES[control]}", kind),
                width="stretch",
                key=f"psm-{kind}-{control}",
            )

    st.subheader("Downloads")
    slug = f"{selection.model_id.replace('/', '_')}_{feature_set.name.replace(':', '_')}"
    a, b, c = st.columns(3)
    a.download_button("PSMs (CSV)", result.psm_csv(), f"{slug}_psms.csv", "text/csv")
    b.download_button("Directions (NPZ)", result.directions_npz(), f"{slug}_directions.npz", "application/octet-stream")
    c.download_button(
        "Settings (JSON)",
        json.dumps({**result.settings(), "dedup_threshold": threshold}, indent=2),
        f"{slug}_settings.json",
        "application/json",
    )


render_safely(render)
