"""Interaction graph: LIB and PCA (or neuron, GIB) graphs of the modular-addition transformer or the
digits MLP side by side, with Leiden modules, node and edge ablation curves and downloads
(Bushnaq et al. 2024)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from featgeom_core import codec, jobs
from featgeom_core.interaction.checkpoints import store_upload
from featgeom_core.interaction.jobs import LIB_GRAPH, LIB_TRAIN_DIGITS, LIB_TRAIN_MODADD
from featgeom_core.interaction.modules import leiden_modules
from featgeom_core.interaction.nodes import prune_by_influence
from featgeom_core.interaction.params import (
    SCRATCH,
    TRAIN_JOB_PREFIX,
    TRAINED,
    AblationParams,
    GraphParams,
    InteractionGraphParams,
    LanguageTarget,
    ModulesParams,
    default_windows,
)
from featgeom_core.interaction.shipped import shipped_record
from ui import graph_subgraph as subgraph
from ui import params as widgets
from ui.errors import render_safely
from ui.graph_node import format_node, node_panel, parse_node, selected_node
from ui.interaction_plots import (
    bisect_figure,
    layered_graph,
    node_ablation_figure,
    training_figure,
)
from ui.jobs import adopt_job_from_url, open_finished, show_when_done
from ui.report import chart, refresh_view
from ui.state import adopt_url, one_of, set_query

MODELS = {
    "modadd": "modular-addition transformer (p = 113)",
    "digits": "digits MLP (scikit-learn's 8x8 digits)",
    "language": "a language model's block (MiniLM or SmolLM2 offline)",
}
SOURCES = {
    "trained": "ours (modular addition: the lab's shipped checkpoint; digits: trained here once)",
    "scratch": "train from scratch here (modular addition: tens of minutes on a CPU)",
    "job": "a finished training job",
    "upload": "upload a state dict (.pt)",
}


def settings() -> dict | None:
    """The job's params from the page's widgets (model, checkpoint, bases, tolerance in the URL)."""
    adopt_url("net", one_of(MODELS), "ig_model")
    adopt_url("tolerance", float, "ig_tolerance")
    adopt_url("source", one_of(SOURCES), "ig_source")
    adopt_url("train", str, "ig_train_job")
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("Model", list(MODELS), format_func=MODELS.get, key="ig_model")
    bases = widgets.multiselect(InteractionGraphParams, "bases", "Bases", "ig_bases", options=["lib", "pca", "neuron", "gib"], container=c3)
    if model == "language":
        return language_settings(c2, bases)
    source = c2.selectbox("Checkpoint", list(SOURCES), format_func=SOURCES.get, key="ig_source")
    checkpoint = SCRATCH if source == "scratch" else TRAINED
    if source == "job":
        train_kind = LIB_TRAIN_MODADD if model == "modadd" else LIB_TRAIN_DIGITS
        done = [r.job_id for r in train_kind.finished()]
        if not done:
            st.info(f"No finished {train_kind.name} job yet; the graph job trains one itself with checkpoint 'trained here'.")
            return None
        if st.session_state.get("ig_train_job") not in done:
            st.session_state.pop("ig_train_job", None)
        train_job = st.selectbox("Training job", done, key="ig_train_job")
        checkpoint = TRAIN_JOB_PREFIX + train_job
        chart(st, training_figure(train_kind.load(train_job).history, train_job), key="ig_training")
    elif source == "upload":
        upload = st.file_uploader(
            "State dict (torch.save of model.state_dict(); read with weights_only=True)", type=["pt", "pth", "bin"], key="ig_upload"
        )
        if upload is None:
            return None
        if st.session_state.get("ig_upload_id") != upload.file_id:  # hash and check each file once, not on every rerun
            st.session_state["ig_upload_ref"] = store_upload(upload.getvalue())
            st.session_state["ig_upload_id"] = upload.file_id
        checkpoint = st.session_state["ig_upload_ref"]
    tolerance, graph = rule_settings()
    set_query(net=model, tolerance=f"{tolerance:g}")
    if model == "modadd" and checkpoint == TRAINED:
        record = shipped_record()
        if record is not None:
            st.caption(
                f"The lab's checkpoint, trained with the peer's recipe (seed 0, {record['epochs_trained']:,} epochs, test accuracy "
                f"{record['test_accuracy']:.4f}, SHA-256 {record['sha256'][:12]}…) loads at once; the default build (LIB and PCA "
                "graphs, ablations and bisects) then takes about 4 minutes on a 2-core CPU."
            )
    if model == "modadd" and checkpoint == SCRATCH:
        st.caption(
            "The first build trains the transformer with the peer's recipe (AdamW, weight decay 1, full batch) until it "
            "generalises: tens of minutes on a CPU, once; every later build reuses it."
        )
    return {
        "target": {"kind": model, "checkpoint": checkpoint},
        "bases": bases or ["lib"],
        "graph": graph,
        "ablation": {"tolerance": float(tolerance)},
    }


def rule_settings() -> tuple[float, dict]:
    """The edge tolerance and the integration rule, shared by every model."""
    c4, c5, c6 = st.columns(3)
    tolerance = widgets.number_input(AblationParams, "tolerance", "Edge-ablation tolerance", "ig_tolerance", container=c4)
    integration = widgets.selectbox(GraphParams, "integration", "Integration rule", "ig_integration", container=c5)
    intervals = widgets.number_input(
        GraphParams, "n_intervals", "Integration intervals", "ig_intervals", container=c6, default=0 if integration == "gradient" else 4
    )
    return float(tolerance), {"integration": integration, "n_intervals": int(intervals if integration != "gradient" else 0)}


def language_settings(container, bases: list[str]) -> dict:
    """A language model's block: the model id, the block, the tokens; float32, mse against the unablated block output."""
    adopt_url("lm", str, "ig_lm")
    adopt_url("block", int, "ig_block")
    adopt_url("windows", int, "ig_windows")
    adopt_url("tokens", int, "ig_tokens")
    model_id = (
        container.text_input(
            "Language model id",
            value="minilm",
            key="ig_lm",
            max_chars=500,
            help="minilm or smollm2 (offline; SmolLM2: 30 Llama blocks), a hub id on a networked machine, or a local checkpoint directory",
        ).strip()
        or "minilm"
    )
    c1, c2, c3 = st.columns(3)
    layer = widgets.number_input(LanguageTarget, "layer", "Block", "ig_block", container=c1)
    # Windows follow the model (enough tokens for its widest node layer) until the user sets them.
    suggested = default_windows(model_id, int(st.session_state.get("ig_tokens", LanguageTarget.model_fields["tokens"].default)))
    if "ig_windows" not in st.session_state or st.session_state["ig_windows"] == st.session_state.get("ig_windows_suggested"):
        st.session_state["ig_windows"] = suggested
    st.session_state["ig_windows_suggested"] = suggested
    windows = widgets.number_input(LanguageTarget, "windows", "Token windows", "ig_windows", container=c2, default=suggested)
    tokens = widgets.number_input(LanguageTarget, "tokens", "Tokens per window", "ig_tokens", container=c3)
    tolerance, graph = rule_settings()
    set_query(
        net="language", lm=model_id, block=str(int(layer)), windows=str(int(windows)), tokens=str(int(tokens)), tolerance=f"{tolerance:g}"
    )
    st.caption(
        "Node layers: the block's input, the residual after attention (with the norm's variance, RMSNorm's mean of squares, as a "
        "fixed direction), the MLP "
        "hidden units with the residual, the block's output. Built in float32; ablations score the mean squared change of the "
        "block's output relative to its variance (0 = unablated) on held-out windows. A graph needs more tokens than the MLP "
        "node layer is wide, or directions are truncated away."
    )
    target = {"kind": "language", "model": model_id, "layer": int(layer), "windows": int(windows), "tokens": int(tokens)}
    return {
        "target": target,
        "bases": bases or ["lib"],
        "graph": {**graph, "dtype": "float32"},
        "ablation": {"tolerance": float(tolerance)},
    }


