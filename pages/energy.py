"""Energy: fit low-dimensional abstract features and importance weights to a layer's PSM."""

from __future__ import annotations

import io
import json

import numpy as np
import streamlit as st

from featgeom_core import jobs
from featgeom_core.energy import KERNELS, JointResult, reoptimize
from ui.errors import render_safely
from ui.jobs import follow
from ui.plots import feature_scatter, objective_trace, psm_heatmap, weights_bar
from ui.state import require_selection
from ui.targets import choose_target

NORM_NOTE = {
    "cosine": "Cosine similarity cannot see norms while the Riesz and −log energies fall as norms grow, "
              "so the joint step keeps the abstract features on the unit sphere.",
    "rbf": "With RBF similarity the PSM term anchors the norms, so the abstract features are free.",
}


def render() -> None:
    selection = require_selection()
    st.title("Energy minimisation")
    target = choose_target(selection)
    if target is None:
        return
    n = len(target.names)
    st.caption(f"Target: {target.label} · {n} features")

    c1, c2, c3, c4 = st.columns(4)
    kernel = c1.selectbox("Kernel", KERNELS, index=2, key="energy_kernel", help="exp: exp(cos); log: −log‖xᵢ−xⱼ‖; riesz: sgn(s)‖xᵢ−xⱼ‖^(−s)")
    similarity = c2.selectbox("Similarity", ["cosine", "rbf"], key="energy_similarity")
    dim = c3.number_input("dim", 1, n - 1, min(3, n - 1), key="energy_dim")
    lambda_d = c4.number_input("λ_d", 0.001, 1e6, 100.0, format="%g", key="energy_lambda_d")
    c5, c6, c7, c8 = st.columns(4)
    weights = c5.selectbox("Weights", ["learned", "uniform"], key="energy_weights")
    ratio = c6.number_input("max weight ratio", 1.01, 1e4, 10.0, format="%g", key="energy_ratio", help="Learned weights stay positive with largest/smallest ≤ this bound")
    s = c7.number_input("Riesz s", -5.0, 10.0, 1.0, key="energy_s", disabled=kernel != "riesz")
    restarts = c8.number_input("restarts", 1, 512, 16, key="energy_restarts")
    st.caption(NORM_NOTE[similarity])

    T = target.targets["real"][similarity]
    riesz_s = float(s) if kernel == "riesz" else 1.0
    params = {"target": T.tolist(), "features": target.names, "dim": int(dim), "similarity": similarity, "kernel": kernel,
              "lambda_d": float(lambda_d), "s": riesz_s, "weights": weights, "weight_ratio": float(ratio), "restarts": int(restarts),
              "label": target.label}
    job_id = jobs.submit("energy.fit", params)  # content-addressed: a fit already made comes straight from the store
    if not follow(job_id):
        return
    stored = jobs.result(job_id)
    joint = JointResult.from_store(stored.arrays, stored.meta)

    left, middle, right = st.columns(3)
    left.plotly_chart(psm_heatmap(T, target.names, f"target ({similarity})", similarity), key="energy_target")
    middle.plotly_chart(psm_heatmap(joint.psm, target.names, f"abstract · error per pair {joint.error:.2e}", similarity), key="energy_abstract")
    right.plotly_chart(psm_heatmap(stored.arrays["reference_psm"], target.names,
                                   f"reference {kernel} minimum (N={n}, dim={int(dim)}) · matched, {stored.meta['reference_distance']:.2e}", "cosine"),
                       key="energy_reference")

    a, b = st.columns([2, 1])
    a.plotly_chart(feature_scatter(joint.features, target.names, f"abstract features in R^{int(dim)}"), key="energy_scatter")
    b.plotly_chart(weights_bar(target.names, joint.weights), key="energy_weights_bar")
    b.plotly_chart(objective_trace(joint.trace), key="energy_trace")
    st.caption(f"job {job_id} · energy {joint.energy:.6g} · objective {joint.objective:.6g} · best of {len(joint.objectives)} restarts "
               f"(spread {np.ptp(joint.objectives):.3g})")

    st.subheader("Re-optimisation")
    r1, r2 = st.columns(2)
    lambda_x = r1.number_input("λ_x", 0.001, 1e6, 10.0, format="%g", key="energy_lambda_x")
    sigma = r2.number_input("perturbation scale σ", 0.0, 10.0, 0.01, format="%g", key="energy_sigma")
    again = reoptimize(joint, float(lambda_x), float(sigma))
    st.plotly_chart(psm_heatmap(again.psm, target.names, f"after re-optimisation · distance to target {again.distance:.2e}", similarity), key="energy_reopt")

    summary = {"target": target.label, "features": target.names, "kernel": kernel, "similarity": similarity, "dim": int(dim), "lambda_d": float(lambda_d),
               "weights_mode": weights, "error": joint.error, "energy": joint.energy, "weights": joint.weights.tolist(),
               "lambda_x": float(lambda_x), "sigma": float(sigma), "reopt_distance": again.distance}
    buffer = io.BytesIO()
    np.savez(buffer, features=joint.features, weights=joint.weights, psm=joint.psm, target=T, reoptimised=again.features)
    d1, d2 = st.columns(2)
    d1.download_button("Abstract features (NPZ)", buffer.getvalue(), "energy_fit.npz")
    d2.download_button("Summary (JSON)", json.dumps(summary, indent=2), "energy_fit.json", "application/json")


render_safely(render)
