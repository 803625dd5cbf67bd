"""Sparsity — validation: the four metrics on synthetic sparse-linear data of known sparsity and on
non-sparse controls (the paper's section 3.1 and Figures 1 and 4), with Appendix E's ablations."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from featgeom_core import jobs
from featgeom_core.sparsity.jobs import SPARSITY_SYNTHETIC
from featgeom_core.sparsity.params import (
    CONTROLS,
    SparseCodingParams,
    SyntheticGridParams,
)
from ui import params as widgets
from ui.errors import render_safely
from ui.jobs import adopt_job_from_url, show_when_done
from ui.report import chart
from ui.sparsity_plots import METRIC_LABELS, datasets_strip, metric_against_a
from ui.state import adopt_url, one_of, require_selection, set_query

# Appendix E: each ablation changes one thing of the paper's setting (d 256, sigma 0.1, 4d true features, dictionary 8d).
ABLATIONS: dict[str, dict] = {
    "the paper's setting": {},
    "dictionary 16d": {"dictionary_multiple": 16.0},
    "σ = 0.05": {"sigma": 0.05},
    "σ = 0.2": {"sigma": 0.2},
    "d = 64": {"d": 64},
    "d = 512": {"d": 512},
    "8d true features": {"feature_multiple": 8.0},
}
A_MENU = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0)
METRICS = ("normalized_loss", "s_p", "n0", "final_loss")


def _floats(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if any(v not in A_MENU for v in values):
        raise ValueError("not on the menu")
    return values


def _choices(text: str) -> list[str]:
    values = [part for part in text.split(",") if part]
    if any(v not in CONTROLS for v in values):
        raise ValueError("unknown control")
    return values


def settings() -> dict:
    """The grid from the widgets (mirrored in the URL); bounds and help from ``SyntheticGridParams``."""
    adopt_url("ablation", one_of(ABLATIONS), "sv_ablation")
    adopt_url("a", _floats, "sv_a")
    adopt_url("controls", _choices, "sv_controls")
    adopt_url("method", one_of(("greedy", "fista")), "sv_method")
    c1, c2, c3 = st.columns([2, 2, 1])
    ablation = c1.selectbox("Setting (Appendix E ablations)", list(ABLATIONS), key="sv_ablation")
    a_values = widgets.multiselect(SyntheticGridParams, "a_values", "a (features active on average)", "sv_a", options=A_MENU, container=c2)
    method = widgets.selectbox(SparseCodingParams, "method", "Coefficient step", "sv_method", container=c3)
    controls = widgets.multiselect(SyntheticGridParams, "controls", "Controls", "sv_controls")
    set_query(ablation=ablation, a=",".join(f"{a:g}" for a in a_values), controls=",".join(controls), method=method)
    overrides = dict(ABLATIONS[ablation])
    coding = {"method": method}
    if "dictionary_multiple" in overrides:
        coding["dictionary_multiple"] = overrides.pop("dictionary_multiple")
    return {"a_values": a_values, "controls": controls, **overrides, "coding": coding}


def _label(record: jobs.JobRecord) -> str:
    p = record.params
    return (
        f"d {p['d']} · σ {p['sigma']:g} · {p['feature_multiple']:g}d features · dictionary {p['coding']['dictionary_multiple']:g}d · "
        f"{p['coding']['method']} ({record.job_id[:8]})"
    )


def show(job_id: str) -> None:
    """The metrics against a, the controls beside the sparse-linear sets, the table and its CSV."""
    result = SPARSITY_SYNTHETIC.load(job_id)
    record = jobs.status(job_id)
    params = record.params
    st.caption(
        f"Job {job_id} · d = {params['d']}, n = {params['n']}, σ = {params['sigma']:g}, {params['feature_multiple']:g}d true features, "
        f"dictionary {params['coding']['dictionary_multiple']:g}d, {params['coding']['method']} coefficients, p = {params['p']:g}"
    )
    rows = result.rows
    others = [r for r in SPARSITY_SYNTHETIC.finished() if r.job_id != job_id]
    compare = st.selectbox(
        "Overlay another validation result (e.g. the other coefficient step)",
        [None] + [r.job_id for r in others],
        key="sv_compare",
        format_func=lambda j: "—" if j is None else _label(next(r for r in others if r.job_id == j)),
    )
    overlay = SPARSITY_SYNTHETIC.load(compare).rows if compare else []
    labels = (f"({params['coding']['method']})", f"({jobs.status(compare).params['coding']['method']}, dashed)") if compare else ("", "")
    st.markdown(
        "The paper takes **a/2** as the truth (each active coefficient is U(0, 1)). At small a that is not what the "
        "planted coefficients themselves give: the largest of a few U(0, 1) draws is well below 1, so their own S₁ "
        "(dotted) exceeds a/2. L_norm also carries the unreconstructed noise (σ), so it sits above S₁."
    )
    left, right = st.columns(2)
    for k, metric in enumerate(METRICS):
        chart(left if k % 2 == 0 else right, metric_against_a(rows, metric, overlay, labels), key=f"sv_against_a_{metric}")
    left, right = st.columns(2)
    chart(left, datasets_strip(rows, "normalized_loss"), key="sv_strip_lnorm")
    chart(right, datasets_strip(rows, "s_p"), key="sv_strip_sp")
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("histogram", "histogram_edges")} for r in rows])
    st.dataframe(
        table,
        hide_index=True,
        column_config={name: st.column_config.NumberColumn(format="%.4g") for name in table.columns if table[name].dtype.kind == "f"},
    )
    st.download_button("Metrics (CSV)", table.to_csv(index=False), "sparsity_validation.csv", "text/csv")
    with st.expander("What the columns are"):
        st.markdown(
            "\n".join(f"- **{name}**: {label}" for name, label in METRIC_LABELS.items())
            + "\n- **planted_s1**: S₁ of the generating coefficients; **truth**: a/2; **dead_atoms**/**always_on_atoms**: "
            "atoms used by no activation / by more than half; **rounds**: adaptive-λ rounds; **seconds**: coding time."
        )


def render() -> None:
    require_selection()
    st.title("Sparsity — validation")
    st.caption(
        "Deng, Tao and Benton 2023, section 3.1: sparse coding of synthetic sparse-linear activations with a known number "
        "of active features a, against Gaussian, heavy-tailed and Rademacher controls of identity covariance."
    )
    adopt_job_from_url(SPARSITY_SYNTHETIC.name, "sv_job")
    grid = settings()
    if st.button("Run as a job", type="primary", key="sv_run", disabled=not (grid["a_values"] or grid["controls"])):
        st.session_state["sv_job"] = SPARSITY_SYNTHETIC.submit(grid).job_id
        set_query(job=st.session_state["sv_job"])
    show_when_done(
        st.session_state.get("sv_job"),
        show,
        "Choose the data sets and run; every set is generated, coded and measured in one job on the Dask backend "
        "(about 2 minutes for the default grid on a 2-core CPU).",
    )


render_safely(render)
