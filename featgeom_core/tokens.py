"""Tokenisation shared by feature-set construction and activation extraction.

Both sides must agree on token positions, so both call :func:`encode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_MAX_TOKENS = 128


def encode(tokenizer: Any, texts: Sequence[str], max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, np.ndarray]:
    """Tokenise texts with special tokens, truncated to ``max_tokens``, right-padded.

    Returns int64 arrays of shape (n_texts, seq): ``input_ids``, ``attention_mask``,
    ``special_tokens_mask`` (1 at [CLS]/[SEP]/BOS/EOS and padding), and ``last_real``
    of shape (n_texts,): the index of the last non-special token (the knowledge-probe position;
    for BERT-style tokenizers the token before the appended [SEP]).
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_tokens,
        padding=True,
        return_special_tokens_mask=True,
        return_tensors="np",
    )
    attention = encoded["attention_mask"].astype(np.int64)
    special = np.where(attention == 1, encoded["special_tokens_mask"], 1).astype(np.int64)
    real = special == 0
    seq = real.shape[1]
    last_real = np.where(real.any(axis=1), seq - 1 - np.argmax(real[:, ::-1], axis=1), 0)
    return {
        "input_ids": encoded["input_ids"].astype(np.int64),
        "attention_mask": attention,
        "special_tokens_mask": special,
        "last_real": last_real.astype(np.int64),
    }


def token_strings(tokenizer: Any, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str | None]:
    """The string each token of ``text`` stands for, as the model sees it, with preceding whitespace.

    Uses the fast tokenizer's offsets: token i covers ``text[prev_end:end]`` so a word-initial
    token carries the space before it (GPT-2 style " the"), and the tokenizer's own normaliser
    (lower-casing, accent stripping) is applied, so an uncased tokenizer yields no capitals.
    Special tokens get None. Positions match :func:`encode` for the same text.
    """
    encoded = tokenizer(text, truncation=True, max_length=max_tokens, return_offsets_mapping=True, return_special_tokens_mask=True)
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    strings: list[str | None] = []
    prev_end = 0
    for (start, end), special in zip(encoded["offset_mapping"], encoded["special_tokens_mask"]):
        if special:
            strings.append(None)
            continue
        piece = text[prev_end:end] if end > prev_end else text[start:end]
        if normalizer is not None:
            piece = normalizer.normalize_str(piece)
        strings.append(piece)
        prev_end = max(prev_end, end)
    return strings


def lowercases(tokenizer: Any) -> bool:
    """Whether the tokenizer maps upper- and lower-case text to the same tokens."""
    upper = tokenizer("Hello WORLD", add_special_tokens=False)["input_ids"]
    lower = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    return list(upper) == list(lower)
