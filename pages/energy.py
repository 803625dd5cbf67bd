"""Energy: fit low-dimensional abstract features and importance weights to a layer's PSM."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from featgeom_core import codec, jobs
from featgeom_core.energy import ReoptConfig, reoptimize
from featgeom_core.energy.controls import TARGETS, control_summary, unit_values
from featgeom_core.energy.jobs import ENERGY_FIT, ENERGY_SWEEP
from featgeom_core.energy.params import EnergyFitParams
from featgeom_core.energy.result import EnergyFitResult
from featgeom_core.params import field_spec
from ui import params as widgets
from ui.controls import HOW_TO_READ, control_settings, summary_table
from ui.errors import render_safely
from ui.jobs import follow, job_from_url
from ui.plots import (
    control_points,
    feature_scatter,
    objective_trace,
    psm_heatmap,
    weights_bar,
)
from ui.report import chart
from ui.state import adopt_fields, one_of, publish_fields, require_selection
from ui.targets import EnergyTarget, choose_target

CONTROL_DRAWS = 5  # noise draws per target in the controls comparison

NORM_NOTE = {
    "cosine": "Cosine similarity cannot see norms while the Riesz and −log energies fall as norms grow, "
    "so the joint step keeps the abstract features on the unit sphere.",
    "rbf": "With RBF similarity the PSM term anchors the norms, so the abstract features are free.",
}


FIT_FIELDS = {  # widget key -> URL parser
    "energy_kernel": one_of(field_spec(EnergyFitParams, "kernel").choices),
    "energy_similarity": one_of(field_spec(EnergyFitParams, "similarity").choices),
    "energy_dim": int,
    "energy_lambda_d": float,
    "energy_weights": one_of(field_spec(EnergyFitParams, "weights").choices),
    "energy_ratio": float,
    "energy_s": float,
    "energy_restarts": int,
}
REOPT_FIELDS = {"energy_lambda_x": float, "energy_sigma": float}


def fit_settings(n: int) -> dict:
    """The joint configuration from the page's widgets (bounds and help from ``EnergyFitParams``)."""
    adopt_fields(FIT_FIELDS)
    c1, c2, c3, c4 = st.columns(4)
    kernel = widgets.selectbox(EnergyFitParams, "kernel", "Kernel", "energy_kernel", container=c1)
    similarity = widgets.selectbox(EnergyFitParams, "similarity", "Similarity", "energy_similarity", container=c2)
    dim = widgets.number_input(EnergyFitParams, "dim", "dim", "energy_dim", container=c3, max_value=n - 1, default=min(3, n - 1))
    lambda_d = widgets.number_input(EnergyFitParams, "lambda_d", "λ_d", "energy_lambda_d", container=c4)
    c5, c6, c7, c8 = st.columns(4)
    weights = widgets.selectbox(EnergyFitParams, "weights", "Weights", "energy_weights", container=c5)
    ratio = widgets.number_input(EnergyFitParams, "weight_ratio", "max weight ratio", "energy_ratio", container=c6)
    s = widgets.number_input(EnergyFitParams, "s", "Riesz s", "energy_s", container=c7, disabled=kernel != "riesz")
    restarts = widgets.number_input(EnergyFitParams, "restarts", "restarts", "energy_restarts", container=c8)
    st.caption(NORM_NOTE[similarity])
    publish_fields(FIT_FIELDS)
    return {
        "dim": int(dim),
        "similarity": similarity,
        "kernel": kernel,
        "lambda_d": float(lambda_d),
        "s": float(s) if kernel == "riesz" else 1.0,
        "weights": weights,
        "weight_ratio": float(ratio),
        "restarts": int(restarts),
    }


def show_controls(target: EnergyTarget, fit: EnergyFitResult, lambda_x: float, sigma: float) -> None:
    """This configuration against the controls: every target (real, each permuted and each
    shuffled-label seed) fitted, perturbed by σ and re-optimised at λ_x, as one sweep job."""
    st.subheader("Against the controls")
    c = fit.joint.config
    params = {
        "targets": target.sweep_targets([c.similarity]),
        "kernels": [c.kernel],
        "similarities": [c.similarity],
        "dims": [c.dim],
        "lambda_d": [c.lambda_d],
        "lambda_x": [lambda_x],
        "sigmas": [sigma],
        "weights": c.weights,
        "weight_ratio": c.weight_ratio,
        "s": c.s,
        "repeats": CONTROL_DRAWS,
        "label": f"{target.label} · controls of one fit",
    }
    job_id = ENERGY_SWEEP.submit(params).job_id
    if not follow(job_id):
        return
    rows = ENERGY_SWEEP.load(job_id).rows
    present = [t for t in TARGETS if any(r["target"] == t for r in rows)]
    left, right = st.columns(2)
    errors = {t: [r["joint_error"] for r in rows if r["target"] == t] for t in present}
    chart(left, control_points(errors, "joint fit: error per feature pair (one point per seed)"), key="energy_control_errors")
    distances = {t: unit_values(rows, t) for t in present}
    chart(right, control_points(distances, f"after re-optimisation (σ = {sigma:g}): distance to target"), key="energy_control_distances")
    (summary,) = control_summary(rows)
    st.dataframe(summary_table([summary]).drop(columns=["layer", "similarity"]), hide_index=True)
    real_draws = ENERGY_SWEEP.params_of(job_id).real_draws
    st.caption(
        f"Sweep job {job_id} · {len(rows)} targets: each control seed × {CONTROL_DRAWS} noise draws, the real target × {real_draws} "
        f"started in turn from its fit's equally good minima. {HOW_TO_READ}"
    )


