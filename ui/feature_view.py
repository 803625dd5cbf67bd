"""One feature's page, whatever made it: resolve a FeatureRef to its result, then its top contexts
with every token's activation, its histogram, a box to read it on any text, Prev/Next, and the
nearest directions of the other kinds on the same model and layer."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from featgeom_core.errors import InvalidParameter
from featgeom_core.features.contexts import Context, activation_histogram
from featgeom_core.features.directions import DirectionSet, Space
from featgeom_core.features.neighbours import nearest_across
from featgeom_core.features.ref import KIND_TITLES, FeatureRef, parse_ref
from featgeom_core.features.text import TextReading
from featgeom_core.features.view import FeatureData
from featgeom_core.hessian.jobs import HESSIAN_FEATURES
from featgeom_core.interaction.jobs import LIB_GRAPH
from featgeom_core.sparsity.jobs import SPARSITY_MODEL
from ui.links import link
from ui.report import chart
from ui.resources import cached_model, cached_store
from ui.sparsity_plots import histogram

FEATURE_PAGE = "pages/feature.py"


def feature_link(ref: FeatureRef, label: str = "Open its feature page", container: Any = None) -> None:
    """A link to ``ref``'s feature page."""
    if container is None:
        link(FEATURE_PAGE, label, ref.query(), icon=":material/open_in_new:")
    else:
        with container:
            link(FEATURE_PAGE, label, ref.query(), icon=":material/open_in_new:")


@st.cache_resource(max_entries=2, show_spinner="Loading the dictionaries…")
def sparsity_result(job_id: str) -> Any:
    return SPARSITY_MODEL.load(job_id)


@st.cache_resource(max_entries=2, show_spinner="Loading the interaction graph…")
def graph_result(job_id: str) -> Any:
    return LIB_GRAPH.load(job_id)


@st.cache_resource(max_entries=2, show_spinner="Loading the Hessian features…")
def hessian_result(job_id: str) -> Any:
    return HESSIAN_FEATURES.load(job_id)


@st.cache_resource(max_entries=2, show_spinner="Loading the graph's model and token windows…")
def graph_target(job_id: str) -> Any:
    from featgeom_core.interaction.targets import load_target

    return load_target(LIB_GRAPH.params_of(job_id).target)


@st.cache_resource(max_entries=8, show_spinner="Reading packaged text at this layer (the first time: seconds to a minute)…")
def corpus(model_id: str, hook: str, layer: int) -> Any:
    """Packaged text read at the layer: the ``features.corpus`` job, run here once and then opened."""
    from featgeom_core.features.jobs import FEATURE_CORPUS
    from featgeom_core.jobs import manager

    record = manager.run_here(FEATURE_CORPUS.name, FEATURE_CORPUS.validate({"model": model_id, "hook": hook, "layer": layer}))
    if record.status != "done":
        raise InvalidParameter(f"reading packaged text at layer {layer} did not finish: {record.error or record.status}")
    return FEATURE_CORPUS.load(record.job_id)


@st.cache_resource(max_entries=16, show_spinner="Probing this layer (the first time for this feature set: up to a minute)…")
def probe_set(model_id: str, features: str, hook: str, layer: int) -> DirectionSet:
    from featgeom_core.features.sources import probe_directions

    ref = FeatureRef("probe", 0, model=model_id, layer=str(layer), features=features, hook=hook)
    found = probe_directions(cached_model(model_id), ref, cached_store())
    assert found is not None  # computed when missing
    return found


@st.cache_resource(max_entries=8, ttl=120, show_spinner="Finding this layer's directions of every kind…")
def sets_of_space(space: Space) -> list[DirectionSet]:
    """Every direction set of ``space`` (cached two minutes, so a job finished since shows up)."""
    from featgeom_core.features.sources import sets_in_space

    return sets_in_space(space, cached_model(space.model), cached_store(), sparsity_result, graph_result)


def choose_job(records: list, ref: FeatureRef, fits: Callable[[dict], bool], what: str) -> str:
    """``ref.job`` where it names a finished job; else the newest finished job that ``fits``."""
    ids = [r.job_id for r in records]
    if ref.job:
        if ref.job in ids:
            return ref.job
        raise InvalidParameter(f"no finished {what} job {ref.job!r} here; open a feature from one that is finished")
    for record in records:
        if fits(record.params):
            return record.job_id
    raise InvalidParameter(f"no finished {what} job for {ref.model or 'this model'} here: run one first, then open its features")


