"""The interaction graph's subgraph pane: pinned nodes, supernodes, the edges among them, the
state in the URL (``pins=lib:1:3,lib:2:0``, ``groups=name~lib:1:3|lib:1:4;...``) and as a JSON file."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from featgeom_core.errors import DataError
from featgeom_core.interaction.nodes import Pruned
from featgeom_core.interaction.subgraph import SubgraphState, check_state, parse_subgraph, split_ref, subgraph_edges, subgraph_json
from ui.state import set_query


def encode_groups(groups: dict[str, tuple[str, ...]]) -> str:
    return ";".join(f"{name}~{'|'.join(members)}" for name, members in groups.items())


def decode_groups(value: str) -> dict[str, tuple[str, ...]]:
    """``a~lib:1:3|lib:1:4;b~...`` -> {"a": ("lib:1:3", "lib:1:4"), ...}; ValueError when malformed."""
    groups: dict[str, tuple[str, ...]] = {}
    for part in filter(None, value.split(";")):
        name, _, members = part.partition("~")
        if not name or not members:
            raise ValueError(f"{part!r} is not name~node|node")
        groups[name] = tuple(members.split("|"))
    return groups


def state() -> SubgraphState:
    """The session's subgraph state."""
    return SubgraphState(tuple(st.session_state.get("ig_pins", ())), dict(st.session_state.get("ig_groups", {})))


def checked_state(graphs: dict[str, Any]) -> SubgraphState:
    """The session's state when it fits this build (pins of another build are dropped, with a note)."""
    try:
        return check_state(state(), graphs)
    except DataError as exc:
        st.info(f"The pinned nodes do not fit this build ({exc}); they are cleared.")
        save(SubgraphState())
        return SubgraphState()


def save(new: SubgraphState) -> None:
    """Keep ``new`` in the session and the URL."""
    st.session_state["ig_pins"] = list(new.pins)
    st.session_state["ig_groups"] = dict(new.groups)
    set_query(pins=",".join(new.pins), groups=encode_groups(new.groups))


def adopt(graphs: dict[str, Any]) -> None:
    """Take pins and supernodes from the URL (on a session's first run or a changed link), checked against the build."""
    pins, groups = st.session_state.pop("_url_pins", None), st.session_state.pop("_url_groups", None)
    if pins is None and groups is None:
        return
    try:
        wanted = SubgraphState(tuple(filter(None, (pins or "").split(","))), decode_groups(groups or ""))
        save(check_state(wanted, graphs))
    except (DataError, ValueError) as exc:
        st.warning(f"The link's pinned nodes are not usable ({exc}); none are pinned.")
        save(SubgraphState())


def toggle_pin(ref: str) -> None:
    """Pin ``ref``, or unpin it (and take it out of its supernode)."""
    current = state()
    if ref in current.pins:
        groups = {name: tuple(m for m in members if m != ref) for name, members in current.groups.items()}
        save(SubgraphState(tuple(p for p in current.pins if p != ref), {n: m for n, m in groups.items() if m}))
    else:
        save(SubgraphState((*current.pins, ref), current.groups))


def pinned_only(graphs: dict[str, Any], pruned: dict[str, Pruned]) -> dict[str, Pruned]:
    """``pruned`` further restricted to pinned nodes and the edges among them."""
    pins = checked_state(graphs).pins
    restricted = {}
    for kind, graph in graphs.items():
        nodes = [np.zeros(b.dim, dtype=bool) for b in graph.bases]
        for ref in pins:
            basis, k, j = split_ref(ref)
            if basis == kind:
                nodes[k][j] = True
        nodes = [a & b for a, b in zip(nodes, pruned[kind].nodes)]
        edges = [mask & nodes[k + 1][:, None] & nodes[k][None, :] for k, mask in enumerate(pruned[kind].edges)]
        restricted[kind] = Pruned(edges=edges, nodes=nodes)
    return restricted


def pane(graphs: dict[str, Any], view: dict[str, Any]) -> None:
    """Pinned nodes, grouping into supernodes, the subgraph's edges, and its JSON download and upload."""
    current = checked_state(graphs)
    st.subheader("Subgraph")
    upload = st.file_uploader("Open a subgraph (JSON)", type=["json"], key="ig_subgraph_upload")
    if upload is not None and st.session_state.get("ig_subgraph_upload_id") != upload.file_id:
        st.session_state["ig_subgraph_upload_id"] = upload.file_id
        try:
            loaded, _ = parse_subgraph(upload.getvalue(), graphs)
        except DataError as exc:
            st.error(str(exc))
        else:
            save(loaded)
            st.rerun()
    if not current.pins:
        st.caption("Pin nodes from their panel to build a subgraph here.")
        return
    left, right = st.columns([2, 1])
    with right:
        members = st.multiselect("Group pinned nodes", list(current.pins), key="ig_group_members")
        name = st.text_input("Supernode name", key="ig_group_name", max_chars=60)
        if st.button("Group", key="ig_group", disabled=not (members and name.strip())):
            kept = {n: tuple(m for m in ms if m not in members) for n, ms in current.groups.items()}
            grouped = SubgraphState(current.pins, {**{n: ms for n, ms in kept.items() if ms}, name.strip(): tuple(members)})
            try:
                save(check_state(grouped, graphs))
            except DataError as exc:
                st.error(str(exc))
            else:
                st.rerun()
        for group in list(current.groups):
            if st.button(f"Ungroup {group}", key=f"ig_ungroup_{group}"):
                save(SubgraphState(current.pins, {n: m for n, m in current.groups.items() if n != group}))
                st.rerun()
        if st.button("Unpin all", key="ig_unpin_all"):
            save(SubgraphState())
            st.rerun()
    with left:
        units = pd.DataFrame([{"node": ref, "supernode": current.group_of(ref) or ""} for ref in current.pins])
        st.dataframe(units, hide_index=True)
        rows = [
            {"basis": kind, "from": e.source, "to": e.target, "E": e.strength}
            for kind, graph in graphs.items()
            for e in subgraph_edges(graph, kind, current)
        ]
        st.markdown("**Edges among pinned nodes and supernodes** (a supernode's edge: its members' summed)")
        st.dataframe(pd.DataFrame(rows, columns=["basis", "from", "to", "E"]), hide_index=True)
    st.download_button("Subgraph (JSON)", subgraph_json(current, view), "subgraph.json", "application/json", key="ig_dl_subgraph")
