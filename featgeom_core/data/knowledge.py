"""Multi-class knowledge feature sets from sae-probes: each class a feature, probed at the last real token."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from featgeom_core.data.feature_set import LAST_REAL_TOKEN, FeatureSet
from featgeom_core.errors import DataError


@dataclass(frozen=True)
class KnowledgeFamily:
    """Where a family's rows live and how its raw target names map to class names."""

    stem: str
    description: str
    class_names: dict[str, str] | None = None
    template: str = "{}"
    """How a row's name becomes the text probed: ``{}`` is the name (the bare name by default)."""


KNOWLEDGE_FAMILIES: dict[str, KnowledgeFamily] = {
    "athlete_sport": KnowledgeFamily("108_athlete_sport", "athlete name -> sport (football, basketball, baseball)"),
    "us_timezone": KnowledgeFamily("14_us_timezone", "US place name -> time zone (Chicago, New York, Los Angeles)"),
    "world_country": KnowledgeFamily("17_world_country", "place name -> country (5 countries)"),
    "art_type": KnowledgeFamily("27_art_type", "title -> book, song or movie"),
    # 97_news_class is AG News with its label names shuffled; these are the true AG News topics.
    "news_topic": KnowledgeFamily(
        "97_news_class",
        "AG News headline + lead -> topic (World, Sports, Business, Sci/Tech)",
        {"Politics": "World", "Sport": "Sports", "Technology": "Business", "Entertainment": "Sci/Tech"},
    ),
}
PROMPT_TEMPLATES: dict[str, str] = {
    "athlete_sport": "{} plays the sport of",
    "us_timezone": "{} is in the same time zone as the city of",
    "world_country": "{} is a place in the country of",
    "art_type": "{} is the title of a",
}
"""A causal language model reads left to right: at the last token of the bare name it has not yet
been asked anything. These prompts end where the model would name the class; each family's
``<name>_prompt`` set probes there."""
for _name, _template in PROMPT_TEMPLATES.items():
    _family = KNOWLEDGE_FAMILIES[_name]
    KNOWLEDGE_FAMILIES[f"{_name}_prompt"] = KnowledgeFamily(
        _family.stem, f"{_family.description}, in the prompt '{_template.format('<name>')}'", _family.class_names, _template
    )


def dedupe_prompts(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per distinct prompt; drop prompts that appear with conflicting targets.

    Repeated prompts would land on both sides of a train/test split and inflate held-out
    accuracy (athlete_sport: 2,658 rows but 1,680 distinct names).
    """
    frame = frame.assign(prompt=frame["prompt"].astype(str).str.strip())
    frame = frame[frame["prompt"] != ""]
    consistent = frame.groupby("prompt")["target"].transform("nunique") == 1
    return frame[consistent].drop_duplicates("prompt").reset_index(drop=True)


def load_knowledge_family(name: str, max_per_class: int | None = 600, seed: int = 0) -> FeatureSet:
    """A knowledge family as a multi-class FeatureSet (one-vs-rest feature per class)."""
    family = KNOWLEDGE_FAMILIES[name]
    from featgeom_core.data.sae_probes_files import read_dataset

    frame = dedupe_prompts(read_dataset(family.stem))
    targets = frame["target"].astype(str)
    if family.class_names is not None:
        targets = targets.map(lambda t: family.class_names.get(t, t))
    frame = frame.assign(target=targets)
    if max_per_class is not None:
        shuffled = frame.sample(frac=1.0, random_state=seed)
        frame = shuffled.groupby("target").head(max_per_class).reset_index(drop=True)
    texts = [family.template.format(prompt) for prompt in frame["prompt"]]
    return multiclass_feature_set(name, texts, frame["target"].tolist(), None, family.description)


def multiclass_feature_set(
    name: str,
    texts: list[str],
    classes: list[str],
    positions: list[int] | None,
    description: str,
) -> FeatureSet:
    """One example per text; feature f is "the class is f". Positions default to the last real token."""
    class_names = sorted(set(classes))
    if len(class_names) < 2:
        raise DataError(f"{name!r} has only one class ({class_names[0] if class_names else 'none'}); probing needs at least two")
    class_index = np.asarray([class_names.index(c) for c in classes])
    labels = class_index[:, None] == np.arange(len(class_names))[None, :]
    n = len(texts)
    return FeatureSet(
        name=name,
        texts=tuple(texts),
        example_text=np.arange(n),
        example_pos=np.asarray(positions if positions is not None else [LAST_REAL_TOKEN] * n, dtype=np.int64),
        labels=labels,
        mask=np.ones_like(labels, dtype=bool),
        feature_names=tuple(class_names),
        kind="multiclass",
        description=description,
    )
