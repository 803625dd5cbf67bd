"""A researcher's subgraph of an interaction graph: pinned nodes, pinned nodes grouped into named
supernodes, and the edges among them (a supernode's edge is the sum of its members' edges). The
state is plain JSON (``subgraph_json`` / ``parse_subgraph``), checked against the graph it names."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from featgeom_core.errors import DataError
from featgeom_core.interaction.result import InteractionGraph

NODE_REF = re.compile(r"^([a-z]+):(\d+):(\d+)$")
"""A node reference: ``<basis>:<node layer position>:<direction>``, e.g. ``lib:1:3``."""
MAX_PINS = 200
"""More pins than this is a graph, not a subgraph (and the URL would not hold it)."""


@dataclass(frozen=True)
class SubgraphState:
    """Pinned node references (in pin order) and supernodes {name: member references}."""

    pins: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def group_of(self, ref: str) -> str | None:
        """The supernode ``ref`` belongs to, if any."""
        return next((name for name, members in self.groups.items() if ref in members), None)


@dataclass(frozen=True)
class SubgraphEdge:
    """An edge of the subgraph between two of its units (a pinned node or a supernode), E summed."""

    source: str
    target: str
    strength: float


def split_ref(ref: str) -> tuple[str, int, int]:
    """``lib:1:3`` -> ("lib", 1, 3); DataError naming the reference otherwise."""
    match = NODE_REF.match(ref.strip())
    if match is None:
        raise DataError(f"{ref!r} is not a node reference (basis:layer:direction, e.g. lib:1:3)")
    return match.group(1), int(match.group(2)), int(match.group(3))


def check_state(state: SubgraphState, graphs: Mapping[str, InteractionGraph]) -> SubgraphState:
    """``state`` when every reference names a node of ``graphs`` ({basis: graph}), every group's
    members are pinned and in one basis, and no node is in two groups; DataError saying what is wrong otherwise."""
    if len(state.pins) > MAX_PINS:
        raise DataError(f"{len(state.pins)} pinned nodes: at most {MAX_PINS}")
    for ref in state.pins:
        kind, k, j = split_ref(ref)
        if kind not in graphs:
            raise DataError(f"{ref}: this build has no {kind!r} basis (it has {', '.join(graphs)})")
        graph = graphs[kind]
        if not (0 <= k < len(graph.bases) and 0 <= j < graph.bases[k].dim):
            raise DataError(f"{ref}: no such node in the {kind} graph ({len(graph.bases)} node layers of {graph.dims()} directions)")
    seen: set[str] = set()
    for name, members in state.groups.items():
        if not name.strip() or len(name) > 60:
            raise DataError(f"supernode name {name!r}: give 1 to 60 characters")
        missing = [m for m in members if m not in state.pins]
        if missing:
            raise DataError(f"supernode {name!r}: {', '.join(missing)} not pinned")
        if len({split_ref(m)[0] for m in members}) > 1:
            raise DataError(f"supernode {name!r} mixes bases: group nodes of one graph")
        twice = seen & set(members)
        if twice:
            raise DataError(f"{', '.join(sorted(twice))} in two supernodes")
        seen |= set(members)
    return state


def subgraph_edges(graph: InteractionGraph, kind: str, state: SubgraphState) -> list[SubgraphEdge]:
    """The edges of ``kind``'s graph between pinned nodes of consecutive node layers, each end
    replaced by its supernode where it has one (edges summed; none inside a supernode), strongest first."""
    units = {ref: state.group_of(ref) or ref for ref in state.pins if split_ref(ref)[0] == kind}
    by_layer: dict[int, list[tuple[int, str]]] = {}
    for ref, unit in units.items():
        _, k, j = split_ref(ref)
        by_layer.setdefault(k, []).append((j, unit))
    totals: dict[tuple[str, str], float] = {}
    for k, E in enumerate(graph.edges):
        for j_in, source in by_layer.get(k, []):
            for j_out, target in by_layer.get(k + 1, []):
                if source != target:
                    totals[(source, target)] = totals.get((source, target), 0.0) + float(E[j_out, j_in])
    return sorted((SubgraphEdge(s, t, v) for (s, t), v in totals.items()), key=lambda e: -e.strength)


def subgraph_json(state: SubgraphState, view: Mapping[str, Any]) -> str:
    """The state and the view it was made in (job, thresholds, clicked node) as JSON text."""
    return json.dumps({"pins": list(state.pins), "groups": {k: list(v) for k, v in state.groups.items()}, **view}, indent=1)


def parse_subgraph(text: str | bytes, graphs: Mapping[str, InteractionGraph]) -> tuple[SubgraphState, dict[str, Any]]:
    """(the state, the rest of the view) from :func:`subgraph_json`'s text, checked against ``graphs``."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"not a subgraph file (JSON expected): {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("pins", []), list) or not isinstance(raw.get("groups", {}), dict):
        raise DataError("not a subgraph file: expected an object with 'pins' (a list) and 'groups' (an object)")
    pins = tuple(str(p) for p in raw.get("pins", []))
    groups = {str(name): tuple(str(m) for m in members) for name, members in raw.get("groups", {}).items() if isinstance(members, Sequence)}
    view = {key: value for key, value in raw.items() if key not in ("pins", "groups")}
    return check_state(SubgraphState(pins, groups), graphs), view
