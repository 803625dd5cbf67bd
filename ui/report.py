"""Reports of the current view: every page draws its figures through :func:`chart`, which records
them for this run; the sidebar offers the view as one HTML file and its data as NPZ and CSV."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from ui.report_html import ViewRecord, report_csv, report_html, report_npz
from ui.share import view_url

RECORD = "_report_view"


def start(page: str) -> None:
    """Begin this run's record (a full run; a fragment's rerun adds to the last one by chart key)."""
    st.session_state[RECORD] = ViewRecord(page)


def chart(container: Any, figure: go.Figure, key: str | None = None, **kwargs: Any) -> Any:
    """``container.plotly_chart(figure, key=...)``, recording the figure for the report."""
    record: ViewRecord | None = st.session_state.get(RECORD)
    if record is not None:
        record.figures[key or f"figure-{len(record.figures)}"] = figure
    return container.plotly_chart(figure, key=key, **kwargs)


def warn(container: Any, text: str) -> None:
    """``container.warning(text)``, recording the warning for the report (shown at its top)."""
    record: ViewRecord | None = st.session_state.get(RECORD)
    if record is not None and text not in record.warnings:
        record.warnings.append(text)
    container.warning(text, icon=":material/warning:")


def refresh_view() -> None:
    """Take the view's settings and link from the query parameters as they are now. A part of a page
    that reruns alone (a fragment, such as the graph's click) calls it after changing them, so the
    report built on the next download carries them."""
    record: ViewRecord | None = st.session_state.get(RECORD)
    if record is not None:
        record.settings = {key: ",".join(st.query_params.get_all(key)) for key in st.query_params}
        record.link = view_url()


def report_controls(fingerprints: Callable[[], dict[str, str]]) -> None:
    """Sidebar downloads of this view's report (HTML) and data (NPZ, CSV); each built on click
    (``fingerprints`` too: hashing a feature set is not free)."""
    record: ViewRecord | None = st.session_state.get(RECORD)
    if record is None:
        return
    refresh_view()

    def complete() -> ViewRecord:
        record.fingerprints = fingerprints()
        return record

    stem = "featgeom-" + "".join(c if c.isalnum() else "-" for c in record.page.lower()).strip("-")
    with st.sidebar.popover("Export this view", icon=":material/description:", width="stretch"):
        st.caption(f"{len(record.figures)} figure(s), interactive; the settings, fingerprints and featgeom version; opens offline.")
        st.download_button(
            "Report (HTML)",
            data=lambda: report_html(complete()),  # built on click, with the link as the last run (or fragment) left it
            file_name=f"{stem}.html",
            mime="text/html",
            key="report_html",
            on_click="ignore",
            width="stretch",
        )
        st.download_button(
            "Its data (NPZ)",
            data=lambda: report_npz(complete()),
            file_name=f"{stem}.npz",
            mime="application/octet-stream",
            key="report_npz",
            on_click="ignore",
            width="stretch",
        )
        st.download_button(
            "Its data (CSV)",
            data=lambda: report_csv(complete()),
            file_name=f"{stem}.csv",
            mime="text/csv",
            key="report_csv",
            on_click="ignore",
            width="stretch",
        )
