"""Findings: each paper's headline claims beside what this lab measures, with a verdict; computed
as one job (each finding cached), filtered by verdict and model, each linking to its view."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from featgeom_core.errors import FeatgeomError
from featgeom_core.findings import PAPERS, VERDICTS, FindingResult, Ledger
from featgeom_core.findings.declare import NO_MODEL
from featgeom_core.findings.jobs import LEDGER
from featgeom_core.findings.params import DEFAULT_LEDGER_MODELS, LedgerParams
from featgeom_core.findings.run import estimated_minutes, stale
from featgeom_core.jobs import manager as jobs
from ui.errors import render_safely
from ui.jobs import ACTIVE, follow, job_from_url
from ui.links import BY_PATH
from ui.report import chart
from ui.state import adopt_fields, keep_valid, list_of, one_of, publish_fields, require_selection


def view_url(view: str) -> str:
    """A finding's view (``pages/x.py?query``) as the app's URL (``/x?query``)."""
    path, _, query = view.partition("?")
    page = BY_PATH.get(path)
    if page is None:
        return ""
    return f"/{page.url_path}" + (f"?{query}" if query else "")


def table(findings: list[FindingResult]) -> pd.DataFrame:
    """One row per finding: verdict (and, where fragile, the verdicts it lands on by machine), claim,
    where, the paper's value, the model, ours, its view."""
    return pd.DataFrame(
        [
            {
                "verdict": f.verdict,
                "fragile": f.expected if f.fragile else "",
                "claim": f.claim,
                "where": f.where,
                "paper": f.paper_value,
                "model": f.model,
                "ours": f.ours + (f" ({f.spread})" if f.spread else ""),
                "why": f.note,
                "rule": f.tolerance,
                "departure": f.departure,
                "view": view_url(f.view),
            }
            for f in findings
        ]
    )


VERDICT_COLOURS = {"reproduces": "#2e7d32", "partly": "#f9a825", "contradicted": "#c62828", "not run here": "#9e9e9e"}


def verdict_figure(ledger: Ledger) -> go.Figure:
    """Verdict counts per paper, stacked (one bar per paper)."""
    papers = [paper for paper in PAPERS if ledger.select(paper)]
    figure = go.Figure(
        [
            go.Bar(
                name=verdict,
                y=[PAPERS[paper].split(",")[0] for paper in papers],
                x=[len(ledger.select(paper, verdict=verdict)) for paper in papers],
                orientation="h",
                marker_color=VERDICT_COLOURS[verdict],
            )
            for verdict in VERDICTS
        ]
    )
    figure.update_layout(barmode="stack", height=80 + 40 * len(papers), margin=dict(l=10, r=10, t=10, b=10), xaxis_title="findings")
    return figure


def show(ledger: Ledger) -> None:
    """The ledger, one section per paper, after the filters (kept in the URL)."""
    left, right = st.columns(2)
    models = sorted({f.model for f in ledger.findings})
    adopt_fields({"findings_verdicts": list_of(one_of(VERDICTS)), "findings_models": list_of(one_of(models))})
    keep_valid("findings_models", models)
    verdicts = left.multiselect("Verdicts", VERDICTS, default=list(VERDICTS), key="findings_verdicts")
    chosen = right.multiselect(
        "Models", models, default=models, key="findings_models", help=f"'{NO_MODEL}': synthetic data and toys the finding builds itself"
    )
    publish_fields(["findings_verdicts", "findings_models"])
    summary = ledger.summary()
    counts = summary["verdicts"]
    st.caption(" · ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + f" · {len(ledger.findings)} in all")
    for unexpected in summary["unexpected"]:
        st.warning(f"Verdict not the one the tests expect: {unexpected}")
    chart(st, verdict_figure(ledger), key="findings_verdicts_chart", width="stretch")
    for paper, title in PAPERS.items():
        shown = [f for f in ledger.select(paper) if f.verdict in verdicts and f.model in chosen]
        if not shown:
            continue
        st.subheader(title)
        st.dataframe(
            table(shown),
            hide_index=True,
            width="stretch",
            column_config={"view": st.column_config.LinkColumn("view", display_text="open")},
        )
    st.download_button(
        "The ledger (CSV)", table(list(ledger.findings)).to_csv(index=False), "featgeom_findings.csv", "text/csv", key="findings_csv"
    )


def status_of(job_id: str) -> str | None:
    """The job's status, or None when there is no such job yet."""
    try:
        return jobs.status(job_id).status
    except FeatgeomError:
        return None


def render() -> None:
    st.title("Findings")
    st.caption(
        "Each paper's headline claims, in our words, beside what this lab measures on the same kind of data with the "
        "paper's settings, and a verdict by the rule each finding states. Computed by the product (one job, each finding "
        "cached); the README's reproduction tables and the tests read the same ledger."
    )
    require_selection()
    stored = job_from_url(LEDGER.name)
    if stored is not None:  # a link to one measured ledger
        if follow(stored):
            show(LEDGER.load(stored))
        return
    adopt_fields({"findings_on": list_of(one_of(DEFAULT_LEDGER_MODELS))})
    models = st.multiselect(
        "Measure on",
        list(DEFAULT_LEDGER_MODELS),
        default=list(DEFAULT_LEDGER_MODELS),
        key="findings_on",
        help="the models the findings on language models are measured on; findings on synthetic data and toys are measured once",
    )
    publish_fields(["findings_on"])
    if not models:
        st.info("Choose at least one model.")
        return
    params = LedgerParams(models=models)
    job_id = jobs.job_id_for(LEDGER.name, params.normalised())
    if status_of(job_id) not in ("done", *ACTIVE):
        minutes = estimated_minutes(params)
        st.info(
            f"The ledger for {', '.join(models)} is not measured yet: about {minutes:.0f} min on a 2-core CPU, once "
            "(each finding is cached, so a later change of models measures only what is new)."
        )
        if not st.button("Measure the findings", type="primary", key="findings_run"):
            return
        job_id = LEDGER.submit(params).job_id
    if follow(job_id):
        ledger = LEDGER.load(job_id)
        outdated = stale(ledger, params)
        if outdated:
            st.info(
                f"{len(outdated)} findings were declared anew since this ledger was measured ({', '.join(outdated[:3])}"
                + (", …" if len(outdated) > 3 else "")
                + "); re-measuring redoes only those."
            )
            if st.button("Re-measure", key="findings_remeasure"):
                LEDGER.submit(params, recompute=True)
                st.rerun()
        show(ledger)


render_safely(render)
