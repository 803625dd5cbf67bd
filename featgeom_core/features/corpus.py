"""Token activations of packaged text at one hook and layer, kept in the store: where a feature
page finds top-activating contexts for kinds whose result holds no text (probe directions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featgeom_core.activations import Hook, token_activations
from featgeom_core.data.registry import corpus_texts
from featgeom_core.models import LoadedModel
from featgeom_core.store import Store, result_key
from featgeom_core.tokens import token_strings

CORPUS_TEXTS = 128
"""Texts of the packaged news, reviews and code (a third each): ~6,000 tokens, seconds on a CPU."""
CORPUS_MAX_TOKENS = 64


@dataclass(frozen=True)
class CorpusTokens:
    """Every real token of ``texts``: ``values`` (n, d) float32 activations, ``text`` and
    ``position`` (n,) where each sits, ``strings`` (n,) the token as text (with its leading space)."""

    values: np.ndarray
    text: np.ndarray
    position: np.ndarray
    strings: list[str]
    texts: tuple[str, ...]


def strings_at(tokenizer, texts: Sequence[str], text: np.ndarray, position: np.ndarray, max_tokens: int) -> list[str]:
    """The text each token (``text``, ``position``) stands for, with its leading space, as the
    tokenizer's offsets give it (see :func:`featgeom_core.tokens.token_strings`)."""
    per_text = {int(t): token_strings(tokenizer, texts[int(t)], max_tokens) for t in np.unique(text)}
    return [str(per_text[int(t)][int(p)] or "") for t, p in zip(text, position)]


def corpus_tokens(
    model: LoadedModel,
    hook: Hook,
    layer: int,
    store: Store | None = None,
    n_texts: int = CORPUS_TEXTS,
    max_tokens: int = CORPUS_MAX_TOKENS,
) -> CorpusTokens:
    """Token activations of ``n_texts`` packaged texts (the first ``max_tokens`` tokens of each) at
    ``hook`` of ``layer``; read back from ``store`` after the first time."""
    texts = corpus_texts(per_source=max(1, n_texts // 3 + 1), seed=0)[:n_texts]
    settings = {"hook": hook, "layer": layer, "n_texts": n_texts, "max_tokens": max_tokens}
    key = result_key("feature_corpus", settings, {"model": model.fingerprint})
    cached = store.get(key, stale_as_missing=True) if store is not None else None
    if cached is not None:
        arrays = cached.arrays
    else:
        tokens = token_activations(model, texts, [layer], hook, max_tokens=max_tokens)
        arrays = {"values": tokens.values[layer], "text": tokens.text, "position": tokens.position, "token_id": tokens.token_id}
        if store is not None:
            store.put(key, arrays, {"model": model.name, "hook": hook, "layer": layer, "n_texts": n_texts})
    return CorpusTokens(
        values=arrays["values"],
        text=arrays["text"],
        position=arrays["position"],
        strings=strings_at(model.tokenizer, texts, arrays["text"], arrays["position"], max_tokens),
        texts=tuple(texts),
    )
