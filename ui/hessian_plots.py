"""Plotly builders and HTML for the Hessian-features page: shaping data for plots only, no analysis."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
STEEP_COLOR, INTERFERENCE_COLOR = "#1f77b4", "#d62728"
MAX_HEATMAP_SIDE = 128


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """The mean of each value and the ``window`` - 1 before it (fewer at the start)."""
    array = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(array, 0, 0.0))
    counts = np.minimum(np.arange(1, len(array) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(array) + 1) - counts]) / counts


def loss_figure(steps: Sequence[int], steep: Sequence[float], interference: Sequence[float], title: str = "Training losses") -> go.Figure:
    """L_steep (maximised) and L_interference (minimised) per step, each on its own log axis: each
    step's batch faint, a moving average over 5% of the steps on top."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    window = max(1, len(steps) // 20)
    for values, name, color, secondary in (
        (steep, "L_steep (maximised)", STEEP_COLOR, False),
        (interference, "L_interference (minimised)", INTERFERENCE_COLOR, True),
    ):
        if window > 1:
            figure.add_trace(
                go.Scatter(
                    x=list(steps),
                    y=list(values),
                    name=f"{name}, each batch",
                    mode="lines",
                    opacity=0.3,
                    line={"color": color, "width": 1},
                    showlegend=False,
                ),
                secondary_y=secondary,
            )
        figure.add_trace(
            go.Scatter(
                x=list(steps),
                y=moving_average(values, window),
                mode="lines",
                line={"color": color, "width": 2},
                name=name + (f", mean of {window} steps" if window > 1 else ""),
            ),
            secondary_y=secondary,
        )
    positive = all(v > 0 for v in list(steep) + list(interference) if math.isfinite(v))
    axis = {"type": "log", "dtick": 1, "exponentformat": "power"} if positive and len(steps) > 1 else {"type": "linear"}
    figure.update_yaxes(title_text="L_steep", secondary_y=False, color=STEEP_COLOR, **axis)
    figure.update_yaxes(title_text="L_interference", secondary_y=True, color=INTERFERENCE_COLOR, showgrid=False, **axis)
    figure.update_layout(
        title={"text": title, "font": {"size": 13}}, height=320, xaxis={"title": "step"}, legend={"orientation": "h", "y": -0.25}, **LAYOUT
    )
    return figure


def spectrum_figure(curvatures: np.ndarray, feature: int, labels: Sequence[str] = ()) -> go.Figure:
    """Each feature's activations across samples, sorted (rank against uᵀH(x)u, log scale); the
    chosen ``feature`` drawn on top, the others faint. ``curvatures`` (n_samples, k)."""
    figure = go.Figure()
    n, k = curvatures.shape
    ranks = np.arange(1, n + 1)
    for j in [j for j in range(k) if j != feature] + [feature]:
        order = np.argsort(-curvatures[:, j], kind="stable")
        chosen = j == feature
        hover = [labels[i] for i in order] if chosen and len(labels) == n else None
        figure.add_trace(
            go.Scatter(
                x=ranks,
                y=curvatures[order, j],
                name=f"feature {j}",
                mode="lines",
                line={"width": 2.5 if chosen else 1, "color": STEEP_COLOR if chosen else "#bbbbbb"},
                text=hover,
                hovertemplate="%{text}: %{y:.4g}<extra></extra>" if hover else None,
                showlegend=chosen,
            )
        )
    positive = bool((curvatures > 0).any())
    figure.update_layout(
        title={"text": f"Curvature spectrum across samples (feature {feature} in blue)", "font": {"size": 13}},
        height=320,
        xaxis={"title": "samples, by rank", "type": "log" if n > 20 else "linear"},
        yaxis={"title": "uᵀH(x)u", "type": "log" if positive else "linear"},
        **LAYOUT,
    )
    return figure


def interference_figure(matrix: np.ndarray) -> go.Figure:
    """The (k, k) interference matrix |cos(u_i, u_j)| x co-activation as a heatmap, the diagonal
    (a feature with itself, 1) left blank so the colours span the pairs."""
    k = matrix.shape[0]
    names = [f"f{j}" for j in range(k)]
    pairs = np.array(matrix, dtype=np.float64)
    np.fill_diagonal(pairs, np.nan)
    top = float(np.nanmax(pairs)) if k > 1 and np.isfinite(pairs).any() else 1.0
    figure = go.Figure(
        go.Heatmap(
            z=pairs, x=names, y=names, zmin=0, zmax=max(top, 1e-12), colorscale="Reds", hovertemplate="%{y} · %{x}: %{z:.4f}<extra></extra>"
        )
    )
    figure.update_layout(
        title={"text": f"Interference: |cos of directions| × co-activation (pairs; largest {top:.3g})", "font": {"size": 13}},
        height=340,
        yaxis={"autorange": "reversed"},
        **LAYOUT,
    )
    return figure