def load_feature(
    ref: FeatureRef, skip_first: bool = True
) -> tuple[FeatureData | None, Callable[[str], TextReading] | None, Callable[[], None] | None]:
    """(the feature's data, a reader of typed text or None, a panel drawn instead of contexts or None);
    ``skip_first``: each text's first token is not ranked. Kept per feature, so a rerun (typing a text,
    moving the toggle) reads no activations again; a link without ``job`` looks for a newer job after
    five minutes."""
    return _loaded_feature(tuple(sorted(ref.query().items())), skip_first)


@st.cache_resource(max_entries=16, ttl=300, show_spinner=False)
def _loaded_feature(query: tuple[tuple[str, str], ...], skip_first: bool):
    ref = parse_ref(dict(query))
    if ref.kind == "probe":
        return _probe(ref, skip_first)
    if ref.kind == "atom":
        return _atom(ref, skip_first)
    if ref.kind == "lib":
        return _lib(ref, skip_first)
    return _hessian(ref, skip_first)


def _probe(ref: FeatureRef, skip_first: bool):
    from featgeom_core.features.text import read_direction
    from featgeom_core.features.view import probe_feature

    if not ref.model or not ref.features or not ref.layer:
        raise InvalidParameter("a probe direction's link needs model, features and layer")
    hook = ref.hook or "resid_post"
    layer = ref.layer_number()
    model = cached_model(ref.model)
    if not 0 <= layer < model.n_layers:
        raise InvalidParameter(f"layer {layer}: {ref.model} has layers 0..{model.n_layers - 1}")
    directions = probe_set(ref.model, ref.features, hook, layer)
    directions.check(ref.index)
    data = probe_feature(ref, directions, corpus(ref.model, hook, layer), skip_first)
    return data, lambda text: read_direction(model, directions, ref.index, text), None


def _atom(ref: FeatureRef, skip_first: bool):
    from featgeom_core.features.sources import atom_directions, set_name_of
    from featgeom_core.features.text import read_atom
    from featgeom_core.features.view import atom_feature
    from featgeom_core.sparsity.params import ModelSparsityParams

    set_name = set_name_of(ref.layer or "0")
    job_id = choose_job(
        SPARSITY_MODEL.finished(),
        ref,
        lambda p: p.get("model") == ref.model and (set_name == "embeddings" or int(set_name.split()[-1]) in (p.get("layers") or [])),
        "sparsity-by-layer",
    )
    result = sparsity_result(job_id)
    params = SPARSITY_MODEL.params_of(job_id)
    assert isinstance(params, ModelSparsityParams)
    model_id = str(params.model)
    resolved = FeatureRef("atom", ref.index, model=model_id, layer=ref.layer or "0", job=job_id)
    directions = atom_directions(result, job_id, model_id, set_name)
    directions.check(ref.index)
    data = atom_feature(resolved, result, directions, set_name, skip_first)
    if set_name == "embeddings":
        return data, None, None
    model = cached_model(model_id)
    return data, lambda text: read_atom(model, result, set_name, params.effective_coding(), ref.index, text), None


def _lib(ref: FeatureRef, skip_first: bool):
    from featgeom_core.features.sources import lib_directions
    from featgeom_core.features.text import read_lib
    from featgeom_core.features.view import lib_feature
    from featgeom_core.interaction.nodes import direction_values
    from featgeom_core.interaction.params import LanguageTarget

    def fits(params: dict) -> bool:  # a language block by its model id; a toy's link names its job
        return not ref.model or params.get("target", {}).get("model") == ref.model

    job_id = choose_job(LIB_GRAPH.finished(), ref, fits, "LIB graph")
    result = graph_result(job_id)
    if "lib" not in result.results:
        raise InvalidParameter(f"job {job_id[:8]} built no LIB basis (only {', '.join(result.results)})")
    graph = result.results["lib"].graph
    k = ref.layer_number() if ref.layer else 1
    if not 0 <= k < len(graph.node_layers):
        raise InvalidParameter(f"node layer {k}: this graph has 0..{len(graph.node_layers) - 1}")
    if not 0 <= ref.index < graph.bases[k].dim:
        raise InvalidParameter(f"{graph.node_layers[k]} has directions 0..{graph.bases[k].dim - 1}")
    params = LIB_GRAPH.params_of(job_id)
    target = params.target
    if not isinstance(target, LanguageTarget):
        return None, None, lambda: _toy_lib_panel(job_id, params, result, ref, k)
    loaded = graph_target(job_id)
    model = cached_model(target.model)
    resolved = FeatureRef("lib", ref.index, model=target.model, layer=str(k), job=job_id)
    values = direction_values(loaded.model, graph, k, ref.index, loaded.basis_inputs)
    pieces = [str(p) for p in model.tokenizer.convert_ids_to_tokens(loaded.basis_inputs.reshape(-1).tolist())]
    directions = lib_directions(result, job_id, target.model, k, model.d_model, model.d_mlp)
    data = lib_feature(resolved, graph, k, values, pieces, directions, skip_first)
    return data, lambda text: read_lib(loaded.model, graph, k, ref.index, model.tokenizer, text), None


