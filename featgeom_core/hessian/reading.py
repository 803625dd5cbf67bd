"""Reading learned Hessian features: their top-activating samples, how much two features interfere,
and a token's context in its text. Plain numpy on stored results (no model needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featgeom_core.errors import InvalidParameter


def top_indices(values: np.ndarray, n: int, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``n`` largest of ``values`` (n_samples,), largest first; with ``among``
    (n_samples,) bool, only samples marked True compete. NaN never ranks."""
    if n < 1:
        raise InvalidParameter(f"n = {n}: show at least one sample")
    candidates = np.flatnonzero(np.isfinite(values) & (True if among is None else np.asarray(among, dtype=bool)))
    order = np.argsort(-values[candidates], kind="stable")[:n]
    return candidates[order]


def coactivation(curvatures: np.ndarray) -> np.ndarray:
    """(k, k) cosine similarity of the features' activation profiles over the samples
    (curvatures (n_samples, k), non-negative at W0): 1 when two features are active on the same
    samples in the same proportions, 0 when never together. A feature that is nowhere active
    co-activates with nothing (0)."""
    c = np.nan_to_num(np.asarray(curvatures, dtype=np.float64))
    norms = np.linalg.norm(c, axis=0)
    safe = np.where(norms > 0, norms, 1.0)
    out = (c.T @ c) / np.outer(safe, safe)
    out[norms == 0, :] = 0.0
    out[:, norms == 0] = 0.0
    return out


def direction_overlap(U: np.ndarray) -> np.ndarray:
    """(k, k) |cosine| between the directions (rows of U (k, size))."""
    norms = np.linalg.norm(U, axis=1)
    unit = U / np.where(norms > 0, norms, 1.0)[:, None]
    return np.abs(unit @ unit.T)


def interference_matrix(U: np.ndarray, curvatures: np.ndarray) -> np.ndarray:
    """(k, k) interference between features: |cos(u_i, u_j)| x co-activation(i, j), in [0, 1]
    (1 on the diagonal of active features). Two features interfere when their directions overlap
    and they curve steeply on the same samples: what the interference loss penalises."""
    return direction_overlap(np.asarray(U, dtype=np.float64)) * coactivation(curvatures)


def single_input_samples(inputs: np.ndarray) -> np.ndarray:
    """(n_samples,) bool: samples with exactly one non-zero input (inputs (n_samples, n_inputs))."""
    return (np.asarray(inputs) != 0).sum(axis=1) == 1


def token_context(
    text: str, offsets: np.ndarray, special: np.ndarray, strings: Sequence[str], position: int, window: int = 8
) -> tuple[str, str, str]:
    """(left, token, right): the token at ``position`` of one text with up to ``window`` tokens of
    context each side. ``offsets`` (T, 2) character spans, ``special`` (T,) bool and ``strings``
    (T,) token strings of the text's real tokens. Spans come from the text itself; special tokens
    (and texts without spans, from a slow tokenizer) show their token strings."""
    T = len(strings)
    if not 0 <= position < T:
        raise InvalidParameter(f"position {position}: the text has {T} tokens")
    spans = np.asarray(offsets)
    has_spans = bool((spans[:, 1] > 0).any())
    if not has_spans:
        left = " ".join(strings[max(0, position - window) : position])
        right = " ".join(strings[position + 1 : position + 1 + window])
        return left, strings[position], right
    real = [i for i in range(T) if not special[i] and spans[i, 1] > spans[i, 0]]
    lo = [i for i in real if position - window <= i < position]
    hi = [i for i in real if position < i <= position + window]
    if special[position] or spans[position, 1] <= spans[position, 0]:
        anchor_start = spans[hi[0], 0] if hi else (spans[lo[-1], 1] if lo else 0)
        left = text[spans[lo[0], 0] : anchor_start] if lo else ""
        right = text[anchor_start : spans[hi[-1], 1]] if hi else ""
        return left, strings[position], right
    start, end = int(spans[position, 0]), int(spans[position, 1])
    left = text[int(spans[lo[0], 0]) : start] if lo else text[:0]
    right = text[end : int(spans[hi[-1], 1])] if hi else ""
    return left, text[start:end], right
