"""Token activations of packaged text at one hook and layer: where a feature page finds the
top-activating contexts of kinds whose result holds no text (probe directions). Run as the
``features.corpus`` job, so it is stored once per model, hook and layer like any result."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featgeom_core.activations import token_activations
from featgeom_core.data.registry import corpus_texts
from featgeom_core.errors import InvalidParameter
from featgeom_core.features.params import CorpusParams
from featgeom_core.features.result import CorpusTokens
from featgeom_core.models import LoadedModel
from featgeom_core.progress import Progress
from featgeom_core.tokens import token_strings


def strings_at(tokenizer, texts: Sequence[str], text: np.ndarray, position: np.ndarray, max_tokens: int) -> list[str]:
    """The text each token (``text``, ``position``) stands for, with its leading space, as the
    tokenizer's offsets give it (see :func:`featgeom_core.tokens.token_strings`)."""
    per_text = {int(t): token_strings(tokenizer, texts[int(t)], max_tokens) for t in np.unique(text)}
    return [str(per_text[int(t)][int(p)] or "") for t, p in zip(text, position)]


def corpus_tokens(model: LoadedModel, params: CorpusParams, progress: Progress | None = None) -> CorpusTokens:
    """Token activations of ``params.n_texts`` packaged texts (the first ``max_tokens`` tokens of
    each) at ``params.hook`` of ``params.layer``: values (n_tokens, d) float32; ``progress`` hears
    each batch (a cancelled job stops there)."""
    if params.layer >= model.n_layers:
        raise InvalidParameter(f"layer {params.layer} out of range: {model.name} has layers 0..{model.n_layers - 1}")
    texts = corpus_texts(per_source=max(1, params.n_texts // 3 + 1), seed=0)[: params.n_texts]
    tokens = token_activations(model, texts, [params.layer], params.hook, max_tokens=params.max_tokens, progress=progress)
    return CorpusTokens(
        values=tokens.values[params.layer],
        text=tokens.text,
        position=tokens.position,
        strings=strings_at(model.tokenizer, texts, tokens.text, tokens.position, params.max_tokens),
        texts=tuple(texts),
    )
