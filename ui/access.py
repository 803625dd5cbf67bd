"""The access-token gate of a shared deployment: asked once per browser session, before any page
(and so any download or job submission) runs. Open when no token is configured."""

from __future__ import annotations

import time

import streamlit as st

from featgeom_core.access import (
    configured_token,
    protect_store,
    store_accepts,
    tokens_match,
)
from featgeom_core.config import cache_dir
from featgeom_core.errors import FeatgeomError

ADMITTED = "_access_admitted"
WRONG_TOKEN_DELAY_S = 1.0  # slows guessing; a right token never waits


def admitted() -> bool:
    """True when this session may use the app; otherwise the gate is drawn and the caller stops."""
    if st.session_state.get(ADMITTED):
        return True
    try:
        token = configured_token()
    except FeatgeomError as exc:
        st.error(f"The deployment's access token is misconfigured: {exc}")
        return False
    root = cache_dir()
    if token is None:
        if store_accepts(root, None):
            st.session_state[ADMITTED] = True
            return True
        st.error(
            f"The result store at {root} is protected by an access token, but this app was started without one: "
            "start it with FEATGEOM_ACCESS_TOKEN (or FEATGEOM_ACCESS_TOKEN_FILE) set to the deployment's token."
        )
        return False
    protect_store(root, token)
    st.title("featgeom")
    with st.form("access_gate"):
        given = st.text_input(
            "Access token", type="password", key="_access_token_input", help="This deployment is shared: ask whoever runs it for the token."
        )
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        if tokens_match(given or "", token):
            st.session_state[ADMITTED] = True
            st.session_state.pop("_access_token_input", None)
            st.rerun()
        time.sleep(WRONG_TOKEN_DELAY_S)
        st.error("That is not this deployment's access token.")
    return False
