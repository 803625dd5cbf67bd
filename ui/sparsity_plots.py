"""Plotly builders for the sparsity pages: shaping data for plots only, no analysis."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from featgeom_core.sparsity.model import set_layer

METRIC_LABELS = {
    "normalized_loss": "normalised loss L_norm",
    "s_p": "average coefficient norm S_p",
    "n0": "non-zero entries N₀",
    "final_loss": "final loss L (data at mean norm 1)",
    "explained_variance": "explained variance",
}
CONTROL_COLORS = {"gaussian": "#d62728", "heavy_tailed": "#ff7f0e", "rademacher": "#8c564b"}
SPARSE_COLOR = "#1f77b4"
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}}


def metric_against_a(
    rows: Sequence[dict[str, Any]], metric: str, overlay: Sequence[dict[str, Any]] = (), labels: tuple[str, str] = ("", "")
) -> go.Figure:
    """The paper's Figure 1(a)/4: a metric of the sparse-linear sets against a, with the a/2 line
    and the planted coefficients' own S1; each control as a horizontal line. ``overlay``: the rows
    of a second result (e.g. the other coefficient step), drawn dashed."""
    figure = go.Figure()
    for these, label, dash in ((rows, labels[0], "solid"), (overlay, labels[1], "dash")):
        sparse = sorted((r for r in these if r["dataset"] == "sparse_linear"), key=lambda r: r["a"])
        if sparse:
            figure.add_trace(
                go.Scatter(
                    x=[r["a"] for r in sparse],
                    y=[r[metric] for r in sparse],
                    name=f"sparse-linear {label}".strip(),
                    mode="lines+markers",
                    line={"color": SPARSE_COLOR, "dash": dash},
                )
            )
        for row in these:
            if row["dataset"] != "sparse_linear":
                figure.add_hline(
                    y=row[metric],
                    line={"color": CONTROL_COLORS.get(row["dataset"], "#444"), "dash": "dashdot" if dash == "solid" else "dot"},
                    annotation_text=f"{row['dataset']} {label}".strip(),
                    annotation_position="top left",
                )
    sparse = sorted((r for r in rows if r["dataset"] == "sparse_linear"), key=lambda r: r["a"])
    if sparse and metric in ("s_p", "normalized_loss", "n0"):
        a = [r["a"] for r in sparse]
        figure.add_trace(
            go.Scatter(x=a, y=[x / 2 for x in a], name="a / 2 (the paper's truth)", mode="lines", line={"color": "#7f7f7f", "dash": "dash"})
        )
        figure.add_trace(
            go.Scatter(
                x=a,
                y=[r["planted_s1"] for r in sparse],
                name="planted coefficients' S1",
                mode="lines",
                line={"color": "#2ca02c", "dash": "dot"},
            )
        )
    figure.update_layout(
        title={"text": METRIC_LABELS.get(metric, metric), "font": {"size": 13}},
        height=360,
        **LAYOUT,
        xaxis={"title": "a (features active on average)"},
        yaxis={"title": metric},
    )
    return figure


def datasets_strip(rows: Sequence[dict[str, Any]], metric: str) -> go.Figure:
    """The paper's Figure 1(b): one marker per data set, sparse-linear (blue) against controls (red)."""
    labels = [f"a = {r['a']:g}" if r["dataset"] == "sparse_linear" else r["dataset"] for r in rows]
    colours = [SPARSE_COLOR if r["dataset"] == "sparse_linear" else CONTROL_COLORS.get(r["dataset"], "#d62728") for r in rows]
    figure = go.Figure(
        go.Bar(x=labels, y=[r[metric] for r in rows], marker={"color": colours}, hovertemplate="%{x}: %{y:.3f}<extra></extra>")
    )
    figure.update_layout(
        title={"text": f"{METRIC_LABELS.get(metric, metric)}: sparse-linear against the controls", "font": {"size": 13}},
        height=340,
        **LAYOUT,
        yaxis={"title": metric},
    )
    return figure