def share_of_strength(value: str) -> float:
    """A URL's share of edge or node strength: a number in [0.05, 1]."""
    share = float(value)
    if not 0.05 <= share <= 1.0:
        raise ValueError(f"{share} is not between 0.05 and 1")
    return share


def _label(record: jobs.JobRecord) -> str:
    params = LIB_GRAPH.parse(record.params)
    target = params.target
    where = f"{target.model} block {target.layer}" if isinstance(target, LanguageTarget) else f"{target.kind} · {target.checkpoint[:24]}"
    return f"{where} · {', '.join(params.bases)} ({record.job_id[:8]})"


def _modules(job_id: str, result, resolution: float, seed: int) -> dict[str, tuple[list[np.ndarray], float]]:
    """Leiden modules of every basis, remembered per (job, resolution) so slider moves elsewhere do not rerun Leiden."""
    memo = st.session_state.setdefault("ig_modules", {})
    key = (job_id, resolution, seed)
    if key not in memo:
        memo.clear()
        memo[key] = {kind: leiden_modules(r.graph, resolution, seed, r.eps()) for kind, r in result.results.items()}
    return memo[key]


def _edges_csv(result) -> str:
    rows = []
    for kind, r in result.results.items():
        for k, E in enumerate(r.graph.edges):
            values = E.numpy()
            out_idx, in_idx = np.nonzero(values > 0)
            rows.append(
                pd.DataFrame(
                    {
                        "basis": kind,
                        "from_layer": r.graph.node_layers[k],
                        "to_layer": r.graph.node_layers[k + 1],
                        "from_direction": in_idx,
                        "to_direction": out_idx,
                        "E": values[out_idx, in_idx],
                    }
                )
            )
    return pd.concat(rows).to_csv(index=False) if rows else ""