def _toy_lib_panel(job_id: str, params: Any, result: Any, ref: FeatureRef, k: int) -> None:
    """A toy's LIB direction: Prev/Next along its node layer, then the graph page's node panel."""
    from featgeom_core.interaction.modules import leiden_modules
    from ui.graph_node import node_panel

    basis = result.results["lib"]
    prev_next(FeatureRef("lib", ref.index, layer=str(k), job=job_id), basis.graph.bases[k].dim)
    modules = {"lib": leiden_modules(basis.graph, 1.0, 0, basis.eps())}
    node_panel(st.container(border=True), job_id, params, result, modules, ("lib", k, ref.index), pinnable=False)


def _hessian(ref: FeatureRef, skip_first: bool):
    from featgeom_core.features.text import read_hessian
    from featgeom_core.features.view import hessian_feature
    from featgeom_core.hessian.result import HELD_OUT, TRAINING

    job_id = choose_job(
        HESSIAN_FEATURES.finished(),
        ref,
        lambda p: not ref.model or p.get("target", {}).get("model") == ref.model,
        "Hessian features",
    )
    result = hessian_result(job_id)
    which = HELD_OUT if HELD_OUT in result.sample_sets() else TRAINING
    resolved = FeatureRef("hessian", ref.index, model=str(result.model) if result.is_language_model else "", job=job_id)
    data = hessian_feature(resolved, result, which, skip_first)
    if not result.is_language_model:
        return data, None, lambda: _toy_samples(result, ref.index)
    return data, lambda text: read_hessian(result, str(result.model), ref.index, text), None


def _toy_samples(result: Any, feature: int) -> None:
    """A toy's Hessian feature: the inputs that curve most along it."""
    st.subheader("Top-activating samples")
    rows = result.top_rows(feature, 8)
    st.dataframe(pd.DataFrame([{"rank": r["rank"], "curvature": r["value"], "input": str(r["input"])} for r in rows]), hide_index=True)


def highlighted(tokens: tuple[str, ...] | list[str], values: Any, scale: float, focus: int | None = None) -> str:
    """Tokens as HTML, each shaded by its value (orange above zero, blue below, full at ``scale``),
    its value in the tooltip; the ``focus`` token underlined."""
    parts = []
    for k, (token, value) in enumerate(zip(tokens, values)):
        alpha = 0.0 if scale <= 0 else min(abs(float(value)) / scale, 1.0)
        colour = f"rgba(255,140,0,{alpha:.2f})" if value >= 0 else f"rgba(30,110,255,{alpha:.2f})"
        style = f"background:{colour};border-radius:3px;white-space:pre-wrap" + (";border-bottom:2px solid #333" if k == focus else "")
        parts.append(f"<span title='{float(value):.4g}' style='{style}'>{html.escape(token.replace(chr(10), '⏎'))}</span>")
    return "".join(parts)


def prev_next(ref: FeatureRef, count: int) -> None:
    """Links to the features before and after ``ref`` in its set of ``count``."""
    prev_col, next_col, _ = st.columns([2, 2, 3])  # room for 'Next: dictionary atom 3071'
    name = KIND_TITLES[ref.kind]
    if ref.index > 0:
        with prev_col:
            link(FEATURE_PAGE, f"Prev: {name} {ref.index - 1}", ref.moved(-1).query(), icon=":material/arrow_back:")
    if ref.index + 1 < count:
        with next_col:
            link(FEATURE_PAGE, f"Next: {name} {ref.index + 1}", ref.moved(1).query(), icon=":material/arrow_forward:")


