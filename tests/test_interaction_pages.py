"""The interaction-graph page in AppTest: a digits build runs as a job from the page and draws its
graphs, ablation curves and downloads; settings come from the URL; a pickled upload is refused
with a message, never a traceback."""

from __future__ import annotations

import io
import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import REPO_ROOT, open_page
from featgeom_core import jobs
from featgeom_core.errors import DataError
from featgeom_core.interaction.checkpoints import store_upload


def page(**query: str) -> AppTest:
    return open_page("pages/interaction_graph.py", **{"net": "digits", **query})


@pytest.mark.slow
def test_digits_graph_builds_from_the_page_and_draws(local_backend: None) -> None:
    at = page(tolerance="0.01")
    assert at.selectbox(key="ig_model").value == "digits"
    assert at.number_input(key="ig_tolerance").value == 0.01
    at.button(key="ig_run").click().run()
    record = jobs.wait(at.session_state["ig_job"], timeout_s=300)
    assert record.status == "done", record.error
    at.run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    assert len(at.get("plotly_chart")) == 2 + 2  # LIB and PCA graphs, node and edge ablation
    summary = at.dataframe[0].value
    assert list(summary["basis"]) == ["lib", "pca"]
    assert len(at.get("download_button")) == 3
    result = jobs.load_result(record.job_id)
    lib, pca = (sum(r.edges_required().values()) for r in (result.results["lib"], result.results["pca"]))
    assert lib < pca  # the paper's claim: LIB needs fewer edges than PCA
    assert "Click a node" in " ".join(c.value for c in at.caption)

    # A node from the link: its panel shows the core's facts and the digits that drive it
    linked = page(job=record.job_id, node="lib:1:3")
    assert not linked.exception and not linked.error, [e.value for e in linked.error]
    assert "direction 3" in linked.subheader[0].value and "LIB" in linked.subheader[0].value
    graph = result.results["lib"].graph
    metrics = {m.label: m.value for m in linked.metric}
    assert metrics["eigenvalue"] == f"{float(graph.bases[1].values[3]):.4g}"
    incoming = linked.dataframe[1].value
    assert list(incoming["direction"]) == list(torch.argsort(graph.edges[0][3], descending=True)[: len(incoming)].numpy())
    assert len(linked.get("plotly_chart")) == 2 + 2 + 1  # and the top test images
    # a node from a link is ringed by a layout shape; the traces' revision stays, so a browser redraws only the ring
    before, lib_spec, pca_spec = (json.loads(c.proto.spec) for c in (at.get("plotly_chart")[0], *linked.get("plotly_chart")[:2]))
    assert [(s["xanchor"], s["yanchor"]) for s in lib_spec["layout"]["shapes"]] == [(1, -3)] and not pca_spec["layout"].get("shapes")
    assert lib_spec["layout"]["datarevision"] == before["layout"]["datarevision"]
    assert linked.query_params["node"] in ("lib:1:3", ["lib:1:3"])
    from featgeom_core.interaction.nodes import prune_by_influence

    pruned = page(job=record.job_id, keep_edges="0.5", keep_nodes="0.8")  # thresholds from the link, counts from the core
    table = pruned.dataframe[0].value.set_index("basis")
    for kind in ("lib", "pca"):
        expected = prune_by_influence(result.results[kind].graph, 0.5, 0.8)
        assert table.loc[kind, "edges kept by influence"] == " / ".join(map(str, expected.edge_counts()))
        assert table.loc[kind, "nodes kept by influence"] == " / ".join(map(str, expected.node_counts()))
    assert pruned.slider(key="ig_keep_edges").value == 0.5 and pruned.slider(key="ig_keep_nodes").value == 0.8
    # Pins and a supernode from the link: the subgraph's edges are the core's sums
    pinned = page(job=record.job_id, pins="lib:0:1,lib:1:2,lib:1:4", groups="pair~lib:1:2|lib:1:4", node="lib:1:3")
    assert not pinned.exception and not pinned.error, [e.value for e in pinned.error]
    edges = next(d.value for d in pinned.dataframe if "from" in d.value.columns)
    E0 = result.results["lib"].graph.edges[0].numpy()
    row = edges[(edges["from"] == "lib:0:1") & (edges["to"] == "pair")]
    assert len(edges) == 1 and float(row["E"].iloc[0]) == pytest.approx(E0[2, 1] + E0[4, 1])
    pinned.button(key="ig_pin").click().run()  # pin the clicked node from its panel
    assert pinned.session_state["ig_pins"] == ["lib:0:1", "lib:1:2", "lib:1:4", "lib:1:3"]
    assert pinned.query_params["pins"] in ("lib:0:1,lib:1:2,lib:1:4,lib:1:3", ["lib:0:1,lib:1:2,lib:1:4,lib:1:3"])
    bad = page(job=record.job_id, pins="lib:0:9999")
    assert not bad.exception and "not usable" in " ".join(w.value for w in bad.warning)
    missing = page(job=record.job_id, node="lib:1:999")
    assert not missing.exception and "direction 999 does not exist" in " ".join(e.value for e in missing.error)


def test_a_pickled_checkpoint_is_refused_as_data() -> None:
    buffer = io.BytesIO()
    torch.save({"path": REPO_ROOT}, buffer)  # a pathlib object: weights_only refuses to unpickle it
    with pytest.raises(DataError, match="weights_only"):
        store_upload(buffer.getvalue())
    good = io.BytesIO()
    torch.save({"layers.0.weight": torch.zeros(3, 64)}, good)
    assert store_upload(good.getvalue()).startswith("upload:")


@pytest.mark.slow
def test_a_minilm_block_graph_builds_from_the_page_settings(local_backend: None) -> None:
    at = page(net="language", lm="minilm", block="2", windows="6", tokens="8", tolerance="0.05")
    assert at.text_input(key="ig_lm").value == "minilm"
    assert at.number_input(key="ig_block").value == 2 and at.number_input(key="ig_tokens").value == 8
    at.button(key="ig_run").click().run()
    record = jobs.wait(at.session_state["ig_job"], timeout_s=300)
    assert record.status == "done", record.error
    assert record.params["target"]["model"] == "minilm" and record.params["graph"]["dtype"] == "float32"
    at.run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    result = jobs.load_result(record.job_id)
    assert result.metric == "mse" and result.base_score == 0.0
    graph = result.results["lib"].graph
    assert graph.node_layers[0] == "blocks.2.hook_resid_pre" and graph.node_layers[-1] == "blocks.2.hook_resid_post"
    assert all(r.edges_required() for r in result.results.values())


def test_a_block_minilm_lacks_is_a_clear_error_on_the_page(local_backend: None) -> None:
    at = page(net="language", lm="minilm", block="9")
    at.button(key="ig_run").click().run()
    record = jobs.wait(at.session_state["ig_job"], timeout_s=120)
    assert record.status == "failed" and "blocks 0 to 5" in record.error
    at.run()
    assert not at.exception
