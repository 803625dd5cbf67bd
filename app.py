"""featgeom: Streamlit entry point. The shared sidebar, then navigation over pages/."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="featgeom", page_icon="🧭", layout="wide")

from ui.state import shared_frame  # noqa: E402  (set_page_config must come first)

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/geometry.py", title="Feature geometry", icon=":material/scatter_plot:", url_path="geometry"),
    st.Page("pages/energy.py", title="Energy", icon=":material/bolt:", url_path="energy"),
    st.Page("pages/perturbation.py", title="Perturbation", icon=":material/ssid_chart:", url_path="perturbation"),
    st.Page("pages/jobs.py", title="Jobs", icon=":material/list:", url_path="jobs"),
]
navigation = st.navigation(pages)
shared_frame()
navigation.run()
