"""'Copy link': the current view's URL (page, sidebar choices, every bound widget, the open job),
for a colleague on the same deployment."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st


def view_url() -> str:
    """The URL of this page with every query parameter this session holds (lists repeated)."""
    pairs = [(key, value) for key in st.query_params for value in st.query_params.get_all(key)]
    base = str(getattr(st.context, "url", "") or "")
    scheme, netloc, path, _, _ = urlsplit(base)
    return urlunsplit((scheme, netloc, path or "/", urlencode(pairs), ""))


def share_control() -> None:
    """A sidebar popover with the view's link in a code block (its copy icon copies it)."""
    with st.sidebar:
        _link_popover()


@st.fragment
def _link_popover() -> None:
    """The popover, its own fragment: opening it redraws only the link, from the query parameters
    as they are then (a part of a page that reruns alone, such as a graph click, changes them)."""
    with st.popover("Copy link to this view", icon=":material/link:", width="stretch", key="share_link", on_change="rerun"):
        st.code(view_url(), language=None, wrap_lines=True)
        st.caption(
            "Copy it with the icon at the right. Anyone on this deployment opens the same page, settings and "
            "result (after the access token, where one is set)."
        )
