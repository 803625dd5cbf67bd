"""featgeom: Streamlit entry point. The shared sidebar, then navigation over pages/."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="featgeom", page_icon="🧭", layout="wide")

from ui.access import admitted  # noqa: E402  (set_page_config must come first)
from ui.links import navigation_pages  # noqa: E402
from ui.state import shared_frame  # noqa: E402

if not admitted():  # a shared deployment's token, once per session; open on a laptop
    st.stop()
navigation = st.navigation(navigation_pages())
shared_frame()
navigation.run()
