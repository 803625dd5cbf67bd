"""Generic text for statistics that must not come from a feature set's own classes: short
snippets of the packaged news, reviews and code, read at their last real token."""

from __future__ import annotations

import numpy as np

from featgeom_core.data.feature_set import LAST_REAL_TOKEN, FeatureSet
from featgeom_core.data.registry import corpus_texts

BACKGROUND_TEXTS = 1024
"""Snippets in the background sample (enough for a stable mean; the covariance is ridged)."""


def background_set(n_texts: int = BACKGROUND_TEXTS, seed: int = 0) -> FeatureSet:
    """``n_texts`` distinct snippets (the first 4 to 24 words of packaged texts), one example each at
    its last real token; its single feature alternates so the set is a valid FeatureSet, and means nothing."""
    rng = np.random.default_rng(seed)
    snippets: list[str] = []
    seen: set[str] = set()
    for text in corpus_texts(per_source=max(n_texts // 3 + 1, 1), seed=seed):
        words = text.split()
        if len(words) < 4:
            continue
        snippet = " ".join(words[: int(rng.integers(4, min(24, len(words)) + 1))])
        if snippet not in seen:
            seen.add(snippet)
            snippets.append(snippet)
        if len(snippets) == n_texts:
            break
    n = len(snippets)
    return FeatureSet(
        name=f"background:{n}:{seed}",
        texts=tuple(snippets),
        example_text=np.arange(n),
        example_pos=np.full(n, LAST_REAL_TOKEN),
        labels=(np.arange(n) % 2 == 0)[:, None],
        mask=np.ones((n, 1), dtype=bool),
        feature_names=("background",),
        kind="multilabel",
        description="generic snippets of news, reviews and code, at their last token",
    )
