"""The interaction graph's node panel: what a clicked node is (facts and strongest edges from the
core's ``node_facts``) and what drives it (the (x, y) pattern, the digits that move it most, the
tokens in context), and the node reference kept in the URL (``node=<basis>:<layer>:<index>``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from featgeom_core.interaction.modadd import all_pairs
from featgeom_core.interaction.nodes import coordinates, layer_activations, node_facts, pattern_of, top_activating
from featgeom_core.interaction.params import DigitsTarget, InteractionGraphParams, LanguageTarget, ModAddTarget
from ui import graph_subgraph as subgraph

NodeRef = tuple[str, int, int]
"""(basis, node layer position k, direction index)."""


def parse_node(value: str) -> NodeRef:
    """``lib:1:5`` -> ("lib", 1, 5); ValueError otherwise (a bad link is dropped with a warning)."""
    kind, k, j = value.split(":")
    if not kind.isalpha() or int(k) < 0 or int(j) < 0:
        raise ValueError(f"{value!r} is not basis:layer:index")
    return kind, int(k), int(j)


def format_node(node: NodeRef) -> str:
    return f"{node[0]}:{node[1]}:{node[2]}"


def selected_node(event: Any, kind: str) -> NodeRef | None:
    """The node a Plotly selection event picked on ``kind``'s graph: node (k, j) is drawn at
    (x, y) = (k, -j); its customdata says the same where the event carries it."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and len(data) >= 2:
            return kind, int(data[0]), int(data[1])
        if point.get("x") is not None and point.get("y") is not None:
            return kind, int(round(float(point["x"]))), int(round(-float(point["y"])))
    return None


def _loaded(job_id: str, params: InteractionGraphParams):
    """The job's model with its data, once per session and job (shipped or stored: seconds)."""
    from featgeom_core.interaction.targets import load_target

    memo = st.session_state.setdefault("ig_loaded", {})
    if job_id not in memo:
        memo.clear()
        memo[job_id] = load_target(params.target)
    return memo[job_id]


def _layer_reading(
    job_id: str, graph: Any, k: int, model: Any, inputs_name: str, inputs: Callable[[], torch.Tensor], position: int | None = None
) -> torch.Tensor:
    """Node layer ``k``'s activations on the job's ``inputs`` (at ``position`` only, if given), the
    last layer read kept per session: a click on another direction of the same layer is then one
    product, not a forward pass over every input (113² of them for modular addition)."""
    memo = st.session_state.setdefault("ig_layer_reading", {})
    key = (job_id, graph.node_layers[k], inputs_name, position)
    if key not in memo:
        memo.clear()
        acts = layer_activations(model, graph, k, inputs())
        memo[key] = acts if position is None else acts[:, position : (position + 1) or None, :].clone()
    return memo[key]


def _edges_table(edges) -> pd.DataFrame:
    return pd.DataFrame([{"node layer": e.node_layer, "direction": e.index, "E": e.strength} for e in edges])


def _digits_figure(inputs: np.ndarray, top: list[tuple[int, int, float]]) -> go.Figure:
    """The top images side by side (8x8 each, one column of gap), signed value in the title."""
    tiles = []
    for i, _, _ in top:
        tiles += [inputs[i].reshape(8, 8), np.full((8, 1), np.nan)]
    figure = go.Figure(go.Heatmap(z=np.hstack(tiles[:-1])[::-1], colorscale="Greys", showscale=False, hoverinfo="skip"))
    figure.update_layout(
        title={"text": "test images that move the direction most: " + ", ".join(f"{v:+.3g}" for _, _, v in top), "font": {"size": 12}},
        height=180,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
    )
    return figure


def _pattern_figure(pattern: np.ndarray, title: str) -> go.Figure:
    figure = go.Figure(go.Heatmap(z=pattern, colorscale="RdBu", zmid=0.0, hovertemplate="x %{y}, y %{x}: %{z:.4g}<extra></extra>"))
    figure.update_layout(
        title={"text": title, "font": {"size": 12}},
        height=380,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"title": "y"},
        yaxis={"title": "x", "autorange": "reversed", "scaleanchor": "x"},
    )
    return figure


