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
