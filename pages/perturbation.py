"""Perturbation analysis and the hyper-parameter search: distance after re-optimisation against σ
for the real targets against the permuted and the shuffled-label controls (bands over seeds and
noise draws), a per-layer summary with intervals, and the best abstract PSM per (layer, similarity,
kernel)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from featgeom_core import codec
from featgeom_core.energy.controls import (
    CONTROLS,
    control_summary,
    distance_bands,
    joint_error_bands,
    real_below_control_bands,
)
from featgeom_core.energy.jobs import ENERGY_SWEEP
from featgeom_core.energy.params import EnergySweepParams
from featgeom_core.energy.result import EnergySweepResult
from featgeom_core.params import field_spec
from ui import params as widgets
from ui.controls import HOW_TO_READ, control_settings, summary_table
from ui.errors import render_safely
from ui.jobs import follow, job_from_url, show_when_done
from ui.plots import (
    TARGET_LABEL,
    best_error_by_layer,
    distance_by_layer,
    perturbation_plot,
    psm_heatmap,
)
from ui.report import chart, warn
from ui.state import (
    adopt_fields,
    adopt_url,
    keep_valid,
    list_of,
    one_of,
    publish_fields,
    require_selection,
)
from ui.targets import choose_targets

LAMBDA_MENU = (1.0, 10.0, 100.0, 1000.0)
SIGMA_MENU = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


GRID_FIELDS = {  # widget key -> URL parser
    "pert_kernels": list_of(one_of(field_spec(EnergySweepParams, "kernels").choices)),
    "pert_sims": list_of(one_of(field_spec(EnergySweepParams, "similarities").choices)),
    "pert_dims": list_of(int),
    "pert_ld": list_of(float),
    "pert_lx": list_of(float),
    "pert_sigmas": list_of(float),
    "pert_restarts": int,
    "pert_repeats": int,
    "pert_real_draws": int,
}


def grid_params(n_min: int) -> dict:
    """The sweep grid from the page's widgets (bounds, defaults and help from ``EnergySweepParams``;
    dims limited by the smallest layer's N)."""
    adopt_fields(GRID_FIELDS)
    for key, menu in (("pert_dims", range(1, n_min)), ("pert_ld", LAMBDA_MENU), ("pert_lx", LAMBDA_MENU), ("pert_sigmas", SIGMA_MENU)):
        keep_valid(key, menu)
    c1, c2, c3 = st.columns(3)
    kernels = widgets.multiselect(EnergySweepParams, "kernels", "Kernels", "pert_kernels", container=c1)
    similarities = widgets.multiselect(EnergySweepParams, "similarities", "Similarities", "pert_sims", container=c2)
    dims = widgets.multiselect(EnergySweepParams, "dims", "dims", "pert_dims", options=range(1, n_min), container=c3)
    c4, c5, c6 = st.columns(3)
    lambda_d = widgets.multiselect(EnergySweepParams, "lambda_d", "λ_d", "pert_ld", options=LAMBDA_MENU, container=c4)
    lambda_x = widgets.multiselect(EnergySweepParams, "lambda_x", "λ_x", "pert_lx", options=LAMBDA_MENU, container=c5)
    sigmas = widgets.multiselect(EnergySweepParams, "sigmas", "σ", "pert_sigmas", options=SIGMA_MENU, container=c6)
    c7, c8, c9 = st.columns(3)
    restarts = widgets.number_input(EnergySweepParams, "restarts", "restarts", "pert_restarts", container=c7)
    repeats = widgets.number_input(EnergySweepParams, "repeats", "noise draws per σ (each control seed)", "pert_repeats", container=c8)
    real_draws = widgets.number_input(EnergySweepParams, "real_draws", "noise draws per σ (real target)", "pert_real_draws", container=c9)
    publish_fields(GRID_FIELDS)
    return {
        "kernels": kernels,
        "similarities": similarities,
        "dims": dims,
        "lambda_d": lambda_d,
        "lambda_x": lambda_x,
        "sigmas": sigmas,
        "restarts": int(restarts),
        "repeats": int(repeats),
        "real_draws": int(real_draws),
    }


def _best_fit_views(sweep: EnergySweepResult, layer: int | None) -> None:
    """The best abstract PSM per (similarity, kernel) beside its target, for one target's first seed."""
    st.subheader("Best abstract PSM per (layer, similarity, kernel)")
    present = [t for t in ("real", *CONTROLS) if any(b["target"] == t for b in sweep.best)]
    adopt_url("pert_best_target", str)
    keep_valid("pert_best_target", present)
    target_name = (
        st.segmented_control(
            "Target",
            present,
            default=None if "pert_best_target" in st.session_state else "real",
            key="pert_best_target",
            format_func=lambda t: TARGET_LABEL[t],
        )
        or "real"
    )
    publish_fields(["pert_best_target"])
    shown = [b for b in sweep.best if b["layer"] == layer and b["target"] == target_name and b.get("replicate", 0) == 0]
    names = sweep.names.get(str(layer))
    for similarity in sorted({b["similarity"] for b in shown}):
        chosen = sorted((b for b in shown if b["similarity"] == similarity), key=lambda b: b["kernel"])
        columns = st.columns(len(chosen) + 1)
        target = sweep.fits[chosen[0]["best_index"]].target
        labels = names or [str(i) for i in range(len(target))]
        chart(
            columns[0],
            psm_heatmap(target, labels, f"{TARGET_LABEL[target_name]} target ({similarity})", similarity, height=300),
            key=f"pert_target_{similarity}",
        )
        for column, b in zip(columns[1:], chosen):
            title = f"{b['kernel']} · dim {b['dim']} · λ_d {b['lambda_d']:g} · error {b['joint_error']:.2e}"
            chart(
                column,
                psm_heatmap(sweep.fits[b["best_index"]].psm, labels, title, similarity, height=300),
                key=f"pert_best_{similarity}_{b['kernel']}",
            )


