"""Following a Hessian-features job live: progress, the loss curve as the fit reports it, cancel."""

from __future__ import annotations

import streamlit as st

from featgeom_core import jobs
from featgeom_core.hessian.jobs import parse_loss_message
from ui.hessian_plots import loss_figure
from ui.jobs import follow
from ui.report import chart


def _record_losses(job_id: str, message: str) -> dict[int, tuple[float, float]]:
    """The losses seen so far in this session's polls of the job, by step (a poll adds the
    step its progress message names)."""
    history: dict[int, tuple[float, float]] = st.session_state.setdefault(f"hx_live_{job_id}", {})
    parsed = parse_loss_message(message)
    if parsed is not None:
        step, _, steep, interference = parsed
        history[step] = (steep, interference)
    return history


def _losses_and_cancel(current: jobs.JobRecord) -> None:
    """Under the progress bar of a running fit: a Cancel button and the loss curve so far."""
    job_id = current.job_id
    history = _record_losses(job_id, current.message)
    if st.button("Cancel", key=f"hx_cancel_{job_id}", help="stops the fit at its next progress report; nothing is stored"):
        jobs.cancel(job_id)
        st.rerun()
    if history:
        steps = sorted(history)
        chart(st, loss_figure(steps, [history[s][0] for s in steps], [history[s][1] for s in steps],
                                    "Training losses, live (sampled at each poll)"), key=f"hx_live_chart_{job_id}")
    else:
        st.caption("The loss curve appears with the first optimisation step (after the eigenvector start).")


def follow_with_losses(job_id: str, every_s: float = 0.5) -> bool:
    """True when the job's result is there; otherwise its progress bar, the loss curve so far
    (both terms, sampled at each poll) and a Cancel button, polled every ``every_s`` seconds."""
    return follow(job_id, every_s, _losses_and_cancel)
