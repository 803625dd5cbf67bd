"""Dictionary explorer (the paper's Appendix G): for one activation set of a sparsity-by-layer result,
each atom's top-activating tokens in their context and its coefficient histogram; one token
occurrence's decomposition into atoms; for the token embeddings, the tokens that use an atom most."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from featgeom_core.errors import FeatgeomError
from featgeom_core.features.ref import FeatureRef
from featgeom_core.sparsity.jobs import SPARSITY_MODEL
from ui.errors import render_safely
from ui.feature_view import feature_link
from ui.report import chart
from ui.sparsity_plots import decomposition_bar, histogram, token_in_context
from ui.state import adopt_url, one_of, require_selection, set_query

TOP_SHOWN = 12


@st.cache_resource(max_entries=2, show_spinner="Loading the dictionaries…")
def _result(job_id: str):
    return SPARSITY_MODEL.load(job_id)


def _choose_job() -> str | None:
    done = SPARSITY_MODEL.finished()
    wanted = st.query_params.get("job")
    ids = [r.job_id for r in done]
    if wanted and wanted not in ids:
        st.error(f"No finished sparsity-by-layer job {wanted!r} here; choose one below.")
    if not ids:
        st.info("No sparsity-by-layer result yet: run one on the Sparsity — by layer page.")
        return None
    if wanted in ids:
        st.session_state["dx_job"] = wanted
    label = {r.job_id: f"{r.params['model']} · {r.params['hook']} · {r.job_id[:8]}" for r in done}
    job_id = st.selectbox("Result", ids, key="dx_job", format_func=label.get)
    set_query(job=job_id)
    return job_id


def _contexts(result) -> dict[int, list[int]]:
    """Held-out token rows per text, in position order."""
    by_text: dict[int, list[int]] = {}
    for row in np.lexsort((result.token_position, result.token_text)):
        by_text.setdefault(int(result.token_text[row]), []).append(int(row))
    return by_text


def _token_context(result, row: int, by_text: dict[int, list[int]], as_html: bool = True) -> str:
    rows = by_text[int(result.token_text[row])]
    return token_in_context([result.token_strings[r] for r in rows], rows.index(row), as_html=as_html)


def _atom_label(result, activation_set, atom: int, k: int = 4) -> str:
    """An atom's top tokens as a short label."""
    rows = [int(r) for r in activation_set.top_rows[atom][:k] if r >= 0]
    words = [result.vocabulary[r] if activation_set.name == "embeddings" else result.token_strings[r] for r in rows]
    return ", ".join(words)


def show_atom(result, activation_set, atom: int, by_text, job_id: str) -> None:
    """The atom's top-activating tokens (in context, or vocabulary entries) and its histogram."""
    rows = [(int(r), float(v)) for r, v in zip(activation_set.top_rows[atom], activation_set.top_values[atom]) if r >= 0][:TOP_SHOWN]
    usage = activation_set.usage[atom]
    st.caption(f"atom {atom}: used by {usage:.2%} of the {'vocabulary' if activation_set.name == 'embeddings' else 'held-out tokens'}")
    layer = "embeddings" if activation_set.name == "embeddings" else activation_set.name.split()[-1]
    feature_link(FeatureRef("atom", atom, model=str(SPARSITY_MODEL.params_of(job_id).model), layer=layer, job=job_id))
    if not rows:
        st.info("This atom is dead: no activation uses it.")
        return
    left, right = st.columns([3, 2])
    with left:
        if activation_set.name == "embeddings":
            st.dataframe(
                pd.DataFrame({"token": [result.vocabulary[r] for r, _ in rows], "coefficient": [v for _, v in rows]}), hide_index=True
            )
        else:
            st.markdown("\n\n".join(f"`{v:.3f}` &nbsp; {_token_context(result, r, by_text)}" for r, v in rows), unsafe_allow_html=True)
    column = activation_set.code.codes.tocsc()[:, [atom]].data
    counts, edges = np.histogram(column, bins=30)
    chart(right, histogram(counts, edges, f"atom {atom}: its non-zero coefficients"), key="dx_atom_hist")


def show_decomposition(result, activation_set, by_text) -> None:
    """Pick a token occurrence (or a vocabulary entry) and see its atoms with coefficients."""
    embeddings = activation_set.name == "embeddings"
    strings = result.vocabulary if embeddings else result.token_strings
    query = st.text_input("Token to decompose", key="dx_token", placeholder="e.g. season").strip().lower()
    matches = [k for k, s in enumerate(strings) if s.lower().lstrip("#") == query] if query else []
    if query and not matches:
        st.warning(f"{query!r} is not among the {'vocabulary' if embeddings else 'held-out tokens'}.")
        return
    if not matches:
        return
    row = st.selectbox(
        "Occurrence",
        matches[:200],
        key="dx_occurrence",
        format_func=lambda k: strings[k] if embeddings else _token_context(result, k, by_text, as_html=False),
    )
    codes = activation_set.code.codes
    start, end = codes.indptr[row], codes.indptr[row + 1]
    atoms, values = codes.indices[start:end], codes.data[start:end]
    if not len(atoms):
        st.info("No atom: every coefficient of this one is zero.")
        return
    if not embeddings:
        st.markdown(_token_context(result, row, by_text), unsafe_allow_html=True)
    labels = [_atom_label(result, activation_set, int(a)) for a in atoms]
    chart(
        st,
        decomposition_bar(list(map(int, atoms)), list(map(float, values)), labels, f"{strings[row]}: {len(atoms)} atoms, largest first"),
        key="dx_decomposition",
    )


def render() -> None:
    require_selection()
    st.title("Dictionary explorer")
    job_id = _choose_job()
    if job_id is None:
        return
    try:
        result = _result(job_id)
    except FeatgeomError as exc:
        st.error(str(exc))
        return
    names = [s.name for s in result.sets]
    adopt_url("set", one_of(names), "dx_set")
    name = st.segmented_control("Activation set", names, key="dx_set") or names[0]
    activation_set = result.set(name)
    set_query(set=name)
    by_text = _contexts(result)
    order = np.argsort(-activation_set.usage)
    live = [int(a) for a in order if activation_set.usage[a] > 0]
    st.caption(f"{activation_set.code.dictionary_size} atoms, {len(live)} used; λ = {activation_set.code.lam:.4g}")
    tab_atoms, tab_token = st.tabs(["Atoms", "Decompose a token"])
    with tab_atoms:
        if not live:
            st.info("Every atom is dead.")
        else:
            adopt_url("atom", int, "dx_atom")
            if st.session_state.get("dx_atom") not in live:
                st.session_state["dx_atom"] = live[0]
            atom = st.selectbox(
                "Atom (most used first)",
                live,
                key="dx_atom",
                format_func=lambda a: f"atom {a} · {activation_set.usage[a]:.2%} · {_atom_label(result, activation_set, a)}",
            )
            set_query(atom=str(atom))
            show_atom(result, activation_set, atom, by_text, job_id)
    with tab_token:
        show_decomposition(result, activation_set, by_text)


render_safely(render)