def _layer_position(name: str) -> float:
    return float(set_layer(name))


def metric_by_layer(results: Sequence[tuple[str, Any]], metric: str, calibration: Sequence[dict[str, Any]] = ()) -> go.Figure:
    """A metric per activation set (embeddings at -1, then layers), one line per result (label,
    ModelSparsityResult); the calibration's Gaussian control and sparse-linear a as reference lines."""
    figure = go.Figure()
    for label, result in results:
        sets = sorted(result.sets, key=lambda s: _layer_position(s.name))
        hover = [
            f"{s.name}: {s.metrics[metric]:.3f}" + (f" · like sparse-linear a ≈ {s.calibrated_a:.1f}" if s.calibrated_a else "")
            for s in sets
        ]
        figure.add_trace(
            go.Scatter(
                x=[_layer_position(s.name) for s in sets],
                y=[s.metrics[metric] for s in sets],
                name=label,
                mode="lines+markers",
                text=hover,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    for row in calibration:
        if metric not in row:
            continue
        if row["dataset"] == "gaussian":
            figure.add_hline(
                y=row[metric], line={"color": CONTROL_COLORS["gaussian"], "dash": "dashdot"}, annotation_text="Gaussian control"
            )
        else:
            figure.add_hline(
                y=row[metric],
                line={"color": "#bbbbbb", "dash": "dot", "width": 1},
                annotation_text=f"a = {row['a']:g}",
                annotation_position="right",
            )
    figure.update_layout(
        title={"text": f"{METRIC_LABELS.get(metric, metric)} by layer", "font": {"size": 13}},
        height=380,
        **LAYOUT,
        xaxis={"title": "layer (−1: token embeddings)", "dtick": 1},
        yaxis={"title": metric},
    )
    return figure


def histogram(counts: np.ndarray, edges: np.ndarray, title: str, x_title: str = "coefficient") -> go.Figure:
    """A histogram from counts and bin edges."""
    centres = (np.asarray(edges)[:-1] + np.asarray(edges)[1:]) / 2
    figure = go.Figure(go.Bar(x=centres, y=counts, width=np.diff(edges), hovertemplate="%{x:.3g}: %{y}<extra></extra>"))
    figure.update_layout(
        title={"text": title, "font": {"size": 13}}, height=280, **LAYOUT, xaxis={"title": x_title}, yaxis={"title": "count"}
    )
    return figure


def decomposition_bar(atoms: Sequence[int], values: Sequence[float], labels: Sequence[str], title: str) -> go.Figure:
    """One token occurrence's atoms and coefficients, each labelled by its top tokens."""
    order = np.argsort(values)[::-1]
    figure = go.Figure(
        go.Bar(
            x=[f"atom {atoms[i]}" for i in order],
            y=[values[i] for i in order],
            text=[labels[i] for i in order],
            hovertemplate="%{x}: %{y:.3f}<br>%{text}<extra></extra>",
        )
    )
    figure.update_layout(title={"text": title, "font": {"size": 13}}, height=320, **LAYOUT, yaxis={"title": "coefficient"})
    return figure


def token_in_context(tokens: Sequence[str], position: int, width: int = 8, as_html: bool = True) -> str:
    """The tokens around ``position`` with that one highlighted (WordPiece ## joined): HTML with a
    mark, or plain text with the token in brackets."""
    start, end = max(0, position - width), min(len(tokens), position + width + 1)
    parts = []
    for k in range(start, end):
        text = tokens[k]
        joined = text[2:] if text.startswith("##") else " " + text
        if not as_html:
            parts.append(f" [{joined.strip()}]" if k == position else joined)
            continue
        escaped = html.escape(joined)
        parts.append(
            f"<mark style='background:#ffd54f;padding:0 2px;border-radius:3px'><b>{escaped}</b></mark>" if k == position else escaped
        )
    return ("… " if start > 0 else "") + "".join(parts).strip() + (" …" if end < len(tokens) else "")
