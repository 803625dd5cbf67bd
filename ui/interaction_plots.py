"""Plotly builders for the interaction-graph page: shaping a stored graph for plots only."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from featgeom_core.interaction.nodes import Pruned
from featgeom_core.interaction.result import InteractionGraph

WIDTH_BINS = (0.6, 1.5, 3.0, 5.0)  # line widths of the four edge-strength bins
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}}


def top_edges(E: np.ndarray, top_k: int, skip_constant: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of the ``top_k`` largest edges of E (n_out, n_in), the constant input
    direction (column 0 where ``skip_constant``) left out."""
    values = E.copy()
    if skip_constant:
        values[:, 0] = 0.0
    flat = values.ravel()
    k = int(min(top_k, int((flat > 0).sum())))
    if k <= 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    order = np.argpartition(-flat, k - 1)[:k]
    rows, cols = np.unravel_index(order, values.shape)
    return rows, cols, flat[order]


def _digest(figure: go.Figure) -> str:
    """A digest of the figure's traces (coordinates, colours, texts)."""
    digest = hashlib.blake2b(digest_size=12)
    for trace in figure.data:
        for name in ("x", "y"):
            digest.update(np.asarray(trace[name], dtype=float).tobytes())
        digest.update(repr((trace.marker.color, trace.line.color if hasattr(trace, "line") else None, trace.text)).encode())
    return digest.hexdigest()


def layered_graph(
    graph: InteractionGraph,
    modules: Sequence[np.ndarray],
    top_k: int,
    title: str,
    fourier: Sequence[Sequence[dict[str, float]]] = (),
    selected: tuple[int, int] | None = None,
    pruned: Pruned | None = None,
) -> go.Figure:
    """Node layers as columns, directions top to bottom by importance, nodes coloured by module;
    each layer pair's ``top_k`` edges in four traces binned by log E (so thousands stay fast). Node
    traces carry (node layer, direction) as customdata, for clicks; ``selected`` is ringed; with
    ``pruned``, only its edges are drawn and the nodes it drops are faded."""
    figure = go.Figure()
    parts = []  # per layer pair: (x0, y0, x1, y1, E) of each drawn edge
    for k, E in enumerate(graph.edges):
        rows, cols, values = top_edges(E.numpy() * pruned.edges[k] if pruned else E.numpy(), top_k, graph.bases[k].constant_first)
        parts.append(np.stack([np.full(len(rows), k), -cols, np.full(len(rows), k + 1), -rows, values], axis=1))
    edges = np.concatenate(parts) if parts else np.zeros((0, 5))
    if len(edges):
        logs = np.log10(np.maximum(edges[:, 4], 1e-300))
        cuts = np.quantile(logs, [0.5, 0.8, 0.95]) if len(logs) > 3 else np.zeros(0)
        bins = np.digitize(logs, cuts)
        for b, width in enumerate(WIDTH_BINS):
            chosen = edges[bins == b]
            if not len(chosen):
                continue
            # one polyline per bin, segments split by NaN (a gap): numpy arrays go to the browser as typed arrays
            xs = np.full(3 * len(chosen), np.nan)
            ys = np.full(3 * len(chosen), np.nan)
            xs[0::3], ys[0::3], xs[1::3], ys[1::3] = chosen[:, 0], chosen[:, 1], chosen[:, 2], chosen[:, 3]
            figure.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"width": width, "color": f"rgba(60,60,60,{0.25 + 0.18 * b})"},
                    hoverinfo="skip",
                    name=f"edges, strength bin {b + 1}",
                    showlegend=False,
                )
            )
    for k, basis in enumerate(graph.bases):
        n = basis.dim
        module = modules[k] if k < len(modules) else np.full(n, -1)
        colours = ["#bbbbbb" if m < 0 else PALETTE[int(m) % len(PALETTE)] for m in module]
        if pruned is not None:
            colours = [c if keep else "rgba(200,200,200,0.35)" for c, keep in zip(colours, pruned.nodes[k])]
        values = basis.values.numpy()
        texts = []
        for j in range(n):
            constant = " (constant)" if basis.constant_first and j == 0 else ""
            text = f"{graph.node_layers[k]}<br>direction {j}{constant}<br>eigenvalue {values[j]:.4g}<br>module {module[j]}"
            if fourier and k < len(fourier) and j < len(fourier[k]):
                f = fourier[k][j]
                text += f"<br>Fourier ({f['kx']}, {f['ky']}), {100 * f['share']:.0f}% of power"
            texts.append(text)
        figure.add_trace(
            go.Scatter(  # not WebGL: a click on a node must select it
                x=[k] * n,
                y=-np.arange(n),
                mode="markers",
                marker={"size": 7, "color": colours, "line": {"width": 0.5, "color": "#333"}},
                text=texts,
                customdata=np.stack([np.full(n, k), np.arange(n)], axis=1),
                hovertemplate="%{text}<extra></extra>",
                name=graph.node_layers[k],
                showlegend=False,
            )
        )
    ring = []
    if selected is not None and 0 <= selected[0] < len(graph.bases) and 0 <= selected[1] < graph.bases[selected[0]].dim:
        ring = [
            {  # a layout shape, not a trace: the traces stay as they were, so the browser redraws only the ring
                "type": "circle",
                "xref": "x",
                "yref": "y",
                "xsizemode": "pixel",
                "ysizemode": "pixel",
                "xanchor": selected[0],
                "yanchor": -selected[1],
                "x0": -8,
                "x1": 8,
                "y0": -8,
                "y1": 8,
                "line": {"width": 2.5, "color": "#d62728"},
                "name": "selected",
            }
        ]
    figure.update_layout(
        title={"text": title, "font": {"size": 13}},
        shapes=ring,
        # the traces' identity, so Plotly.react may take unchanged traces as they were (the time a click saves
        # comes from not resending the figure at all; see the page); uirevision keeps the reader's zoom
        datarevision=_digest(figure),
        uirevision=title,
        height=620,
        **LAYOUT,
        xaxis={"tickvals": list(range(len(graph.node_layers))), "ticktext": graph.node_layers, "showgrid": False},
        yaxis={"title": "direction (most important at the top)", "showticklabels": False, "showgrid": False},
    )
    return figure


