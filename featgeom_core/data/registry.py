"""Named feature sets: what exists, and loading one by name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.data.knowledge import KNOWLEDGE_FAMILIES, load_knowledge_family
from featgeom_core.errors import DataError

# The real text the token-level features are sampled from: news, reviews and code.
TEXT_SOURCES: dict[str, str] = {
    "news": "97_news_class",
    "reviews": "111_yelp_data",
    "code_python": "159_code_Python",
    "code_c": "158_code_C",
    "code_html": "160_code_HTML",
}


@dataclass(frozen=True)
class FeatureSetInfo:
    """What ``list_feature_sets`` reports about one named set."""

    name: str
    kind: str
    description: str


def list_feature_sets() -> list[FeatureSetInfo]:
    """The named feature sets: token-level text features and the knowledge families."""
    infos = [FeatureSetInfo("text_features", "multilabel", "11 token-level features over news, reviews and code")]
    infos += [FeatureSetInfo(name, "multiclass", family.description) for name, family in KNOWLEDGE_FAMILIES.items()]
    return infos


@lru_cache(maxsize=4)
def corpus_texts(per_source: int | None = None, seed: int = 0) -> tuple[str, ...]:
    """Real text from the packaged data: ``per_source`` texts (all when None) from each of news,
    reviews and code, sampled with ``seed``, sources interleaved in a seeded order."""
    from featgeom_core.data.sae_probes_files import read_dataset

    texts: list[str] = []
    for stem in TEXT_SOURCES.values():
        prompts = read_dataset(stem)["prompt"].astype(str)
        count = len(prompts) if per_source is None else min(per_source, len(prompts))
        texts += prompts.sample(n=count, random_state=seed).tolist()
    if per_source is None:
        order = np.random.default_rng(seed).permutation(len(texts))
        texts = [texts[i] for i in order]
    return tuple(texts)


def load_feature_set(name: str, tokenizer: Any = None, **options: Any) -> FeatureSet:
    """Load a named feature set. ``text_features`` needs the model's ``tokenizer``.

    Options: knowledge families take ``max_per_class`` (default 600) and ``seed``;
    ``text_features`` takes ``texts_per_source`` (default 60) and the keyword arguments of
    ``sample_text_features``.
    """
    if name in KNOWLEDGE_FAMILIES:
        return load_knowledge_family(name, **options)
    if name == "text_features":
        if tokenizer is None:
            raise DataError("text_features are labelled from the model's tokens: pass the model's tokenizer")
        from featgeom_core.data.text_features import sample_text_features

        texts = list(corpus_texts(int(options.pop("texts_per_source", 60)), int(options.get("seed", 0))))
        return sample_text_features(texts, tokenizer, **options)
    known = ", ".join(info.name for info in list_feature_sets())
    raise DataError(f"unknown feature set {name!r}; choose one of {known}, or upload a CSV")
