"""Sparsity — by layer: the normalised loss and S₁ of the token embeddings and every layer of the
chosen model on real text (the paper's section 4), beside the synthetic calibration (which a of
sparse-linear data scores the same) and the Gaussian control; two results overlaid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from featgeom_core import codec, jobs
from featgeom_core.errors import FeatgeomError
from featgeom_core.sparsity.estimate import estimated_seconds, say_duration
from featgeom_core.sparsity.jobs import SPARSITY_MODEL
from featgeom_core.sparsity.params import ModelSparsityParams, SparseCodingParams
from featgeom_core.sparsity.run import calibration_stored
from ui import params as widgets
from ui.errors import render_safely
from ui.jobs import adopt_job_from_url, show_when_done
from ui.links import link
from ui.report import chart
from ui.resources import cached_store
from ui.sparsity_plots import metric_by_layer
from ui.state import adopt_url, one_of, require_selection, set_query

RECIPE_LABELS = {
    "lab": "the lab's: adaptive λ, the dictionary size below",
    "appendix_h": "the paper's Appendix H: 16d, λ 0.1 in training, decomposed at ≥ 98% variance",
}
HOOK_LABELS = {"resid_post": "residual stream after each block", "mlp_post": "MLP hidden activations"}


def settings(selection) -> dict:
    """The job's params from the sidebar (model, layers) and the page's widgets (mirrored in the URL)."""
    adopt_url("act", one_of(HOOK_LABELS), "sl_hook")
    adopt_url("method", one_of(("greedy", "fista")), "sl_method")
    adopt_url("dict", float, "sl_multiple")
    adopt_url("tokens", int, "sl_tokens")
    adopt_url("recipe", one_of(RECIPE_LABELS), "sl_recipe")
    recipe = widgets.selectbox(ModelSparsityParams, "recipe", "Recipe", "sl_recipe", format_func=RECIPE_LABELS.get)
    c1, c2, c3, c4 = st.columns(4)
    hook = widgets.selectbox(ModelSparsityParams, "hook", "Activations", "sl_hook", container=c1, format_func=HOOK_LABELS.get)
    tokens = widgets.number_input(ModelSparsityParams, "tokens", "held-out tokens", "sl_tokens", container=c2)
    multiple = widgets.number_input(
        SparseCodingParams,
        "dictionary_multiple",
        "dictionary size (× d)",
        "sl_multiple",
        container=c3,
        disabled=recipe == "appendix_h",  # the recipe's 16d
    )
    method = widgets.selectbox(SparseCodingParams, "method", "Coefficient step", "sl_method", container=c4)
    c5, c6 = st.columns(2)
    st.session_state.setdefault("sl_embeddings", True)
    st.session_state.setdefault("sl_calibrate", True)
    embeddings = c5.toggle("Token embeddings too", key="sl_embeddings", help=widgets.help_text(ModelSparsityParams, "embeddings"))
    calibrate = c6.toggle(
        "Synthetic calibration and Gaussian control", key="sl_calibrate", help=widgets.help_text(ModelSparsityParams, "calibrate")
    )
    set_query(act=hook, tokens=str(int(tokens)), dict=f"{multiple:g}", method=method, recipe=recipe)
    return {
        "model": selection.model_id,
        "hook": hook,
        "layers": selection.layers,
        "embeddings": embeddings,
        "tokens": int(tokens),
        "calibrate": calibrate,
        "recipe": recipe,
        "coding": {"dictionary_multiple": float(multiple), "method": method},
    }


def _label(record: jobs.JobRecord) -> str:
    p = record.params
    return (
        f"{p['model']} · {p['hook']} · dictionary {p['coding']['dictionary_multiple']:g}d · {p['coding']['method']} ({record.job_id[:8]})"
    )


def _table(result) -> pd.DataFrame:
    rows = []
    for s in result.sets:
        rows.append(
            {
                "set": s.name,
                "normalized loss": s.metrics["normalized_loss"],
                "S_p": s.metrics["s_p"],
                "N0": s.metrics["n0"],
                "explained variance": s.metrics["explained_variance"],
                "like sparse-linear a ≈": s.calibrated_a,
                "dead atoms": int(s.metrics["dead_atoms"]),
                "always-on atoms": int(s.metrics["always_on_atoms"]),
                "λ": s.metrics["lambda"],
            }
        )
    return pd.DataFrame(rows)


def _npz(result) -> bytes:
    return codec.npz_bytes(result, {"set_names": np.asarray([s.name for s in result.sets])})


def show(job_id: str) -> None:
    """Metrics by layer (with a second result overlaid if chosen), the table and downloads."""
    result = SPARSITY_MODEL.load(job_id)
    record = jobs.status(job_id)
    others = [r for r in SPARSITY_MODEL.finished() if r.job_id != job_id]
    compare = st.selectbox(
        "Overlay another result",
        [None] + [r.job_id for r in others],
        key="sl_compare",
        format_func=lambda j: "—" if j is None else _label(next(r for r in others if r.job_id == j)),
    )
    shown = [(_label(record), result)] + ([(_label(jobs.status(compare)), SPARSITY_MODEL.load(compare))] if compare else [])
    gaussian = next((r for r in result.calibration if r["dataset"] == "gaussian"), None)
    layer_sets = [s for s in result.sets if s.name != "embeddings"]
    if layer_sets:
        first, last = layer_sets[0], layer_sets[-1]
        inner = layer_sets[1:-1]
        sparsest = min(result.sets, key=lambda s: s.metrics["normalized_loss"])
        st.markdown(
            f"**Reading.** Lower is sparser. The sparsest set here is **{sparsest.name}** (L_norm "
            f"{sparsest.metrics['normalized_loss']:.2f})"
            + (f"; the Gaussian control at the same d scores {gaussian['normalized_loss']:.2f}" if gaussian else "")
            + (
                f". First and last layers: {first.metrics['normalized_loss']:.2f} and {last.metrics['normalized_loss']:.2f}; the layers "
                "between "
                f"range {min(s.metrics['normalized_loss'] for s in inner):.2f}–{max(s.metrics['normalized_loss'] for s in inner):.2f} "
                "(the paper reports the first and last layers as the sparsest)."
                if inner
                else "."
            )
        )
    left, right = st.columns(2)
    chart(left, metric_by_layer(shown, "normalized_loss", result.calibration), key="sl_lnorm")
    chart(right, metric_by_layer(shown, "s_p", result.calibration), key="sl_sp")
    left, right = st.columns(2)
    chart(left, metric_by_layer(shown, "explained_variance"), key="sl_ev")
    chart(right, metric_by_layer(shown, "n0"), key="sl_n0")
    table = _table(result)
    st.dataframe(table, hide_index=True)
    st.caption(
        "Dead atoms: used by no held-out token; always-on: used by more than half. 'Like sparse-linear a': the a whose "
        "synthetic data (same d, same number of activations, same coding) has the same normalised loss."
    )
    if result.calibration:
        with st.expander("Calibration rows"):
            st.dataframe(
                pd.DataFrame([{k: v for k, v in r.items() if k not in ("histogram", "histogram_edges")} for r in result.calibration]),
                hide_index=True,
            )
    a, b = st.columns(2)
    a.download_button("Metrics (CSV)", table.to_csv(index=False), "sparsity_by_layer.csv", "text/csv")
    b.download_button("Dictionaries and codes (NPZ)", _npz(result), "sparsity_dictionaries.npz", "application/octet-stream")
    link("pages/dictionary_explorer.py", "Explore these dictionaries", {"job": job_id})


def _say_how_long(params: dict, model) -> None:
    """The job's length on this lab's 2-core CPU, before the click (nothing when the settings do not validate)."""
    try:
        checked = ModelSparsityParams.model_validate(params)
        width = model.d_model if checked.hook == "resid_post" else model.d_mlp
        widths = {width} | ({model.d_model} if checked.embeddings else set())
        stored = checked.calibrate and calibration_stored(checked, widths, cached_store())
        seconds = estimated_seconds(checked, width, model.n_layers, calibration_stored=stored)
    except (ValueError, FeatgeomError):
        return
    st.caption(
        f"These settings take {say_duration(seconds)} on a 2-core CPU (measured there: MiniLM's defaults 271 s, SmolLM2's "
        "745 s); a GPU, fewer tokens or layers, or no calibration take less."
        + (" The calibration at this width is stored from an earlier job: it is read, not run." if stored else "")
    )


def render() -> None:
    selection = require_selection()
    st.title("Sparsity — by layer")
    st.caption(
        "Deng, Tao and Benton 2023, section 4: a dictionary of 8d atoms per activation set, fitted on fresh text every "
        "iteration and measured on held-out tokens from the packaged news, reviews and code."
    )
    adopt_job_from_url(SPARSITY_MODEL.name, "sl_job")
    if selection.model is not None:
        params = settings(selection)
        _say_how_long(params, selection.model)
        if st.button("Run as a job", type="primary", key="sl_run", disabled=not selection.layers):
            st.session_state["sl_job"] = SPARSITY_MODEL.submit(params).job_id
            set_query(job=st.session_state["sl_job"])
    show_when_done(
        st.session_state.get("sl_job"),
        show,
        "Choose the model and layers in the sidebar and run; the job measures every layer (minutes on a CPU).",
    )


render_safely(render)
