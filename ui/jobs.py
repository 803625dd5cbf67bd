"""Following a job from a page: a polled progress bar until its result is in the store."""

from __future__ import annotations

import streamlit as st

from featgeom_core import jobs


def follow(job_id: str, every_s: float = 0.5) -> bool:
    """True when the job's result is there; otherwise shows its progress (polled every
    ``every_s`` seconds, rerunning the page when it finishes) or its failure, and returns False."""
    if jobs.status(job_id).status == "done":
        return True

    @st.fragment(run_every=every_s)
    def poll() -> None:
        current = jobs.status(job_id)
        if current.status in ("queued", "running"):
            st.progress(current.progress, f"job {job_id}: {current.status} — {current.message}")
        elif current.status == "done":
            st.rerun()
        else:
            st.error(f"job {job_id} {current.status}" + (f": {current.error}" if current.error else ""))

    poll()
    return False