def node_ablation_figure(curves: dict[str, dict[str, dict[int, float]]], metric: str, base: float) -> go.Figure:
    """{basis: {layer: {kept: score}}}: the score as each layer keeps fewer directions."""
    figure = go.Figure()
    for b, (kind, per_layer) in enumerate(curves.items()):
        for layer, curve in per_layer.items():
            kept = sorted(curve)
            figure.add_trace(
                go.Scatter(
                    x=kept,
                    y=[curve[n] for n in kept],
                    mode="lines+markers",
                    name=f"{kind} · {layer}",
                    line={"dash": ("solid", "dash", "dot", "dashdot")[b % 4]},
                    marker={"size": 4},
                )
            )
    figure.add_hline(y=base, line={"color": "#888", "dash": "dot"}, annotation_text="unablated")
    figure.update_layout(
        title={"text": f"Node ablation: {metric} keeping the n most important directions", "font": {"size": 13}},
        height=380,
        **LAYOUT,
        xaxis={"title": "directions kept"},
        yaxis={"title": metric},
    )
    return figure


def bisect_figure(bisects: dict[str, dict[str, dict[str, Any]]], metric: str, base: float, tolerance: float) -> go.Figure:
    """{basis: {layer: trace}}: every kept-edge count the bisect tried and its score, log x."""
    figure = go.Figure()
    for b, (kind, per_layer) in enumerate(bisects.items()):
        for layer, trace in per_layer.items():
            tried = sorted(trace["tried"])
            figure.add_trace(
                go.Scatter(
                    x=[max(t[0], 1) for t in tried],
                    y=[t[1] for t in tried],
                    mode="lines+markers",
                    name=f"{kind} · {layer}: {trace['required']} edges",
                    line={"dash": ("solid", "dash", "dot", "dashdot")[b % 4]},
                )
            )
    figure.add_hline(y=base, line={"color": "#888", "dash": "dot"}, annotation_text="unablated")
    figure.add_hline(
        y=base - tolerance if metric == "accuracy" else base + tolerance,
        line={"color": "#d62728", "dash": "dash"},
        annotation_text="tolerance",
    )
    figure.update_layout(
        title={"text": f"Edge ablation bisect: {metric} against edges kept", "font": {"size": 13}},
        height=380,
        **LAYOUT,
        xaxis={"title": "edges kept", "type": "log"},
        yaxis={"title": metric},
    )
    return figure


def training_figure(history: dict[str, list[float]], label: str) -> go.Figure:
    """Test accuracy (and train loss, log scale, right axis) against the epoch of a training job."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=history["epoch"], y=history["test_accuracy"], name="test accuracy", mode="lines"))
    figure.add_trace(
        go.Scatter(x=history["epoch"], y=history["train_loss"], name="train loss", mode="lines", yaxis="y2", line={"dash": "dot"})
    )
    figure.update_layout(
        title={"text": f"Training job {label}", "font": {"size": 13}},
        height=300,
        **LAYOUT,
        xaxis={"title": "epoch"},
        yaxis={"title": "test accuracy", "range": [0, 1.02]},
        yaxis2={"title": "train loss", "type": "log", "overlaying": "y", "side": "right"},
    )
    return figure