def show_sweep(job_id: str) -> None:
    """Curves with control bands, the per-layer summary, best abstract PSMs, tables and downloads."""
    sweep = ENERGY_SWEEP.load(job_id)
    rows = pd.DataFrame(sweep.rows)
    best = pd.DataFrame(sweep.best)
    st.caption(f"Sweep {job_id}: {sweep.label}")
    if sweep.probe_warning:
        warn(st, sweep.probe_warning)
    st.info(HOW_TO_READ)
    layers = sorted({r["layer"] for r in sweep.rows}, key=lambda layer: (layer is None, layer))
    layer = layers[0]
    if len(layers) > 1:
        adopt_url("pert_layer_shown", int)
        keep_valid("pert_layer_shown", layers)
        layer = st.segmented_control(
            "Layer shown",
            layers,
            default=None if "pert_layer_shown" in st.session_state else layers[0],
            key="pert_layer_shown",
            format_func=lambda layer: f"layer {layer}",
        )
        publish_fields(["pert_layer_shown"])
        layer = layers[0] if layer is None else layer  # a deselected segment
    similarities = sorted(rows["similarity"].unique())
    for similarity in similarities:
        chart(st, perturbation_plot(distance_bands(sweep.rows, similarity, layer), similarity), key=f"pert_plot_{similarity}")
        below = real_below_control_bands(sweep.rows, similarity, layer)
        st.caption(
            f"Layer {layer}, {similarity}: the real curve lies below the band of "
            + ", ".join(f"{TARGET_LABEL[c]}: {'yes' if v else 'no'}" for c, v in below.items())
            + " (at every kernel and σ)."
        )

    st.subheader("By layer")
    summary = control_summary(sweep.rows)
    st.caption(
        "Distance after re-optimisation, averaged over kernels and σ at each kernel's best configuration for the real "
        "target; ranges are the central 95% over seeds × noise draws (controls) or draws (real); a difference's range "
        "covers every (real draw, control unit) pair."
    )
    st.dataframe(summary_table(summary), hide_index=True)
    if len(layers) > 1:
        for similarity in similarities:
            chart(st, distance_by_layer(summary, similarity), key=f"pert_by_layer_{similarity}")
        chart(st, best_error_by_layer(joint_error_bands(sweep.best)), key="pert_error_by_layer")

    _best_fit_views(sweep, layer)

    st.subheader("Best configuration per (target, seed, layer, similarity, kernel)")
    st.dataframe(best.drop(columns=["fit", "best_index", "distances"], errors="ignore"), hide_index=True)
    st.subheader("The whole sweep")
    st.dataframe(rows.drop(columns=["fit", "distances"], errors="ignore"), hide_index=True)
    d1, d2, d3, d4 = st.columns(4)
    d1.download_button("Sweep (CSV)", rows.to_csv(index=False), "perturbation_sweep.csv", "text/csv")
    d2.download_button("By-layer summary (CSV)", pd.DataFrame(summary).to_csv(index=False), "perturbation_summary.csv", "text/csv")
    d3.download_button("Best configurations (CSV)", best.to_csv(index=False), "best_configurations.csv", "text/csv")
    d4.download_button("Best fits (NPZ: fits/k/psm, features, weights, target)", codec.npz_bytes(sweep), "best_fits.npz")


def render() -> None:
    selection = require_selection()
    st.title("Perturbation analysis")
    opened = job_from_url(ENERGY_SWEEP.name)  # a stored sweep, from the Jobs page or a shared link: no targets to build
    if opened is not None:
        if follow(opened):
            show_sweep(opened)
        return
    controls = control_settings()
    targets = choose_targets(selection, controls)
    if not targets:
        return
    sizes = sorted({len(t.names) for t in targets})
    n_targets = sum(len(seeds) for seeds in targets[0].targets.values())
    st.caption(
        f"{len(targets)} layer(s), N = {', '.join(map(str, sizes))} features; every grid point is fitted, perturbed and "
        f"re-optimised for {n_targets} targets per layer (the real PSM and every control seed), in one job."
    )
    grid = grid_params(sizes[0])
    label = f"{selection.model_id} · {selection.feature_set_name} · layers {', '.join(str(t.layer) for t in targets)} · {selection.hook}"
    params = {
        "targets": [spec for t in targets for spec in t.sweep_targets(grid["similarities"])],
        **grid,
        "label": label,
        "probe_warning": next((t.warning for t in targets if t.warning), ""),
    }
    ready = all(grid[k] for k in ("kernels", "similarities", "dims", "lambda_d", "lambda_x", "sigmas"))
    if st.button("Run the sweep as a job", type="primary", disabled=not ready, key="pert_run"):
        st.session_state["pert_job"] = ENERGY_SWEEP.submit(params).job_id
    show_when_done(
        st.session_state.get("pert_job"),
        show_sweep,
        "Choose layers and a grid and run it; the sweep runs on the Dask backend while you keep using the app.",
    )


render_safely(render)
