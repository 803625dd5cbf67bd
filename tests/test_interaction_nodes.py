"""A graph node read for its panel: facts and edges against the graph's own arrays, activations
against the sequential view computed directly, the (x, y) pattern and the top inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featgeom_core.errors import InvalidParameter
from featgeom_core.interaction import build_graph, modular_addition_data
from featgeom_core.interaction.modadd import ModAddTransformer
from featgeom_core.interaction.nodes import direction_values, modadd_pattern, node_facts, top_activating
from featgeom_core.interaction.params import ModAddConfig


@pytest.fixture(scope="module")
def tiny() -> tuple[ModAddTransformer, object]:
    model = ModAddTransformer(ModAddConfig(modulus=11, d_model=16, n_heads=2, d_head=4, d_mlp=24), 0)
    graph = build_graph(model, modular_addition_data(11, 0.5, 0).train_tokens, {"basis": "lib"})
    return model, graph


def test_node_facts_are_the_graphs_own_numbers(tiny) -> None:
    _, graph = tiny
    modules = [np.arange(b.dim) % 3 for b in graph.bases]
    k, j = 1, 2
    facts = node_facts(graph, modules, k, j, top=4)
    E_in, E_out = graph.edges[k - 1].numpy(), graph.edges[k].numpy()
    assert facts.layer == graph.node_layers[k] and facts.module == 2 and facts.eigenvalue == float(graph.bases[k].values[j])
    assert [e.index for e in facts.incoming] == list(np.argsort(-E_in[j])[:4])
    assert [e.index for e in facts.outgoing] == list(np.argsort(-E_out[:, j])[:4])
    assert facts.incoming[0].strength == pytest.approx(E_in[j].max()) and facts.outgoing[0].node_layer == graph.node_layers[k + 1]
    shares = [node_facts(graph, modules, k, i).share_in for i in range(graph.bases[k].dim)]
    assert sum(shares) == pytest.approx(1.0)
    first, last = node_facts(graph, modules, 0, 1), node_facts(graph, modules, len(graph.bases) - 1, 0)
    assert first.incoming == [] and first.share_in == 0 and last.outgoing == [] and last.share_out == 0
    assert node_facts(graph, modules, 0, 0).constant == graph.bases[0].constant_first
    with pytest.raises(InvalidParameter, match="direction 999"):
        node_facts(graph, modules, 1, 999)
    with pytest.raises(InvalidParameter, match="node layer 9"):
        node_facts(graph, modules, 9, 0)


def test_a_directions_values_and_its_pattern_come_from_the_model(tiny) -> None:
    model, graph = tiny
    data = modular_addition_data(11, 0.5, 0)
    k, j = 1, 3
    values = direction_values(model, graph, k, j, data.test_tokens, batch_size=7)  # batches joined in order
    acts = model.sequential(torch.float64).restricted(graph.node_layers).activations(data.test_tokens)[k]
    assert np.allclose(values, (acts @ graph.bases[k].C[:, j]).numpy())
    pattern = modadd_pattern(model, graph, k, j, 11)
    assert pattern.shape == (11, 11)
    x, y = int(data.test_tokens[5, 0]), int(data.test_tokens[5, 1])
    assert pattern[x, y] == pytest.approx(values[5, -1])


def test_top_activating_ranks_by_size_either_sign() -> None:
    values = np.array([[0.1, -3.0], [2.0, 0.5], [0.0, 1.0]])
    assert top_activating(values, 3) == [(0, 1, -3.0), (1, 0, 2.0), (2, 1, 1.0)]
    assert len(top_activating(values, 100)) == 6


def test_smallest_share_keeps_the_fewest_largest_entries() -> None:
    from featgeom_core.interaction.nodes import smallest_share

    values = np.array([[5.0, 1.0], [3.0, 1.0]])  # total 10
    assert smallest_share(values, 0.5).tolist() == [[True, False], [False, False]]  # 5 is exactly half
    assert smallest_share(values, 0.51).tolist() == [[True, False], [True, False]]
    assert smallest_share(values, 0.9).sum() == 3 and smallest_share(values, 1.0).sum() == 4
    assert smallest_share(np.array([0.0, 2.0, 0.0]), 1.0).tolist() == [False, True, False]
    with pytest.raises(InvalidParameter):
        smallest_share(values, 0.0)


def test_pruning_keeps_the_share_asked_for_and_only_edges_between_kept_nodes(tiny) -> None:
    from featgeom_core.interaction.nodes import prune_by_influence

    _, graph = tiny
    everything = prune_by_influence(graph, 1.0, 1.0)
    assert everything.edge_counts() == [int((E.numpy() > 0).sum()) for E in graph.edges]
    pruned = prune_by_influence(graph, 0.8, 0.9)
    for k, (mask, E) in enumerate(zip(pruned.edges, graph.edges)):
        values = E.numpy()
        assert mask.sum() < (values > 0).sum()
        assert not (mask & ~pruned.nodes[k + 1][:, None]).any() and not (mask & ~pruned.nodes[k][None, :]).any()
        unpruned = prune_by_influence(graph, 0.8, 1.0).edges[k]
        assert values[unpruned].sum() >= 0.8 * values.sum() * (1 - 1e-9)  # nodes all kept: the edge share holds
        # the fewest: dropping the smallest kept edge falls below the share
        assert values[unpruned].sum() - values[unpruned].min() < 0.8 * values.sum()


def test_subgraph_edges_sum_supernode_members_and_the_state_round_trips_as_json(tiny) -> None:
    from featgeom_core.errors import DataError
    from featgeom_core.interaction.subgraph import SubgraphState, check_state, parse_subgraph, subgraph_edges, subgraph_json

    _, graph = tiny
    E0, E1 = graph.edges[0].numpy(), graph.edges[1].numpy()
    state = SubgraphState(pins=("lib:0:1", "lib:1:2", "lib:1:4", "lib:2:0"), groups={"pair": ("lib:1:2", "lib:1:4")})
    edges = {(e.source, e.target): e.strength for e in subgraph_edges(graph, "lib", check_state(state, {"lib": graph}))}
    assert edges[("lib:0:1", "pair")] == pytest.approx(E0[2, 1] + E0[4, 1])
    assert edges[("pair", "lib:2:0")] == pytest.approx(E1[0, 2] + E1[0, 4])
    assert set(edges) == {("lib:0:1", "pair"), ("pair", "lib:2:0")}  # nothing inside the supernode, nothing across two layers
    alone = {(e.source, e.target): e.strength for e in subgraph_edges(graph, "lib", SubgraphState(pins=state.pins))}
    assert alone[("lib:1:2", "lib:2:0")] == pytest.approx(E1[0, 2]) and len(alone) == 4
    text = subgraph_json(state, {"job": "abc", "keep_edges": 0.8})
    again, view = parse_subgraph(text, {"lib": graph})
    assert again == state and view == {"job": "abc", "keep_edges": 0.8}
    for bad, message in (
        (SubgraphState(pins=("lib:1",)), "not a node reference"),
        (SubgraphState(pins=("pca:0:0",)), "no 'pca' basis"),
        (SubgraphState(pins=("lib:0:999",)), "no such node"),
        (SubgraphState(pins=("lib:0:1",), groups={"g": ("lib:1:2",)}), "not pinned"),
        (SubgraphState(pins=("lib:0:1", "lib:1:2"), groups={"a": ("lib:0:1",), "b": ("lib:0:1",)}), "two supernodes"),
    ):
        with pytest.raises(DataError, match=message):
            check_state(bad, {"lib": graph})
    for text in ("{not json", "[1, 2]", '{"pins": "lib:0:1"}'):
        with pytest.raises(DataError, match="subgraph file"):
            parse_subgraph(text, {"lib": graph})
