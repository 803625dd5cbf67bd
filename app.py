"""featgeom: Streamlit entry point. The shared sidebar, then navigation over pages/."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="featgeom", page_icon="🧭", layout="wide")

from ui.state import sidebar  # noqa: E402  (set_page_config must come first)

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/geometry.py", title="Feature geometry", icon="🧭", url_path="geometry"),
]
navigation = st.navigation(pages)
st.session_state["selection"] = sidebar()
navigation.run()