def _modules_csv(result, modules) -> str:
    rows = []
    for kind, (per_layer, _) in modules.items():
        graph = result.results[kind].graph
        for k, membership in enumerate(per_layer):
            rows.append(
                pd.DataFrame(
                    {
                        "basis": kind,
                        "layer": graph.node_layers[k],
                        "direction": np.arange(len(membership)),
                        "eigenvalue": graph.bases[k].values.numpy(),
                        "module": membership,
                    }
                )
            )
    return pd.concat(rows).to_csv(index=False)


def _npz(result, modules) -> bytes:
    memberships = {f"modules/{kind}/{k}": membership for kind, (per_layer, _) in modules.items() for k, membership in enumerate(per_layer)}
    return codec.npz_bytes(result, memberships)


def _chart_key(kind: str) -> str:
    """The widget key of ``kind``'s graph. Its generation moves on when its selection must go: a
    Plotly chart keeps its selection until clicked again, and only a new key draws it without one."""
    return f"ig_graph_{kind}_{st.session_state.get(f'_ig_generation_{kind}', 0)}"


def _clicked_node(kinds, node):
    """The node to show: a graph's *new* selection (its click is in the state before this run, so the
    run that draws the graphs rings it: one rerun per click), else ``node``. A chart keeps its
    selection until another click, so only a change counts; a click on one graph clears the other
    graphs' selections (they are drawn anew, unselected), so no graph shows an old node as chosen."""
    for kind in kinds:
        clicked = selected_node(st.session_state.get(_chart_key(kind)), kind)
        if clicked != st.session_state.get(f"_ig_seen_{kind}"):
            st.session_state[f"_ig_seen_{kind}"] = clicked
            if clicked is not None and clicked != node:
                node = clicked
                st.session_state["ig_node"] = node
                set_query(node=format_node(clicked))
                for other in (k for k in kinds if k != kind):
                    _clear_selection(other)
    return node


def _clear_selection(kind: str) -> None:
    """Draw ``kind``'s graph anew, unselected, when it shows a selection (see :func:`_chart_key`)."""
    if selected_node(st.session_state.get(_chart_key(kind)), kind) is not None:
        st.session_state[f"_ig_generation_{kind}"] = st.session_state.get(f"_ig_generation_{kind}", 0) + 1
        st.session_state[f"_ig_seen_{kind}"] = None


@st.fragment
def graphs_and_panel(
    job_id: str, result, graphs: dict, top_k: int, pruned: dict, modules: dict, keep_edges: float, keep_nodes: float
) -> None:
    """The graphs, the clicked node's panel and the subgraph pane: a click reruns only this part of
    the page (the summary, the ablation figures and the downloads above and below stay as drawn)."""
    node = _clicked_node(result.results, st.session_state.get("ig_node"))
    columns = st.columns(len(result.results))
    for column, (kind, r) in zip(columns, result.results.items()):
        title = (
            f"{kind.upper()}: " + " / ".join(str(n) for n in r.edges_required().values()) + " edges required" if r.bisect else kind.upper()
        )
        # a clicked node is already marked by the chart's own selection; a ring (which redraws the figure,
        # about a second for 5,000 edges in a browser without a GPU) is for a node from a link or the other graph
        shown = selected_node(st.session_state.get(_chart_key(kind)), kind) == node
        ringed = (node[1], node[2]) if node and node[0] == kind and not shown else None
        chart(
            column,
            layered_graph(r.graph, modules[kind][0], top_k, title, r.fourier, ringed, pruned[kind]),
            key=_chart_key(kind),
            on_select="rerun",
            selection_mode="points",
        )
    if node is None:
        st.caption("Click a node for its panel: its edges and what drives it.")
    else:
        render_safely(lambda: node_panel(st.container(border=True), job_id, LIB_GRAPH.params_of(job_id), result, modules, node))
    view = {"job": job_id, "keep_edges": keep_edges, "keep_nodes": keep_nodes, "node": format_node(node) if node else None}
    render_safely(lambda: subgraph.pane(graphs, view))
    refresh_view()  # this part reruns alone: the exported report's link takes the click and the pins


