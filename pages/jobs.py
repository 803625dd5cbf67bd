"""Jobs: every background run with its status and live progress; cancel, delete, open results."""

from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from featgeom_core import jobs
from featgeom_core.errors import FeatgeomError, StaleResult
from featgeom_core.jobs.manager import RESUBMITTABLE
from featgeom_core.jobs.records import ACTIVE
from ui.errors import offer_recompute, render_safely
from ui.jobs import open_result_link
from ui.state import (
    adopt_fields,
    keep_valid,
    list_of,
    one_of,
    publish_fields,
    require_selection,
)

STATUSES = ["queued", "running", "done", "failed", "cancelled", "interrupted"]
POLL_S = 2.0


def _any_active(records: list[jobs.JobRecord]) -> bool:
    return any(r.status in ACTIVE for r in records)


def _table(records: list[jobs.JobRecord]) -> pd.DataFrame:
    now = time.time()
    return pd.DataFrame(
        {
            "job": [r.job_id for r in records],
            "kind": [r.kind for r in records],
            "status": [r.status for r in records],
            "progress": [r.progress for r in records],
            "elapsed (s)": [round(r.elapsed(now), 1) for r in records],
            "message": [r.error or r.message for r in records],
            "params": [_short(json.dumps(r.params)) for r in records],
        }
    )


def _short(text: str, limit: int = 160) -> str:
    """Params as one table cell (energy jobs carry whole PSMs)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@st.cache_data(max_entries=64, show_spinner=False)
def _summary(job_id: str, finished: float | None) -> dict:
    """A finished job's result summary, read once per finish (``finished`` keys a recompute apart)."""
    return jobs.load_result(job_id).summary()


def _result_summary(record: jobs.JobRecord) -> None:
    """A finished job's result summary (from its kind's result type) and a link to its page."""
    if record.status != "done":
        return
    open_result_link(record)
    try:
        summary = _summary(record.job_id, record.finished)
    except StaleResult as exc:
        st.warning(str(exc))
        offer_recompute(record.job_id)
        return
    except FeatgeomError as exc:
        st.caption(f"result unavailable: {exc}")
        return
    with st.expander("Result summary"):
        st.json(summary, expanded=False)


def _act(action, job_id: str) -> None:
    """Run a button's action before the rerun; a failure becomes a message, not a traceback."""
    try:
        action(job_id)
    except FeatgeomError as exc:
        st.session_state["_jobs_error"] = str(exc)


def render() -> None:
    require_selection()
    st.title("Jobs")
    info = jobs.backend_info()
    st.caption(
        f"Backend: {info.mode}"
        + (f" · {info.workers} workers · {info.threads} threads · {info.gpus:g} GPUs" if info.started else " · starts with the first job")
    )
    left, right = st.columns(2)
    adopt_fields(
        {"jobs_kind_filter": list_of(one_of(jobs.job_kinds())), "jobs_status_filter": list_of(one_of(STATUSES)), "jobs_selected": str}
    )
    kinds = left.multiselect("Kind", sorted(jobs.job_kinds()), key="jobs_kind_filter")
    statuses = right.multiselect("Status", STATUSES, key="jobs_status_filter")
    publish_fields(["jobs_kind_filter", "jobs_status_filter"])

    # Poll only while a job is queued or running: an idle Jobs page open in many sessions would
    # otherwise keep the server busy redrawing tables that do not change (32 sessions saturated 2 cores).
    polling = _any_active(jobs.list_jobs())

    @st.fragment(run_every=POLL_S if polling else None)
    def live() -> None:
        every = jobs.list_jobs()
        if _any_active(every) != polling:
            st.rerun()  # the last active job ended, or one started (a resubmit here): poll, or stop polling
        if not polling:
            st.button(
                "Refresh",
                key="jobs_refresh",
                icon=":material/refresh:",
                help="The table updates by itself while a job is queued or running",
            )
        records = [r for r in every if (not kinds or r.kind in kinds) and (not statuses or r.status in statuses)]
        if not records:
            st.info(
                "No jobs yet. Build on a page (every analysis's button runs a job), turn on 'Long runs as background jobs' in "
                "Feature geometry's sidebar, or run `featgeom sweep`."
            )
            return
        st.dataframe(
            _table(records),
            hide_index=True,
            width="stretch",
            column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent")},
        )
        keep_valid("jobs_selected", [r.job_id for r in records])
        chosen = st.selectbox(
            "Job",
            [r.job_id for r in records],
            format_func=lambda j: f"{j} · {next(r.kind for r in records if r.job_id == j)}",
            key="jobs_selected",
        )
        publish_fields(["jobs_selected"])
        record = next(r for r in records if r.job_id == chosen)
        a, b, r, c = st.columns([1, 1, 1, 3])
        a.button("Cancel", disabled=record.status not in ACTIVE, key="jobs_cancel", on_click=_act, args=(jobs.cancel, chosen))
        b.button(
            "Delete",
            key="jobs_delete",
            help="Forget the job; its stored results stay in the cache",
            on_click=_act,
            args=(jobs.delete, chosen),
        )
        r.button(
            "Resubmit",
            disabled=record.status not in RESUBMITTABLE,
            key="jobs_resubmit",
            on_click=_act,
            args=(jobs.resubmit, chosen),
            help="Run an interrupted, failed or cancelled job again with the same settings",
        )
        if st.session_state.get("_jobs_error"):
            st.error(st.session_state.pop("_jobs_error"))
        with c:
            _result_summary(record)

    live()


render_safely(render)
