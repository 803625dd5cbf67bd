"""AppTest harness: app.py's shared frame and one page, without st.navigation.

AppTest (Streamlit 1.67) keeps only the page's own elements on reruns under st.navigation, so
sidebar interactions (uploads, widget changes) are tested here; the page to run comes from
the ``page`` query parameter.
"""

import runpy
from pathlib import Path

import streamlit as st

from ui.state import shared_frame

shared_frame()
runpy.run_path(str(Path(__file__).resolve().parents[2] / st.query_params.get("page", "pages/home.py")), run_name="__page__")