def _contexts(model_id: str, tokens: np.ndarray, top: list[tuple[int, int, float]], width: int = 8) -> pd.DataFrame:
    from featgeom_core.models import shared_model

    tokenizer = shared_model(model_id).tokenizer
    rows = []
    for window, position, value in top:
        before = tokenizer.decode(tokens[window, max(0, position - width) : position].tolist())
        token = tokenizer.decode(tokens[window, position : position + 1].tolist())
        rows.append({"value": value, "context": f"{before}[[{token}]]", "window": window, "position": position})
    return pd.DataFrame(rows)


def node_panel(
    container: Any, job_id: str, params: InteractionGraphParams, result: Any, modules: dict, node: NodeRef, pinnable: bool = True
) -> None:
    """The panel of ``node`` on the job's graph: facts, strongest edges, and what drives it;
    ``pinnable``: with the graph page's pin button (and a link to the node's feature page)."""
    from ui.report import chart

    kind, k, j = node
    if kind not in result.results:
        container.info(f"Basis {kind!r} is not in this build; click a node of one of {', '.join(result.results)}.")
        return
    basis = result.results[kind]
    facts = node_facts(basis.graph, modules[kind][0], k, j, top=8, fourier=basis.fourier)
    container.subheader(f"{kind.upper()} · {facts.layer} · direction {j}" + (" (the constant)" if facts.constant else ""))
    ref = format_node(node)
    if pinnable and kind == "lib":
        from featgeom_core.features.ref import FeatureRef
        from ui.feature_view import feature_link

        model = str(params.target.model) if isinstance(params.target, LanguageTarget) else ""  # a toy is named by its job
        feature_link(FeatureRef("lib", j, model=model, layer=str(k), job=job_id), "Open its feature page", container)
    if pinnable and container.button("Unpin" if ref in subgraph.state().pins else "Pin to the subgraph", key="ig_pin"):
        subgraph.toggle_pin(ref)
        st.rerun()
    columns = container.columns(4)
    columns[0].metric("eigenvalue", f"{facts.eigenvalue:.4g}")
    columns[1].metric("Leiden module", str(facts.module) if facts.module >= 0 else "none")
    columns[2].metric("share of edges in / out", f"{100 * facts.share_in:.1f}% / {100 * facts.share_out:.1f}%")
    if facts.fourier:
        columns[3].metric(
            "Fourier (kx, ky)", f"({int(facts.fourier['kx'])}, {int(facts.fourier['ky'])})", f"{100 * facts.fourier['share']:.0f}% of power"
        )
    left, right = container.columns(2)
    left.markdown("**Strongest incoming edges**")
    left.dataframe(_edges_table(facts.incoming), hide_index=True) if facts.incoming else left.caption("the first node layer: none")
    right.markdown("**Strongest outgoing edges**")
    right.dataframe(_edges_table(facts.outgoing), hide_index=True) if facts.outgoing else right.caption("the last node layer: none")
    loaded = _loaded(job_id, params)
    target = params.target
    if isinstance(target, ModAddTarget) and loaded.modulus:
        acts = _layer_reading(job_id, basis.graph, k, loaded.model, "all pairs, last position", lambda: all_pairs(loaded.modulus), -1)
        pattern = pattern_of(coordinates(acts, basis.graph, k, j), loaded.modulus)
        chart(container, _pattern_figure(pattern, f"direction {j} over every (x, y), at the last position"), key="ig_node_pattern")
    elif isinstance(target, DigitsTarget):
        values = coordinates(_layer_reading(job_id, basis.graph, k, loaded.model, "test", lambda: loaded.test_inputs), basis.graph, k, j)
        chart(container, _digits_figure(loaded.test_inputs[:, 0].numpy(), top_activating(values, 8)), key="ig_node_digits")
    elif isinstance(target, LanguageTarget):
        values = coordinates(_layer_reading(job_id, basis.graph, k, loaded.model, "basis", lambda: loaded.basis_inputs), basis.graph, k, j)
        container.markdown("**Tokens that move the direction most** (the token in [[ ]], 8 tokens of context before it)")
        container.dataframe(_contexts(target.model, loaded.basis_inputs.numpy(), top_activating(values, 12)), hide_index=True)
