"""The 11 token-level text features of the thesis (after Gurnee et al. 2023), and their sampling.

A token's string is the text it covers *including the whitespace before it* (see
``featgeom_core.tokens.token_strings``), so " The" has a leading space and "ing" does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.errors import DataError
from featgeom_core.tokens import lowercases, token_strings

_DIGIT = re.compile(r"\d")
_ALL_DIGITS = re.compile(r"\s?\d+")
_CAPITAL = re.compile(r"[A-Z]")
_ALL_CAPITALS = re.compile(r"\s*[A-Z]+")
_WHITESPACE = re.compile(r"\s")
_ALL_WHITESPACE = re.compile(r"\s+")
_NOT_ALPHANUMERIC = re.compile(r"\W+")
# Single-letter words that are capitalised by grammar, not by being acronyms.
_NOT_ACRONYMS = frozenset({"I", " I", "A", " A"})


def _leading_capital(token: str) -> bool:
    first = token[1:2] if token[:1] == " " else token[:1]
    return first.isupper()


TEXT_FEATURES: dict[str, Callable[[str], bool]] = {
    "contains_digit": lambda t: _DIGIT.search(t) is not None,
    "all_digits": lambda t: _ALL_DIGITS.fullmatch(t) is not None,
    "contains_capital": lambda t: _CAPITAL.search(t) is not None,
    "leading_capital": _leading_capital,
    "all_capitals": lambda t: _ALL_CAPITALS.fullmatch(t) is not None and t not in _NOT_ACRONYMS,
    "contains_whitespace": lambda t: _WHITESPACE.search(t) is not None,
    "has_leading_space": lambda t: t[:1] == " ",
    "no_leading_space_and_loweralpha": lambda t: t.isalpha() and t.islower(),
    "contains_all_whitespace": lambda t: _ALL_WHITESPACE.fullmatch(t) is not None,
    "is_not_alphanumeric": lambda t: _NOT_ALPHANUMERIC.fullmatch(t) is not None,
    "is_not_ascii": lambda t: not t.isascii(),
}
_CAPITAL_FEATURES = ("contains_capital", "leading_capital", "all_capitals")


def text_feature_labels(token: str) -> dict[str, bool]:
    """Labels of all 11 text features for one decoded token string (with its leading whitespace)."""
    return {name: bool(rule(token)) for name, rule in TEXT_FEATURES.items()} if token else {name: False for name in TEXT_FEATURES}


def sample_text_features(
    texts: Sequence[str],
    tokenizer: Any,
    examples_per_feature: int = 400,
    positive_fraction: float = 0.2,
    skip_first_tokens: int = 4,
    max_tokens: int = 64,
    min_positives: int = 10,
    seed: int = 0,
    name: str = "text_features",
) -> FeatureSet:
    """Sample token positions per feature with ~``positive_fraction`` positives, Gurnee-style.

    Every non-special token after the first ``skip_first_tokens`` of each text is a candidate;
    each feature draws its own sample (the ``mask`` column), and the union is probed once.
    A feature with fewer than ``min_positives`` positive candidates is not probed and is
    reported in ``notes`` (for example capitals under an uncased tokenizer).
    """
    if not 0 < positive_fraction < 1:
        raise DataError(f"positive_fraction must be in (0, 1), got {positive_fraction}")
    rng = np.random.default_rng(seed)
    candidate_text, candidate_pos, candidate_labels = [], [], []
    for t, text in enumerate(texts):
        strings = token_strings(tokenizer, text, max_tokens=max_tokens)
        real_positions = [p for p, s in enumerate(strings) if s is not None]
        for position in real_positions[skip_first_tokens:]:
            labels = text_feature_labels(strings[position] or "")
            candidate_text.append(t)
            candidate_pos.append(position)
            candidate_labels.append([labels[f] for f in TEXT_FEATURES])
    if not candidate_text:
        raise DataError("no token positions to sample: the texts are shorter than the skipped prefix")
    labels_all = np.asarray(candidate_labels, dtype=bool)
    uncased = lowercases(tokenizer)
    selected: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    for f, feature in enumerate(TEXT_FEATURES):
        positives = np.flatnonzero(labels_all[:, f])
        negatives = np.flatnonzero(~labels_all[:, f])
        if len(positives) < min_positives:
            reason = f"only {len(positives)} of {len(labels_all)} candidate tokens have it under this tokenizer"
            if uncased and feature in _CAPITAL_FEATURES:
                reason = "the tokenizer is uncased (it lower-cases text), so no token the model sees has a capital"
            notes[feature] = reason
            continue
        n_pos = min(len(positives), int(round(examples_per_feature * positive_fraction)))
        n_neg = min(len(negatives), int(round(n_pos * (1 - positive_fraction) / positive_fraction)))
        selected[feature] = np.concatenate([rng.choice(positives, n_pos, replace=False), rng.choice(negatives, n_neg, replace=False)])
    if not selected:
        raise DataError("no text feature has enough positive tokens in these texts")
    rows = np.unique(np.concatenate(list(selected.values())))
    row_of = {candidate: i for i, candidate in enumerate(rows)}
    features = [f for f in TEXT_FEATURES if f in selected]
    mask = np.zeros((len(rows), len(features)), dtype=bool)
    for j, feature in enumerate(features):
        mask[[row_of[c] for c in selected[feature]], j] = True
    column = [list(TEXT_FEATURES).index(f) for f in features]
    return FeatureSet(
        name=name,
        texts=tuple(texts),
        example_text=np.asarray(candidate_text)[rows],
        example_pos=np.asarray(candidate_pos)[rows],
        labels=labels_all[rows][:, column],
        mask=mask,
        feature_names=tuple(features),
        kind="multilabel",
        description=f"11 token-level text features over {len(texts)} texts, ~{positive_fraction:.0%} positives per feature",
        notes=notes,
    )
