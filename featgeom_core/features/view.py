"""What a feature page shows, per kind, as data: the feature's activation on every token (or
sample) its result holds, its top contexts, and the direction that finds its neighbours."""

from __future__ import annotations

from typing import Any

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.features.contexts import readable_tokens, top_contexts
from featgeom_core.features.directions import DirectionSet
from featgeom_core.features.ref import FeatureRef
from featgeom_core.features.result import Context, CorpusTokens, FeatureData

CONTEXTS = 12


def first_tokens(text: np.ndarray, position: np.ndarray, skip_first: bool) -> np.ndarray | None:
    """(n,) bool: each text's first real token when ``skip_first``, else None. The smallest position
    of its text, not position 0: a left-padded batch starts a short text further in."""
    if not skip_first:
        return None
    texts, owner = np.unique(np.asarray(text), return_inverse=True)
    first = np.full(len(texts), np.iinfo(np.int64).max)
    np.minimum.at(first, owner, np.asarray(position, dtype=np.int64))
    return np.asarray(position) == first[owner]


def probe_feature(ref: FeatureRef, directions: DirectionSet, corpus: CorpusTokens, skip_first: bool = True) -> FeatureData:
    """A probe direction read on packaged text: its logit ``w . x + b`` on every token;
    ``skip_first``: each text's first token is not ranked (an attention sink's outsized activations)."""
    directions.check(ref.index)
    values = directions.read(corpus.values, ref.index)
    unranked = first_tokens(corpus.text, corpus.position, skip_first)
    return FeatureData(
        ref=ref,
        title=f"probe direction · {ref.features} · {directions.labels[ref.index]}",
        where=f"{len(values):,} tokens of {len(corpus.texts)} packaged texts (news, reviews, code); the probe's logit w·x + b",
        values=values,
        contexts=top_contexts(values, corpus.text, corpus.position, corpus.strings, CONTEXTS, unranked=unranked),
        count=len(directions),
        direction=directions,
        facts={
            "feature set": ref.features,
            "class": directions.labels[ref.index],
            "space": directions.space.label(),
            **(directions.facts[ref.index] if directions.facts else {}),
        },
        unranked=unranked,
        warning=directions.warning,
    )


def atom_feature(ref: FeatureRef, result: Any, directions: DirectionSet, set_name: str, skip_first: bool = True) -> FeatureData:
    """A dictionary atom read from its own result: its sparse code on every held-out token (the
    token embeddings: on every vocabulary entry)."""
    directions.check(ref.index)
    chosen = result.set(set_name)
    values = np.asarray(chosen.code.codes.tocsc()[:, [ref.index]].toarray()).ravel()
    facts = {"space": directions.space.label(), "used by": f"{chosen.usage[ref.index]:.2%} of rows", "λ": f"{chosen.code.lam:.4g}"}
    unranked = None
    if set_name == "embeddings":
        vocabulary = readable_tokens(result.vocabulary)
        contexts = top_contexts(values, np.arange(len(values)), np.zeros(len(values)), vocabulary, CONTEXTS, before=0, after=0)
        where = f"{len(values):,} vocabulary entries (the token embedding matrix); the atom's sparse code"
    else:
        strings = readable_tokens(result.token_strings)
        unranked = first_tokens(result.token_text, result.token_position, skip_first)
        contexts = top_contexts(values, result.token_text, result.token_position, strings, CONTEXTS, unranked=unranked)
        where = f"{len(values):,} held-out tokens of the packaged text; the atom's sparse code"
    return FeatureData(
        ref=ref,
        title=f"dictionary atom {ref.index} · {set_name}",
        where=where,
        values=values,
        contexts=contexts,
        count=len(directions),
        direction=directions,
        nonzero_only=True,
        facts=facts,
        unranked=unranked,
    )


def lib_feature(
    ref: FeatureRef, graph: Any, k: int, values: np.ndarray, pieces: list[str], directions: DirectionSet | None, skip_first: bool = True
) -> FeatureData:
    """A language block's LIB direction read on the graph's own token windows: ``values``
    (windows, positions) its coordinate; ``pieces`` (windows * positions,) the windows' tokens
    as the tokenizer names them, row by row."""
    n_windows, n_positions = values.shape
    text = np.repeat(np.arange(n_windows), n_positions)
    position = np.tile(np.arange(n_positions), n_windows)
    flat_strings = readable_tokens(pieces)
    flat = values.ravel()
    basis = graph.bases[k]
    unranked = first_tokens(text, position, skip_first)  # each window is read as a sequence of its own
    return FeatureData(
        ref=ref,
        title=f"LIB direction {ref.index} · {graph.node_layers[k]}",
        where=f"{flat.size:,} tokens: the graph's {n_windows} windows of {n_positions} tokens; the direction's coordinate",
        values=flat,
        contexts=top_contexts(flat, text, position, flat_strings, CONTEXTS, by_magnitude=True, unranked=unranked),
        count=basis.dim,
        direction=directions,
        by_magnitude=True,
        facts={"node layer": graph.node_layers[k], "Λ": f"{float(basis.values[ref.index]):.4g}", "model": graph.model},
        unranked=unranked,
    )


def hessian_feature(ref: FeatureRef, result: Any, which: str, skip_first: bool = True) -> FeatureData:
    """A Hessian feature read from its result: the curvature uᵀH(x)u of every sample of ``which``
    (a language model's tokens: in their texts)."""
    k = result.features.k
    if not 0 <= ref.index < k:
        raise InvalidParameter(f"this Hessian result has features 0..{k - 1}; there is no {ref.index}")
    values = result.curvatures(which)[:, ref.index]
    from featgeom_core.hessian.result import HELD_OUT

    tokens = result.heldout_tokens if which == HELD_OUT else result.train_tokens
    contexts: list[Context] = []
    unranked = None
    if tokens is not None:
        table = tokens.table
        strings = [tokens.strings[int(t)][int(p)] for t, p in zip(table["text"], table["position"])]
        unranked = first_tokens(table["text"], table["position"], skip_first)
        contexts = top_contexts(values, table["text"], table["position"], strings, CONTEXTS, unranked=unranked)
    return FeatureData(
        ref=ref,
        title=f"Hessian feature {ref.index} · {result.model}",
        where=f"{len(values):,} {'tokens' if tokens is not None else 'samples'} ({which}); the curvature uᵀH(x)u along the feature",
        values=values,
        contexts=contexts,
        count=k,
        facts={"model": result.model, "block": ", ".join(result.features.block), "what": result.description},
        unranked=unranked,
    )