def show_header(data: FeatureData) -> None:
    from ui.report import warn

    st.title(data.title)
    if data.warning:
        warn(st, data.warning)
    st.caption(" · ".join(f"**{k}**: {v}" for k, v in data.facts.items()))
    prev_next(data.ref, data.count)


def show_contexts(contexts: list[Context], scale: float) -> None:
    st.subheader("Top-activating contexts")
    if not contexts:
        st.info("No token activates this feature.")
        return
    rows = [
        f"<div style='margin:2px 0'><code>{c.peak:+.3g}</code>&nbsp; {highlighted(c.tokens, c.values, scale, c.focus)}</div>"
        for c in contexts
    ]
    st.markdown("".join(rows), unsafe_allow_html=True)


def show_histogram(data: FeatureData) -> None:
    counts, edges = activation_histogram(data.shown_values(), nonzero_only=data.nonzero_only)
    shown = "non-zero activations" if data.nonzero_only else "activations"
    chart(st, histogram(counts, edges, f"{shown}: {int(counts.sum()):,}", x_title="activation"), key="feature_histogram")


def show_text_box(reader: Callable[[str], TextReading] | None, scale: float) -> None:
    st.subheader("Test it on your text")
    if reader is None:
        st.caption("This feature's samples are not text (a toy's inputs, or the vocabulary's embeddings): there is nothing to type.")
        return
    text = st.text_area("Your text", key="feature_text", placeholder="Type a sentence, then press the button", max_chars=2000)
    if st.button("Read the feature on this text", key="feature_read", type="primary"):
        st.session_state["feature_reading"] = (text, reader(text))
    kept = st.session_state.get("feature_reading")
    if kept is not None and kept[0] == text:
        reading = kept[1]
        peak = float(np.max(np.abs(reading.values))) if len(reading.values) else 0.0
        st.markdown(highlighted(reading.tokens, reading.values, max(scale, peak)), unsafe_allow_html=True)
        st.dataframe(pd.DataFrame({"token": reading.tokens, "activation": reading.values}), hide_index=True, height=220)


def show_neighbours(data: FeatureData) -> None:
    st.subheader("Nearest directions of the other kinds")
    if data.direction is None:
        st.caption(
            "A Hessian feature is a direction in parameter space, and some LIB node layers have no plain hook: "
            "there is no activation-space direction to compare by cosine."
        )
        return
    space = data.direction.space
    st.caption(f"By |cosine| in {space.label()}: probe weights, dictionary atoms and LIB reading vectors of every finished result here.")
    found = nearest_across(data.direction.vectors[data.ref.index], sets_of_space(space), top=5, exclude_kind=data.ref.kind)
    if not found:
        st.info("No direction of another kind lives in this space yet: run a sparsity-by-layer job or probes at this layer and hook.")
        return
    for group in found:
        st.markdown(f"**{group[0].source}** · a random direction reaches |cos| {group[0].chance:.2f} against this set")
        for neighbour in group:
            feature_link(neighbour.ref, f"{neighbour.cosine:+.3f} · {neighbour.label}")


def show_feature(
    data: FeatureData,
    reader: Callable[[str], TextReading] | None,
    samples: Callable[[], None] | None = None,
    controls: Callable[[], None] | None = None,
) -> None:
    """The whole page for one feature; ``samples`` draws its top samples where they are not text;
    ``controls`` (the page's reading options) sit under the title and facts, where text is read."""
    show_header(data)
    shown = data.shown_values()
    scale = float(np.max(np.abs(shown))) if len(shown) else 0.0
    st.caption(
        f"Read on {data.where}."
        + (" Each text's first token is left out of the ranking and the histogram." if data.unranked is not None else "")
    )
    if controls is not None and data.contexts:
        controls()
    left, right = st.columns([3, 2])
    with left:
        if samples is not None and not data.contexts:
            samples()
        else:
            show_contexts(data.contexts, scale)
    with right:
        show_histogram(data)
    show_text_box(reader, scale)
    show_neighbours(data)
