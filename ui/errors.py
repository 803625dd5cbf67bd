"""Show failures as messages in the page, never as a traceback in the browser."""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

from featgeom_core import jobs
from featgeom_core.errors import FeatgeomError, StaleResult

log = logging.getLogger("featgeom.ui")


def leave_pages_directory_mode() -> None:
    """Every page, pages that read no selection included: in Streamlit's pages-directory mode,
    rerun through app.py (``ui.state.rerun_through_app``)."""
    from streamlit.runtime.pages_manager import PagesManager

    from ui.state import rerun_through_app

    if PagesManager.uses_pages_directory:
        rerun_through_app()


def render_safely(render: Callable[[], None]) -> None:
    """Run a page body; a FeatgeomError shows its message, anything else a short error (traceback to the server log)."""
    leave_pages_directory_mode()
    try:
        render()
    except StaleResult as exc:
        st.error(str(exc))
        if exc.job_id is not None:
            offer_recompute(exc.job_id)
    except FeatgeomError as exc:
        st.error(str(exc))
    except Exception as exc:
        log.exception("page failed")
        st.error(
            f"Something went wrong ({type(exc).__name__}): {exc}. Nothing already computed was lost; the details are in the server log."
        )


def offer_recompute(job_id: str) -> None:
    """A button that recomputes a job whose stored result this featgeom cannot read (same id, same
    params; the page follows it as any other job)."""
    if st.button("Recompute it", key=f"recompute_{job_id}", type="primary"):
        record = jobs.status(job_id)
        jobs.submit(record.kind, record.params, recompute=True)
        st.rerun()
