"""The app's pages (file, title, icon, URL path), declared once for st.navigation and for links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitAPIException


@dataclass(frozen=True)
class PageInfo:
    """One page of the app."""

    path: str
    title: str
    icon: str
    url_path: str  # the file's stem: a fresh server serves its first request in the pages/-directory mode, which knows only stems
    sidebar: bool = False
    """The page reads the sidebar's model, layers, activations and feature set (others do not draw it)."""


PAGES: tuple[PageInfo, ...] = (
    PageInfo("pages/home.py", "Home", ":material/home:", "", sidebar=True),
    PageInfo("pages/findings.py", "Findings", ":material/fact_check:", "findings"),
    PageInfo("pages/geometry.py", "Feature geometry", ":material/scatter_plot:", "geometry", sidebar=True),
    PageInfo("pages/energy.py", "Energy", ":material/bolt:", "energy", sidebar=True),
    PageInfo("pages/perturbation.py", "Perturbation", ":material/ssid_chart:", "perturbation", sidebar=True),
    PageInfo("pages/sparsity_validation.py", "Sparsity — validation", ":material/grain:", "sparsity_validation"),
    PageInfo("pages/sparsity_layers.py", "Sparsity — by layer", ":material/stacked_line_chart:", "sparsity_layers", sidebar=True),
    PageInfo("pages/dictionary_explorer.py", "Dictionary explorer", ":material/search:", "dictionary_explorer", sidebar=True),
    PageInfo("pages/interaction_graph.py", "Interaction graph", ":material/hub:", "interaction_graph"),
    PageInfo("pages/hessian_features.py", "Hessian features", ":material/blur_on:", "hessian_features"),
    PageInfo("pages/feature.py", "Feature", ":material/center_focus_strong:", "feature"),
    PageInfo("pages/jobs.py", "Jobs", ":material/list:", "jobs"),
)
BY_PATH = {page.path: page for page in PAGES}
BY_URL_PATH = {page.url_path: page for page in PAGES}


def page_info(page: object) -> PageInfo:
    """The PageInfo of a page st.navigation returned (by its URL path; Home's is empty)."""
    return BY_URL_PATH.get(str(getattr(page, "url_path", "")), PAGES[0])


def navigation_pages() -> list:
    """The st.Page objects for st.navigation (Home is the default page)."""
    return [st.Page(p.path, title=p.title, icon=p.icon, **({"url_path": p.url_path} if p.url_path else {"default": True})) for p in PAGES]


def link(path: str, label: str, query_params: Mapping[str, str] | None = None, icon: str | None = None) -> None:
    """A link to another page of the app, with query parameters; a plain link where the app runs a
    page outside st.navigation (a single page in a test harness), where st.page_link cannot resolve it."""
    page = BY_PATH[path]
    try:
        st.page_link(path, label=label, icon=icon or page.icon, query_params=dict(query_params or {}))
    except StreamlitAPIException:
        st.markdown(f"[{label}](/{page.url_path}{'?' + urlencode(dict(query_params)) if query_params else ''})")
