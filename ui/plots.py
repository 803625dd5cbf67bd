"""Plotly figure builders: shaping data for plots only, no analysis."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

# One colour scale per similarity kind, shared by every heatmap of that kind.
COLOR_SCALES: dict[str, dict[str, object]] = {
    "cosine": {"colorscale": "RdBu", "reversescale": True, "zmin": -1.0, "zmax": 1.0},
    "rbf": {"colorscale": "Viridis", "zmin": 0.0, "zmax": 1.0},
}


def psm_heatmap(matrix: np.ndarray, names: Sequence[str], title: str, kind: str, height: int = 360) -> go.Figure:
    """A PSM heatmap with feature names on both axes and the value on hover."""
    labels = list(names)
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            hovertemplate="%{y} · %{x}<br>" + kind + " = %{z:.3f}<extra></extra>",
            colorbar={"thickness": 10},
            **COLOR_SCALES[kind],
        )
    )
    figure.update_layout(
        title={"text": title, "font": {"size": 13}},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis={"autorange": "reversed", "scaleanchor": "x"},
        xaxis={"tickangle": -45},
    )
    return figure


def weights_bar(names: Sequence[str], weights: np.ndarray) -> go.Figure:
    """Importance weights per feature."""
    figure = go.Figure(go.Bar(x=list(names), y=weights, hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
    figure.update_layout(title={"text": "importance weights", "font": {"size": 13}}, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, yaxis={"rangemode": "tozero"})
    return figure


def feature_scatter(X: np.ndarray, names: Sequence[str], title: str) -> go.Figure:
    """Abstract features as points with lines to the origin: 2-D, or 3-D (first three coordinates)."""
    X = np.asarray(X)
    labels = list(names)
    if X.shape[1] == 1:
        X = np.hstack([X, np.zeros_like(X)])
    traces = []
    three_d = X.shape[1] >= 3
    for point, label in zip(X, labels):
        if three_d:
            traces.append(go.Scatter3d(x=[0, point[0]], y=[0, point[1]], z=[0, point[2]], mode="lines", line={"color": "#bbbbbb"}, showlegend=False, hoverinfo="skip"))
        else:
            traces.append(go.Scatter(x=[0, point[0]], y=[0, point[1]], mode="lines", line={"color": "#bbbbbb"}, showlegend=False, hoverinfo="skip"))
    if three_d:
        traces.append(go.Scatter3d(x=X[:, 0], y=X[:, 1], z=X[:, 2], mode="markers+text", text=labels, marker={"size": 5}, showlegend=False))
    else:
        traces.append(go.Scatter(x=X[:, 0], y=X[:, 1], mode="markers+text", text=labels, textposition="top center", showlegend=False))
    figure = go.Figure(traces)
    figure.update_layout(title={"text": title, "font": {"size": 13}}, height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    if not three_d:
        figure.update_yaxes(scaleanchor="x")
    return figure


def objective_trace(trace: np.ndarray) -> go.Figure:
    """The objective per L-BFGS iteration (log scale)."""
    figure = go.Figure(go.Scatter(y=trace, mode="lines"))
    figure.update_layout(title={"text": "objective per iteration", "font": {"size": 13}}, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         yaxis={"type": "log" if np.all(np.asarray(trace) > 0) else "linear"}, xaxis={"title": "iteration"})
    return figure


KERNEL_COLORS = {"exp": "#1f77b4", "log": "#2ca02c", "riesz": "#d62728"}  # one colour per kernel; the target is the dash


def perturbation_plot(rows: Sequence[dict], similarity: str) -> go.Figure:
    """Distance after re-optimisation against sigma: real solid, permuted dashed (one line per kernel)."""
    figure = go.Figure()
    series: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row["similarity"] == similarity:
            series.setdefault((row["target"], row["kernel"]), []).append(row)
    for (target, kernel), points in sorted(series.items()):
        points = sorted(points, key=lambda r: r["sigma"])
        figure.add_trace(go.Scatter(
            x=[p["sigma"] for p in points], y=[p["distance"] for p in points], name=f"{kernel} · {target}",
            error_y={"type": "data", "array": [p["distance_std"] for p in points]},
            line={"dash": "solid" if target == "real" else "dash", "color": KERNEL_COLORS.get(kernel)}, mode="lines+markers",
        ))
    figure.update_layout(title={"text": f"{similarity}: distance to target after re-optimisation", "font": {"size": 13}}, height=380,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10}, xaxis={"title": "perturbation scale σ", "type": "log"}, yaxis={"title": "‖PSM − target‖ / N²"})
    return figure


def best_error_by_layer(best: Sequence[dict]) -> go.Figure:
    """Joint error of the best configuration against layer, one line per (similarity, kernel):
    real targets solid, permuted controls dashed."""
    figure = go.Figure()
    series: dict[tuple[str, str, str], list[dict]] = {}
    for row in best:
        series.setdefault((row["similarity"], row["kernel"], row["target"]), []).append(row)
    for (similarity, kernel, target), points in sorted(series.items()):
        points = sorted(points, key=lambda r: r["layer"])
        figure.add_trace(go.Scatter(
            x=[p["layer"] for p in points], y=[p["joint_error"] for p in points], name=f"{similarity} · {kernel} · {target}",
            line={"dash": "solid" if target == "real" else "dash", "color": KERNEL_COLORS.get(kernel)},
            marker={"symbol": "circle" if similarity == "cosine" else "square"}, mode="lines+markers",
        ))
    figure.update_layout(title={"text": "best fit per layer: error per feature pair", "font": {"size": 13}}, height=360,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10}, xaxis={"title": "layer", "dtick": 1}, yaxis={"title": "‖PSM − target‖ / N²", "type": "log"})
    return figure
