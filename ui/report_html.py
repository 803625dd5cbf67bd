"""A page's current view as one self-contained HTML file (plotly's script inlined, so it opens
offline), and the data behind its figures as NPZ and CSV. Pure functions: no Streamlit."""

from __future__ import annotations

import csv
import html
import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from featgeom_core import __version__, codec


@dataclass
class ViewRecord:
    """What a page drew in one run: its title, its figures (by chart key, in drawing order), and
    the facts a reader needs (settings from the URL, fingerprints of the model and data)."""

    page: str
    figures: dict[str, go.Figure] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """What the page warned its reader about (e.g. probes that do not beat chance), in order."""
    link: str = ""
    """The view's URL (settings included), as 'Copy link to this view' gives it."""


def _figure_title(figure: go.Figure, key: str) -> str:
    title = figure.layout.title.text if figure.layout.title and figure.layout.title.text else None
    return str(title or key)


def report_html(view: ViewRecord) -> str:
    """The report: a header (page, featgeom version, time, link), the settings and fingerprints as
    tables, then every figure, interactive. Opens from disk with no network."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>featgeom · {html.escape(view.page)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-family:monospace}h2{margin-top:2em}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>featgeom · {html.escape(view.page)}</h1>",
        f"<p>featgeom {html.escape(__version__)} · exported {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
        + (f" · <a href='{html.escape(view.link)}'>open this view in the app</a>" if view.link else "")
        + "</p>",
        *(
            f"<p style='border:2px solid #c80;background:#fff4e0;padding:8px'><b>Warning:</b> {html.escape(text)}</p>"
            for text in view.warnings
        ),
        _table("Settings", view.settings),
        _table("Model and data fingerprints", view.fingerprints),
    ]
    for k, (key, figure) in enumerate(view.figures.items()):
        parts.append(f"<h2>{html.escape(_figure_title(figure, key))}</h2>")
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{k}"))
    parts.append(f"<p>Data behind the figures: the report's NPZ/CSV ({len(view.figures)} figures).</p></body></html>")
    return "\n".join(parts)


def _table(title: str, rows: Mapping[str, Any]) -> str:
    if not rows:
        return ""
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
        for k, v in rows.items()
    )
    return f"<h2>{html.escape(title)}</h2><table>{body}</table>"


def _trace_arrays(figure: go.Figure) -> dict[str, np.ndarray]:
    """x, y, z (and text) of every trace that has them, as numeric arrays where they are numeric."""
    arrays: dict[str, np.ndarray] = {}
    for t, trace in enumerate(figure.data):
        name = str(trace.name or t)
        for axis in ("x", "y", "z"):
            values = getattr(trace, axis, None)
            if values is None:
                continue
            array = np.asarray(values)
            if array.dtype == object:
                try:
                    array = array.astype(float)
                except (TypeError, ValueError):
                    array = array.astype(str)
            arrays[f"trace{t}:{name}:{axis}"] = array
    return arrays


def report_npz(view: ViewRecord) -> bytes:
    """Every figure's trace data, ``<figure key>/trace<k>:<name>:<x|y|z>``, plus the settings and
    fingerprints as a JSON string array ``meta``."""
    arrays: dict[str, np.ndarray] = {
        "meta": np.asarray(
            json.dumps(
                {
                    "page": view.page,
                    "settings": view.settings,
                    "fingerprints": view.fingerprints,
                    "warnings": view.warnings,
                    "featgeom": __version__,
                }
            )
        )
    }
    for key, figure in view.figures.items():
        for name, array in _trace_arrays(figure).items():
            arrays[f"{key}/{name}"] = array
    return codec.arrays_npz(arrays)


def report_csv(view: ViewRecord) -> str:
    """The same data in long form: figure, trace, axis, index, value (1-D and 2-D arrays)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "trace", "axis", "row", "column", "value"])
    for key, figure in view.figures.items():
        for name, array in _trace_arrays(figure).items():
            trace, axis = name.rsplit(":", 1)
            grid = np.atleast_2d(array) if array.ndim <= 2 else array.reshape(array.shape[0], -1)
            if array.ndim == 1:
                grid = array.reshape(-1, 1)
            for (r, c), value in np.ndenumerate(grid):
                writer.writerow([key, trace, axis, r, c, value])
    return out.getvalue()
