"""Top-activating contexts of one feature, with every token's activation, and its histogram: the
same reading for every kind, from per-token values and where each token sits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.features.result import Context


def top_contexts(
    values: np.ndarray,
    text: np.ndarray,
    position: np.ndarray,
    strings: Sequence[str],
    count: int = 10,
    before: int = 12,
    after: int = 4,
    by_magnitude: bool = False,
    unranked: np.ndarray | None = None,
) -> list[Context]:
    """The ``count`` strongest tokens, one per text, each with ``before`` tokens of its text before
    it and ``after`` after, strongest first.

    ``values``, ``text``, ``position`` (n,) and ``strings`` (n,): every token's activation, text
    and position, in any order. ``by_magnitude``: rank by |value| (a direction whose sign means
    nothing, as LIB's); else by value (probe logits, codes and curvatures have a meaningful sign).
    ``unranked`` (n,) bool: tokens never taken as a peak (still shown around one), e.g. each text's
    first token, where a causal model parks attention and carries activations hundreds of times larger.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    n = len(values)
    if not (len(text) == len(position) == len(strings) == n):
        raise InvalidParameter(f"values, text, position and strings must be as long ({n}, {len(text)}, {len(position)}, {len(strings)})")
    if n == 0 or count <= 0:
        return []
    order = np.lexsort((position, text))  # rows by text, then position
    sorted_text = np.asarray(text)[order]
    starts = np.searchsorted(sorted_text, sorted_text, side="left")
    ends = np.searchsorted(sorted_text, sorted_text, side="right")
    place = np.empty(n, dtype=np.int64)
    place[order] = np.arange(n)
    score = np.abs(values) if by_magnitude else values.copy()
    if unranked is not None:
        score[np.asarray(unranked, dtype=bool)] = np.nan
    contexts: list[Context] = []
    used: set[int] = set()
    for row in np.argsort(-score, kind="stable"):
        if not np.isfinite(score[row]):
            continue
        owner = int(text[row])
        if owner in used:
            continue
        used.add(owner)
        at = int(place[row])
        lo, hi = max(int(starts[at]), at - before), min(int(ends[at]), at + after + 1)
        rows = order[lo:hi]
        contexts.append(
            Context(
                text=owner,
                tokens=tuple(str(strings[r]) for r in rows),
                values=tuple(float(values[r]) for r in rows),
                focus=at - lo,
                peak=float(values[row]),
            )
        )
        if len(contexts) == count:
            break
    return contexts


def activation_histogram(values: np.ndarray, bins: int = 40, nonzero_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(counts (bins,), edges (bins + 1,)) of the finite ``values``; ``nonzero_only`` drops exact
    zeros (a sparse code's inactive tokens, which would swamp every other bar)."""
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if nonzero_only:
        finite = finite[finite != 0]
    if not len(finite):
        return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
    return np.histogram(finite, bins=bins)


def readable_tokens(pieces: Sequence[str]) -> list[str]:
    """Tokenizer pieces (``convert_ids_to_tokens``) as the text they stand for: byte-level BPE's
    ``Ġ``/``Ċ`` and SentencePiece's ``▁`` become a space and a newline; WordPiece's ``##`` joins,
    and its other pieces get the space before them."""
    wordpiece = any(p.startswith("##") for p in pieces[:5000])
    out = []
    for piece in pieces:
        if wordpiece:
            out.append(piece[2:] if piece.startswith("##") else " " + piece)
        else:
            out.append(piece.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n"))
    return out