def pooled(matrix: np.ndarray, limit: int = MAX_HEATMAP_SIDE) -> tuple[np.ndarray, int, int]:
    """A large matrix shown in cells of fr x fc entries so neither side exceeds ``limit``, each
    cell the entry of largest magnitude (with its sign, so a few strong weights stay visible):
    (pooled, fr, fc). Small matrices come back as they are."""
    rows, cols = matrix.shape
    fr, fc = max(1, math.ceil(rows / limit)), max(1, math.ceil(cols / limit))
    if fr == 1 and fc == 1:
        return matrix, 1, 1
    padded = np.zeros((math.ceil(rows / fr) * fr, math.ceil(cols / fc) * fc))
    padded[:rows, :cols] = matrix
    cells = (
        padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc)
        .transpose(0, 2, 1, 3)
        .reshape(padded.shape[0] // fr, padded.shape[1] // fc, -1)
    )
    strongest = np.take_along_axis(cells, np.abs(cells).argmax(axis=2)[..., None], axis=2)[..., 0]
    return strongest, fr, fc


def _numbers_bar(direction: Mapping[str, np.ndarray], title: str) -> go.Figure:
    labels, values = [], []
    for name, tensor in direction.items():
        array = np.asarray(tensor)
        for index in np.ndindex(array.shape):
            labels.append(f"{name}[{','.join(map(str, index))}]")
            values.append(float(array[index]))
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker={"color": ["#1f77b4" if v >= 0 else "#d62728" for v in values]},
            hovertemplate="%{x}: %{y:.4f}<extra></extra>",
        )
    )
    figure.update_layout(title={"text": title, "font": {"size": 13}}, height=320, yaxis={"title": "component of u"}, **LAYOUT)
    return figure


def direction_figure(direction: Mapping[str, np.ndarray], title: str) -> go.Figure:
    """A direction drawn in the shape of its block: up to 32 numbers as labelled bars (the XOR
    net's six), otherwise one heatmap per 2-D parameter (the TMS W, an attention weight, averaged
    over cells when large) and bars for 1-D ones."""
    arrays = {name: np.asarray(t, dtype=np.float64) for name, t in direction.items()}
    if sum(a.size for a in arrays.values()) <= 32:
        return _numbers_bar(arrays, title)
    titles = []
    shown_arrays = {}
    for name, array in arrays.items():
        shown, fr, fc = pooled(array.reshape(array.shape[0], -1)) if array.ndim > 1 else (array, 1, 1)
        shown_arrays[name] = (shown, fr, fc)
        titles.append(name + (f" (strongest of each {fr}×{fc} cell)" if fr * fc > 1 else ""))
    figure = make_subplots(rows=1, cols=len(arrays), subplot_titles=titles)
    bound = max(float(np.abs(shown).max()) for shown, _, _ in shown_arrays.values()) or 1.0
    for column, (name, (shown, fr, fc)) in enumerate(shown_arrays.items(), start=1):
        if shown.ndim == 1:
            figure.add_trace(go.Bar(y=shown, name=name, showlegend=False), row=1, col=column)
            continue
        figure.add_trace(
            go.Heatmap(
                z=shown,
                x=np.arange(shown.shape[1]) * fc,
                y=np.arange(shown.shape[0]) * fr,
                zmid=0,
                zmin=-bound,
                zmax=bound,
                colorscale="RdBu",
                reversescale=True,
                name=name,
                hovertemplate=f"{name}<br>row %{{y}}, column %{{x}}: %{{z:.4g}}<extra></extra>",
                showscale=column == 1,
            ),
            row=1,
            col=column,
        )
        figure.update_yaxes(autorange="reversed", row=1, col=column)
    figure.update_layout(title={"text": title, "font": {"size": 13}}, height=420 if len(arrays) == 1 else 360, **LAYOUT)
    return figure


def _visible(text: str) -> str:
    return html.escape(text).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "⏎ ").replace("\t", "⇥ ")


def contexts_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """Top tokens in their context, the token highlighted, with the feature value: HTML lines
    (every piece of text escaped)."""
    lines = []
    for row in rows:
        token = _visible(row["token"]) or "&nbsp;"
        lines.append(
            f"<div style='font-family: monospace; white-space: pre-wrap; margin: 2px 0'>"
            f"<span style='color:#888'>{row['rank']}.</span> …{_visible(row['left'])}"
            f"<mark style='background:#ffd54f; font-weight:bold'>{token}</mark>{_visible(row['right'])}… "
            f"<span style='color:#888'>(text {row['text']}, value {row['value']:.4g})</span></div>"
        )
    return "\n".join(lines)
