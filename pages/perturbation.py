"""Perturbation analysis: distance after re-optimisation against σ, real targets against permuted controls."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from featgeom_core import jobs
from featgeom_core.energy import KERNELS, curves_of_best
from ui.errors import render_safely
from ui.plots import perturbation_plot
from ui.state import require_selection
from ui.targets import choose_target


def render() -> None:
    selection = require_selection()
    st.title("Perturbation analysis")
    target = choose_target(selection)
    if target is None:
        return
    n = len(target.names)
    st.caption(f"Target: {target.label} · {n} features; every grid point is fitted, perturbed and re-optimised, for the real PSM and its permuted control.")
    c1, c2, c3 = st.columns(3)
    kernels = c1.multiselect("Kernels", KERNELS, default=list(KERNELS), key="pert_kernels")
    similarities = c2.multiselect("Similarities", ["cosine", "rbf"], default=["cosine", "rbf"], key="pert_sims")
    dims = c3.multiselect("dims", list(range(1, n)), default=[d for d in (2, 3, 4, 5) if d < n], key="pert_dims")
    c4, c5, c6 = st.columns(3)
    lambda_d = c4.multiselect("λ_d", [1.0, 10.0, 100.0, 1000.0], default=[10.0, 100.0, 1000.0], key="pert_ld")
    lambda_x = c5.multiselect("λ_x", [1.0, 10.0, 100.0], default=[10.0], key="pert_lx")
    sigmas = c6.multiselect("σ", [0.003, 0.01, 0.03, 0.1, 0.3, 1.0], default=[0.01, 0.03, 0.1, 0.3], key="pert_sigmas")
    c7, c8 = st.columns(2)
    restarts = c7.number_input("restarts", 1, 64, 8, key="pert_restarts")
    repeats = c8.number_input("noise draws per σ", 1, 32, 3, key="pert_repeats")

    params = {
        "targets": {control: {kind: m.tolist() for kind, m in by_kind.items() if kind in similarities} for control, by_kind in target.targets.items()},
        "kernels": kernels, "similarities": similarities, "dims": dims, "lambda_d": lambda_d, "lambda_x": lambda_x,
        "sigmas": sigmas, "restarts": int(restarts), "repeats": int(repeats), "label": target.label,
    }
    job_id = st.session_state.get("pert_job")
    if st.button("Run the sweep as a job", type="primary", disabled=not (kernels and similarities and dims and lambda_d and lambda_x and sigmas)):
        job_id = jobs.submit("energy.sweep", params)
        st.session_state["pert_job"] = job_id
    if not job_id:
        st.info("Choose a grid and run it; the sweep runs on the Dask backend while you keep using the app.")
        return

    @st.fragment(run_every=1.0)
    def follow() -> None:
        record = jobs.status(job_id)
        if record.status in ("queued", "running"):
            st.progress(record.progress, f"job {job_id}: {record.status} — {record.message}")
        elif record.status == "done":
            st.rerun()
        else:
            st.error(f"job {job_id} {record.status}" + (f": {record.error}" if record.error else ""))

    record = jobs.status(job_id)
    if record.status != "done":
        follow()
        return
    meta = jobs.result(job_id).meta
    rows = pd.DataFrame(meta["rows"])
    st.caption(f"Sweep {job_id}: {meta.get('label', '')}")
    for similarity in sorted(rows["similarity"].unique()):
        st.plotly_chart(perturbation_plot(curves_of_best(meta["rows"], similarity), similarity), key=f"pert_plot_{similarity}")
    st.subheader("Best configuration per (target, similarity, kernel)")
    st.dataframe(pd.DataFrame(meta["best"]), hide_index=True)
    st.subheader("The whole sweep")
    st.dataframe(rows, hide_index=True)
    st.download_button("Sweep (CSV)", rows.to_csv(index=False), "perturbation_sweep.csv", "text/csv")


render_safely(render)
