"""Following a job from a page: a polled progress bar until its result is in the store; opening a
stored result from a ``?job=`` link."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from featgeom_core import jobs
from featgeom_core.errors import FeatgeomError
from featgeom_core.jobs.protocol import JobKind
from featgeom_core.jobs.records import ACTIVE
from ui.links import link


def follow(job_id: str, every_s: float = 0.5, while_active: Callable[[jobs.JobRecord], None] | None = None) -> bool:
    """True when the job's result is there; otherwise shows its progress (polled every
    ``every_s`` seconds, rerunning the page when it finishes) or its failure, and returns False.
    ``while_active`` draws more under the progress bar at each poll of a queued or running job."""
    if jobs.status(job_id).status == "done":
        return True

    @st.fragment(run_every=every_s)
    def poll() -> None:
        current = jobs.status(job_id)
        if current.status in ACTIVE:
            st.progress(current.progress, f"job {job_id}: {current.status} — {current.message}")
            if while_active is not None:
                while_active(current)
        elif current.status == "done":
            st.rerun()
        else:
            st.error(f"job {job_id} {current.status}" + (f": {current.error}" if current.error else ""))

    poll()
    return False


def job_from_url(kind: str, back_button: bool = True) -> str | None:
    """The ``?job=`` of the URL when it names a job of ``kind`` (a stored result to open), with a
    button back to the live view (``back_button``); None when there is none. A wrong or unknown id
    is an error message, never a traceback."""
    job_id = st.query_params.get("job")
    if not job_id:
        return None
    try:
        record = jobs.status(job_id)
    except FeatgeomError:
        st.error(f"No job {job_id!r} in this deployment's store; showing the live view.")
        st.query_params.pop("job", None)
        return None
    if record.kind != kind:
        st.error(f"Job {job_id} is a {record.kind} job, not {kind}; showing the live view.")
        st.query_params.pop("job", None)
        return None
    if back_button and st.button("Back to the live view", key=f"leave_job_{kind}"):
        st.query_params.pop("job", None)
        st.rerun()
    return job_id


def open_result_link(record: jobs.JobRecord) -> None:
    """A link to the page that shows a finished job's result (from its kind's declaration)."""
    try:
        kind = jobs.job_kind(record.kind)
    except FeatgeomError:
        return
    if record.status != "done" or kind.page is None:
        return
    link(kind.page, "Open the result", kind.link(record.job_id, record.params), icon=":material/open_in_new:")


def show_when_done(job_id: str | None, show: Callable[[str], None], prompt: str) -> None:
    """The page's result area: a prompt when no job is chosen, progress while it runs, then ``show``."""
    if not job_id:
        st.info(prompt)
        return
    if follow(job_id):
        show(job_id)


def adopt_job_from_url(kind: str, state_key: str) -> None:
    """A ``?job=`` of ``kind`` becomes the page's current job (kept in ``state_key``)."""
    opened = job_from_url(kind, back_button=False)
    if opened is not None:
        st.session_state[state_key] = opened


def open_finished(
    kind: JobKind[Any, Any], state_key: str, label: Callable[[jobs.JobRecord], str], prompt: str = "Or open a finished run"
) -> None:
    """When the page has no current job: a picker of ``kind``'s finished jobs (newest first,
    each shown by ``label``) whose choice becomes the current job in ``state_key``."""
    if st.session_state.get(state_key):
        return
    finished = {r.job_id: r for r in kind.finished()}
    if not finished:
        return
    chosen = st.selectbox(
        prompt, [None, *finished], key=f"{state_key}_open", format_func=lambda j: "—" if j is None else _safe_label(label, finished[j])
    )
    if chosen:
        st.session_state[state_key] = chosen


def _safe_label(label: Callable[[jobs.JobRecord], str], record: jobs.JobRecord) -> str:
    try:
        return label(record)
    except (FeatgeomError, KeyError, TypeError, ValueError):  # a record of an older layout still opens, by its id
        return f"{record.kind} ({record.job_id[:8]})"
