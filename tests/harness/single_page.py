"""AppTest harness: app.py's shared frame and one page, without st.navigation.

AppTest (Streamlit 1.67) keeps only the page's own elements on reruns under st.navigation, so
sidebar interactions (uploads, widget changes) are tested here; the page to run comes from
the ``page`` query parameter.
"""

import runpy
import sys
from pathlib import Path

import streamlit as st

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ui.state import shared_frame  # noqa: E402

shared_frame()
runpy.run_path(str(REPO_ROOT / st.query_params.get("page", "pages/home.py")), run_name="__page__")
