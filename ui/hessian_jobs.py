"""Following a Hessian-features job live: progress, the loss curve as the fit reports it, cancel."""

from __future__ import annotations

import streamlit as st

from featgeom_core import jobs
from ui.hessian_plots import loss_figure
from ui.jobs import follow
from ui.report import chart


def loss_history(record: jobs.JobRecord) -> dict[int, tuple[float, float]]:
    """{step: (L_steep, L_interference)} from the metrics the fit reported (the record keeps them,
    thinned to a few hundred points)."""
    return {
        int(m["step"]): (float(m["steep_loss"]), float(m["interference_loss"]))
        for m in record.metrics_history
        if {"step", "steep_loss", "interference_loss"} <= m.keys()
    }


def _losses_and_cancel(current: jobs.JobRecord) -> None:
    """Under the progress bar of a running fit: a Cancel button and the loss curve so far."""
    job_id = current.job_id
    history = loss_history(current)
    if st.button("Cancel", key=f"hx_cancel_{job_id}", help="stops the fit at its next progress report; nothing is stored"):
        jobs.cancel(job_id)
        st.rerun()
    if history:
        steps = sorted(history)
        chart(
            st,
            loss_figure(steps, [history[s][0] for s in steps], [history[s][1] for s in steps], "Training losses, live"),
            key=f"hx_live_chart_{job_id}",
        )
    else:
        st.caption("The loss curve appears with the first optimisation step (after the eigenvector start).")


def follow_with_losses(job_id: str, every_s: float = 0.5) -> bool:
    """True when the job's result is there; otherwise its progress bar, the loss curve so far
    (both terms, as the fit reports them) and a Cancel button, polled every ``every_s`` seconds."""
    return follow(job_id, every_s, _losses_and_cancel)