def show_fit(job_id: str, fit: EnergyFitResult, params: dict, target: EnergyTarget | None = None) -> None:
    """The target, the abstract and the reference PSMs, the features, weights, trace, re-optimisation,
    and (for a live target) the same configuration against the controls."""
    joint = fit.joint
    names = fit.feature_names or [str(i) for i in range(len(joint.target))]
    similarity, kernel, dim = joint.config.similarity, joint.config.kernel, joint.config.dim
    left, middle, right = st.columns(3)
    chart(left, psm_heatmap(joint.target, names, f"target ({similarity})", similarity), key="energy_target")
    chart(middle, psm_heatmap(joint.psm, names, f"abstract · error per pair {joint.error:.2e}", similarity), key="energy_abstract")
    chart(
        right,
        psm_heatmap(
            fit.reference_psm,
            names,
            f"reference {kernel} minimum (N={len(names)}, dim={dim}) · matched, {fit.reference_distance:.2e}",
            "cosine",
        ),
        key="energy_reference",
    )

    a, b = st.columns([2, 1])
    chart(a, feature_scatter(joint.features, names, f"abstract features in R^{dim}"), key="energy_scatter")
    chart(b, weights_bar(names, joint.weights), key="energy_weights_bar")
    chart(b, objective_trace(joint.trace), key="energy_trace")
    st.caption(
        f"job {job_id} · energy {joint.energy:.6g} · objective {joint.objective:.6g} · best of {len(joint.objectives)} restarts "
        f"(spread {np.ptp(joint.objectives):.3g})"
    )

    st.subheader("Re-optimisation")
    r1, r2 = st.columns(2)
    adopt_fields(REOPT_FIELDS)
    lambda_x = widgets.number_input(ReoptConfig, "lambda_x", "λ_x", "energy_lambda_x", container=r1)
    sigma = widgets.number_input(ReoptConfig, "perturbation_scale", "perturbation scale σ", "energy_sigma", container=r2)
    publish_fields(REOPT_FIELDS)
    again = reoptimize(joint, float(lambda_x), float(sigma))
    chart(
        st,
        psm_heatmap(again.psm, names, f"after re-optimisation · distance to target {again.distance:.2e}", similarity),
        key="energy_reopt",
    )

    summary = {
        **params,
        "target": fit.label,
        "features": names,
        "error": joint.error,
        "energy": joint.energy,
        "weights": joint.weights.tolist(),
        "lambda_x": float(lambda_x),
        "sigma": float(sigma),
        "reopt_distance": again.distance,
    }
    npz = codec.arrays_npz(
        {"features": joint.features, "weights": joint.weights, "psm": joint.psm, "target": joint.target, "reoptimised": again.features}
    )
    d1, d2 = st.columns(2)
    d1.download_button("Abstract features (NPZ)", npz, "energy_fit.npz")
    d2.download_button("Summary (JSON)", json.dumps(summary, indent=2, default=str), "energy_fit.json", "application/json")
    if target is not None and len(target.targets) > 1:
        show_controls(target, fit, float(lambda_x), float(sigma))


def render() -> None:
    selection = require_selection()
    st.title("Energy minimisation")
    opened = job_from_url(ENERGY_FIT.name)
    if opened is not None:  # a stored fit, opened from the Jobs page or a shared link
        record = jobs.status(opened)
        st.caption(f"Stored fit · {record.params.get('label', '')} · {len(record.params['target'])} features")
        if follow(opened):
            show_fit(opened, ENERGY_FIT.load(opened), {k: v for k, v in record.params.items() if k != "target"})
        return
    controls = control_settings()
    target = choose_target(selection, controls)
    if target is None:
        return
    n = len(target.names)
    st.caption(f"Target: {target.label} · {n} features")
    settings = fit_settings(n)
    params = {"target": target.real(settings["similarity"]).tolist(), "features": target.names, **settings, "label": target.label}
    job_id = ENERGY_FIT.submit(params).job_id  # content-addressed: a fit already made comes straight from the store
    if follow(job_id):
        show_fit(job_id, ENERGY_FIT.load(job_id), {k: v for k, v in params.items() if k != "target"}, target)


render_safely(render)
