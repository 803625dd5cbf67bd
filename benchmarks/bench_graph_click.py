"""The server's side of a click on an interaction graph with 5,000 drawn edges (issue 25's target:
a click answers in under 1 s warm).

Builds the LIB graph of the lab's shipped modular-addition checkpoint (train split, the page's
default graph settings), then times what a click adds to a rerun of the page: the clicked node's
facts, its (x, y) pattern over all 113^2 inputs, influence pruning, and the graph's figure with
the node ringed, serialised as Streamlit sends it. Baseline, in the same run: the same figure
without a click (what any rerun of the page pays). Prints each step and the ratio of the click's
cost to the baseline and to the 1 s budget. The model and the graph are loaded once (warm).

Usage: python benchmarks/bench_graph_click.py [--edges 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # ui/ beside featgeom_core/


def timed(function, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=5000, help="edges drawn in all (split over the layer pairs)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from featgeom_core.interaction import build_graph
    from featgeom_core.interaction.modadd import load_modular_addition, modular_addition_data
    from featgeom_core.interaction.nodes import modadd_pattern, node_facts, prune_by_influence
    from featgeom_core.interaction.params import ModAddTrainParams
    from featgeom_core.interaction.shipped import shipped_modadd
    from ui.interaction_plots import layered_graph

    trained = shipped_modadd(ModAddTrainParams())
    assert trained is not None, "the shipped checkpoint is missing"
    model = load_modular_addition(trained.torch_state())
    start = time.perf_counter()
    graph = build_graph(model, modular_addition_data().train_tokens, {"basis": "lib"})
    print(f"LIB graph built in {time.perf_counter() - start:.1f} s: directions {graph.dims()}")
    modules = [np.zeros(b.dim, dtype=int) for b in graph.bases]
    top_k = -(-args.edges // len(graph.edges))
    drawn = sum(min(top_k, int((E.numpy() > 0).sum())) for E in graph.edges)

    def figure(selected):
        return layered_graph(graph, modules, top_k, "LIB", (), selected).to_json()

    baseline, _ = timed(lambda: figure(None), args.repeats)
    steps = {
        "facts and strongest edges": timed(lambda: node_facts(graph, modules, 1, 3), args.repeats)[0],
        "(x, y) pattern, 113^2 inputs": timed(lambda: modadd_pattern(model, graph, 1, 3, 113), args.repeats)[0],
        "influence pruning (0.8, 0.9)": timed(lambda: prune_by_influence(graph, 0.8, 0.9), args.repeats)[0],
        "figure with the node ringed": timed(lambda: figure((1, 3)), args.repeats)[0],
    }
    click = sum(steps.values())
    print(f"edges drawn: {drawn} ({top_k} per layer pair at most); median of {args.repeats}")
    print(f"baseline, the figure without a click: {baseline * 1000:.0f} ms")
    for name, seconds in steps.items():
        print(f"  {name:32s} {seconds * 1000:8.0f} ms")
    print(f"a click in all: {click * 1000:.0f} ms = {click / baseline:.2f}x the baseline, {click:.2f}x the 1 s budget (server side)")


if __name__ == "__main__":
    main()
