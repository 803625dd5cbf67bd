"""Plotly figure builders: shaping data for plots only, no analysis."""

from __future__ import annotations

from collections.abc import Sequence

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
    figure.update_layout(
        title={"text": "importance weights", "font": {"size": 13}},
        height=300,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis={"rangemode": "tozero"},
    )
    return figure


def feature_scatter(X: np.ndarray, names: Sequence[str], title: str) -> go.Figure:
    """Abstract features as points with lines to the origin: 2-D, or 3-D (first three coordinates)."""
    X = np.asarray(X)
    labels = list(names)
    if X.shape[1] == 1:
        X = np.hstack([X, np.zeros_like(X)])
    traces = []
    three_d = X.shape[1] >= 3
    for point in X:
        if three_d:
            traces.append(
                go.Scatter3d(
                    x=[0, point[0]],
                    y=[0, point[1]],
                    z=[0, point[2]],
                    mode="lines",
                    line={"color": "#bbbbbb"},
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        else:
            traces.append(
                go.Scatter(x=[0, point[0]], y=[0, point[1]], mode="lines", line={"color": "#bbbbbb"}, showlegend=False, hoverinfo="skip")
            )
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
    figure.update_layout(
        title={"text": "objective per iteration", "font": {"size": 13}},
        height=300,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis={"type": "log" if np.all(np.asarray(trace) > 0) else "linear"},
        xaxis={"title": "iteration"},
    )
    return figure


KERNEL_COLORS = {"exp": "#1f77b4", "log": "#2ca02c", "riesz": "#d62728"}  # one colour per kernel; the target is the dash
TARGET_DASH = {"real": "solid", "permuted": "dash", "shuffled_labels": "dot"}
TARGET_LABEL = {"real": "real", "permuted": "permuted", "shuffled_labels": "shuffled labels"}
TARGET_COLORS = {"real": "#222222", "permuted": "#ff7f0e", "shuffled_labels": "#9467bd"}
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _band(
    figure: go.Figure, x: Sequence[float], low: Sequence[float], high: Sequence[float], colour: str, group: str, cell: dict[str, int]
) -> None:
    """A shaded band between ``low`` and ``high`` (one closed polygon, no legend entry)."""
    figure.add_trace(
        go.Scatter(
            x=list(x) + list(x)[::-1],
            y=list(high) + list(low)[::-1],
            fill="toself",
            fillcolor=_rgba(colour, 0.18),
            mode="lines",
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=group,
        ),
        **cell,
    )


def _line_with_spread(
    figure: go.Figure,
    x: Sequence[float],
    points: Sequence[dict],
    target: str,
    colour: str,
    name: str,
    cell: dict[str, int] | None = None,
    legend: bool = True,
) -> None:
    """The real target as a line with error bars (its noise draws); a control as a line inside a band
    (its seeds and draws). ``cell``: the subplot (row, col), if any."""
    cell = cell or {}
    mean = [p["mean"] for p in points]
    hover = [f"{p['mean']:.4g} [{p['low']:.4g}, {p['high']:.4g}]" for p in points]
    style = {
        "name": name,
        "legendgroup": name,
        "showlegend": legend,
        "mode": "lines+markers",
        "text": hover,
        "hovertemplate": "%{x}: %{text}<extra>" + name + "</extra>",
        "line": {"color": colour, "dash": TARGET_DASH.get(target, "dashdot")},
    }
    if target == "real":
        figure.add_trace(
            go.Scatter(
                x=x,
                y=mean,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [p["high"] - p["mean"] for p in points],
                    "arrayminus": [p["mean"] - p["low"] for p in points],
                },
                **style,
            ),
            **cell,
        )
        return
    _band(figure, x, [p["low"] for p in points], [p["high"] for p in points], colour, name, cell)
    figure.add_trace(go.Scatter(x=x, y=mean, **style), **cell)


def perturbation_plot(bands: Sequence[dict], similarity: str) -> go.Figure:
    """Distance after re-optimisation against sigma, one panel per kernel: the real target solid
    (error bars over noise draws), the permuted control dashed and the shuffled-label control
    dotted, each inside its band over seeds and draws (``energy.controls.distance_bands``)."""
    from plotly.subplots import make_subplots

    kernels = sorted({b["kernel"] for b in bands})
    figure = make_subplots(rows=1, cols=max(len(kernels), 1), shared_yaxes=True, subplot_titles=kernels, horizontal_spacing=0.04)
    for col, kernel in enumerate(kernels, start=1):
        for target in sorted(
            {b["target"] for b in bands if b["kernel"] == kernel}, key=lambda t: list(TARGET_DASH).index(t) if t in TARGET_DASH else 9
        ):
            points = sorted((b for b in bands if b["kernel"] == kernel and b["target"] == target), key=lambda p: p["sigma"])
            _line_with_spread(
                figure,
                [p["sigma"] for p in points],
                points,
                target,
                TARGET_COLORS.get(target, "#7f7f7f"),
                TARGET_LABEL.get(target, target),
                {"row": 1, "col": col},
                legend=col == 1,
            )
        figure.update_xaxes(type="log", title_text="perturbation scale σ", row=1, col=col)
    figure.update_yaxes(title_text="‖PSM − target‖ / N²", row=1, col=1)
    figure.update_layout(
        title={"text": f"{similarity}: distance to target after re-optimisation", "font": {"size": 13}},
        height=380,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return figure


def distance_by_layer(summary: Sequence[dict], similarity: str) -> go.Figure:
    """Per layer: the re-optimisation distance of each target (``energy.controls.control_summary``),
    averaged over kernels and σ: the real target with its draws' range, controls in their bands."""
    figure = go.Figure()
    rows = sorted((r for r in summary if r["similarity"] == similarity), key=lambda r: r["layer"])
    layers = [r["layer"] for r in rows]
    for target in TARGET_DASH:
        if not rows or target not in rows[0]:
            continue
        points = [{"mean": r[target], "low": r[f"{target}_low"], "high": r[f"{target}_high"]} for r in rows]
        _line_with_spread(figure, layers, points, target, TARGET_COLORS[target], TARGET_LABEL[target])
    figure.update_layout(
        title={"text": f"{similarity}: distance after re-optimisation, by layer", "font": {"size": 13}},
        height=360,
        **LAYOUT,
        xaxis={"title": "layer", "dtick": 1},
        yaxis={"title": "‖PSM − target‖ / N² (mean over kernels and σ)"},
    )
    return figure


def best_error_by_layer(error_bands: Sequence[dict]) -> go.Figure:
    """Joint error of the best configuration against layer, per (similarity, kernel): the real
    target solid, each control inside its band over seeds (``energy.controls.joint_error_bands``)."""
    figure = go.Figure()
    series: dict[tuple[str, str, str], list[dict]] = {}
    for row in error_bands:
        series.setdefault((row["similarity"], row["kernel"], row["target"]), []).append(row)
    for (similarity, kernel, target), points in sorted(series.items()):
        points = sorted(points, key=lambda r: r["layer"])
        _line_with_spread(
            figure,
            [p["layer"] for p in points],
            points,
            target,
            KERNEL_COLORS.get(kernel, "#7f7f7f"),
            f"{similarity} · {kernel} · {TARGET_LABEL.get(target, target)}",
        )
        figure.data[-1].marker = {"symbol": "circle" if similarity == "cosine" else "square"}
    figure.update_layout(
        title={"text": "best fit per layer: error per feature pair", "font": {"size": 13}},
        height=360,
        **LAYOUT,
        xaxis={"title": "layer", "dtick": 1},
        yaxis={"title": "‖PSM − target‖ / N²", "type": "log"},
    )
    return figure


def control_points(summary_units: dict[str, Sequence[float]], title: str) -> go.Figure:
    """One strip of points per target (every seed and draw) with its mean: the Energy page's
    comparison of one configuration against its controls."""
    figure = go.Figure()
    for target, values in summary_units.items():
        values = list(values)
        figure.add_trace(
            go.Box(
                y=values,
                name=TARGET_LABEL.get(target, target),
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": TARGET_COLORS.get(target, "#7f7f7f")},
                line={"color": TARGET_COLORS.get(target, "#7f7f7f")},
            )
        )
    figure.update_layout(
        title={"text": title, "font": {"size": 13}}, height=340, showlegend=False, **LAYOUT, yaxis={"title": "‖PSM − target‖ / N²"}
    )
    return figure