def show(job_id: str) -> None:
    """The graphs side by side, their ablations, the bisect's edge counts and downloads."""
    result = LIB_GRAPH.load(job_id)
    adopt_url("topk", int, "ig_topk")
    adopt_url("res", float, "ig_resolution")
    adopt_url("keep_edges", share_of_strength, "ig_keep_edges")
    adopt_url("keep_nodes", share_of_strength, "ig_keep_nodes")
    st.session_state.setdefault("ig_topk", 200)
    c1, c2, c3, c4 = st.columns(4)
    top_k = c1.slider("Edges drawn per layer pair (the largest)", 10, 2000, key="ig_topk", step=10)
    resolution = widgets.number_input(ModulesParams, "resolution", "Leiden resolution γ", "ig_resolution", container=c2)
    keep_edges = c3.slider(
        "Keep edges: share of strength",
        0.05,
        1.0,
        1.0,
        0.01,
        key="ig_keep_edges",
        help="Per layer pair, the fewest edges that keep this share of the pair's total edge strength (1: every edge)",
    )
    keep_nodes = c4.slider(
        "Keep nodes: share of strength",
        0.05,
        1.0,
        1.0,
        0.01,
        key="ig_keep_nodes",
        help="Per node layer, the fewest directions that keep this share of its edge strength in and out; edges only between kept nodes",
    )
    set_query(job=job_id, topk=str(int(top_k)), res=f"{resolution:g}", keep_edges=f"{keep_edges:g}", keep_nodes=f"{keep_nodes:g}")
    pruned = {kind: prune_by_influence(r.graph, float(keep_edges), float(keep_nodes)) for kind, r in result.results.items()}
    graphs = {kind: r.graph for kind, r in result.results.items()}
    subgraph.adopt(graphs)
    adopt_url("pinned_only", lambda v: v == "1", "ig_pinned_only")
    if st.checkbox("Draw only edges among pinned nodes", key="ig_pinned_only"):
        pruned = subgraph.pinned_only(graphs, pruned)
    set_query(pinned_only="1" if st.session_state.get("ig_pinned_only") else "0")
    modules = _modules(job_id, result, float(resolution), 0)
    st.markdown(
        f"**{result.model}**, checkpoint {result.checkpoint}: unablated {result.metric} **{result.base_score:.4f}** on the test split."
    )
    summary = pd.DataFrame(
        [
            {
                "basis": kind,
                **{f"edges required {layer} →": n for layer, n in r.edges_required().items()},
                "edges kept by influence": " / ".join(map(str, pruned[kind].edge_counts())),
                "nodes kept by influence": " / ".join(map(str, pruned[kind].node_counts())),
                "directions": " / ".join(str(d) for d in r.graph.dims()),
                "modularity Q": round(modules[kind][1], 3),
                "build (s)": round(result.timings.get(f"{kind} build", 0.0), 1),
                "ablation (s)": round(result.timings.get(f"{kind} ablation", 0.0), 1),
            }
            for kind, r in result.results.items()
        ]
    )
    st.dataframe(summary, hide_index=True)
    adopt_url("node", parse_node, "ig_node")
    graphs_and_panel(job_id, result, graphs, int(top_k), pruned, modules, float(keep_edges), float(keep_nodes))
    curves = {kind: r.node_curves for kind, r in result.results.items() if r.node_curves}
    bisects = {kind: r.bisect for kind, r in result.results.items() if r.bisect}
    tolerance = LIB_GRAPH.params_of(job_id).ablation.tolerance
    left, right = st.columns(2)
    if curves:
        chart(left, node_ablation_figure(curves, result.metric, result.base_score), key="ig_nodes")
    if bisects:
        chart(right, bisect_figure(bisects, result.metric, result.base_score, tolerance), key="ig_bisect")
    a, b, c = st.columns(3)
    a.download_button("Edges (CSV)", _edges_csv(result), "interaction_edges.csv", "text/csv", key="ig_dl_edges")
    b.download_button("Modules (CSV)", _modules_csv(result, modules), "interaction_modules.csv", "text/csv", key="ig_dl_modules")
    c.download_button(
        "Bases, edges and modules (NPZ)", _npz(result, modules), "interaction_graph.npz", "application/octet-stream", key="ig_dl_npz"
    )


def render() -> None:
    st.title("Interaction graph")
    st.caption(
        "The Local Interaction Basis (Bushnaq et al. 2024): bases per node layer, edges E = squared attributions between "
        "consecutive layers, the fewest edges that keep the model's accuracy (bisect), Leiden modules on log(E/ε)."
    )
    adopt_job_from_url(LIB_GRAPH.name, "ig_job")
    params = settings()
    if params is not None and st.button("Build as a job", type="primary", key="ig_run"):
        st.session_state["ig_job"] = LIB_GRAPH.submit(params).job_id
        set_query(job=st.session_state["ig_job"])
    open_finished(LIB_GRAPH, "ig_job", _label, "Or open a finished build")
    show_when_done(st.session_state.get("ig_job"), show, "Choose a model and bases and build; the digits MLP takes seconds.")


render_safely(render)
