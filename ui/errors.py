"""Show failures as messages in the page, never as a traceback in the browser."""

from __future__ import annotations

import logging
from typing import Callable

import streamlit as st

from featgeom_core.errors import FeatgeomError

log = logging.getLogger("featgeom.ui")


def render_safely(render: Callable[[], None]) -> None:
    """Run a page body; a FeatgeomError shows its message, anything else a short error (traceback to the server log)."""
    try:
        render()
    except FeatgeomError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001  (a page must not leak a traceback)
        log.exception("page failed")
        st.error(f"Something went wrong ({type(exc).__name__}): {exc}. Nothing already computed was lost; the details are in the server log.")
