"""The FeatureSet container every probe and geometry analysis consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from featgeom_core.errors import DataError
from featgeom_core.store import fingerprint_arrays

LAST_REAL_TOKEN = -1


@dataclass(frozen=True)
class FeatureSet:
    """Labelled probe positions.

    - ``texts``: the distinct input texts (length T).
    - ``example_text`` (n,) int: which text each example comes from.
    - ``example_pos`` (n,) int: token position in that text's encoding (with special tokens);
      ``LAST_REAL_TOKEN`` (-1) means the last non-special token.
    - ``labels`` (n, F) bool: whether example i has feature f.
    - ``mask`` (n, F) bool: whether example i belongs to feature f's probing dataset
      (all True for multi-class sets; per-feature samples for token-level features).
    - ``kind``: ``multiclass`` (exactly one feature per example; a shuffled-label control
      permutes whole rows) or ``multilabel`` (independent binary features).
    - ``notes``: feature name -> why it is not probed (e.g. unexpressible under the tokenizer).
    """

    name: str
    texts: tuple[str, ...]
    example_text: np.ndarray
    example_pos: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    feature_names: tuple[str, ...]
    kind: Literal["multiclass", "multilabel"]
    description: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.example_text)
        if n == 0:
            raise DataError(f"feature set {self.name!r} has no examples")
        if self.labels.shape != (n, len(self.feature_names)) or self.mask.shape != self.labels.shape:
            raise DataError(
                f"feature set {self.name!r}: labels/mask shape {self.labels.shape} does not match {n} examples x "
                f"{len(self.feature_names)} features"
            )
        for f, feature in enumerate(self.feature_names):
            positives = int((self.labels[:, f] & self.mask[:, f]).sum())
            negatives = int((~self.labels[:, f] & self.mask[:, f]).sum())
            if positives < 2 or negatives < 2:
                raise DataError(
                    f"feature {feature!r} in {self.name!r} needs at least 2 positive and 2 negative examples (has {positives} and "
                    f"{negatives})"
                )

    @property
    def n_examples(self) -> int:
        """Number of probe positions (rows of ``labels``)."""
        return int(len(self.example_text))

    @property
    def n_features(self) -> int:
        """Number of probed features (columns of ``labels``)."""
        return len(self.feature_names)

    def fingerprint(self) -> str:
        """Content hash of texts, positions, labels and masks: the cache identity of this set."""
        text_bytes = np.frombuffer("\x00".join(self.texts).encode(), dtype=np.uint8)
        names = np.frombuffer("\x00".join(self.feature_names).encode(), dtype=np.uint8)
        return fingerprint_arrays(text_bytes, names, self.example_text, self.example_pos, self.labels, self.mask)
