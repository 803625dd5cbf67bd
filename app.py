"""featgeom: Streamlit entry point. The shared sidebar, then navigation over pages/."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="featgeom", page_icon="🧭", layout="wide")

from ui.access import admitted  # noqa: E402  (set_page_config must come first)
from ui.links import navigation_pages, page_info  # noqa: E402
from ui.report import report_controls, start  # noqa: E402
from ui.share import share_control  # noqa: E402
from ui.state import shared_frame  # noqa: E402


def main() -> None:
    """One run of the app: the gate, the sidebar, the page, then the view's link and report."""
    if not admitted():  # a shared deployment's token, once per session; open on a laptop
        st.stop()
    navigation = st.navigation(navigation_pages())
    selection = shared_frame(show_sidebar=page_info(navigation).sidebar)
    start(navigation.title)
    navigation.run()
    # after the page, so the link and the report hold the page's own settings and figures of this run
    share_control()
    report_controls(selection.fingerprints)


# Dask's local workers are spawned processes that re-import this file as __mp_main__: only
# Streamlit's run (as __main__) draws the app.
if __name__ == "__main__":
    main()
