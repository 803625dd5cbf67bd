"""A feature read on a text someone types: its activation on every token of that text, per kind,
the same quantity the feature's page ranks its contexts by."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.features.corpus import strings_at
from featgeom_core.features.directions import DirectionSet
from featgeom_core.features.result import TextReading
from featgeom_core.models import LoadedModel

MAX_TEXT_CHARS = 2000
MAX_TEXT_TOKENS = 128


def check_text(text: str) -> str:
    """The text, stripped; DataError when empty or longer than :data:`MAX_TEXT_CHARS`."""
    text = text.strip()
    if not text:
        raise DataError("type a text to read the feature on")
    if len(text) > MAX_TEXT_CHARS:
        raise DataError(f"the text has {len(text):,} characters; at most {MAX_TEXT_CHARS:,} are read")
    return text


def _text_activations(model: LoadedModel, space_hook: str, layer: int, text: str) -> tuple[np.ndarray, list[str]]:
    from featgeom_core.activations import token_activations

    tokens = token_activations(model, [text], [layer], space_hook, max_tokens=MAX_TEXT_TOKENS)  # type: ignore[arg-type]
    order = np.argsort(tokens.position)
    strings = strings_at(model.tokenizer, [text], tokens.text[order], tokens.position[order], MAX_TEXT_TOKENS)
    return tokens.values[layer][order], strings


def read_direction(model: LoadedModel, directions: DirectionSet, index: int, text: str) -> TextReading:
    """A probe direction (or any reading vector in an activation space of ``model``) on ``text``."""
    text = check_text(text)
    if directions.space.layer < 0:
        raise InvalidParameter("reading a text before block 0 is not supported; choose a layer")
    values, strings = _text_activations(model, directions.space.hook, directions.space.layer, text)
    return TextReading(strings, directions.read(values, index))


def read_atom(model: LoadedModel, result: Any, set_name: str, coding: Any, atom: int, text: str) -> TextReading:
    """A dictionary atom's sparse code on every token of ``text``: the activations, centred as the
    dictionary was, coded against the whole dictionary at its λ (``coding``: the job's coding params)."""
    from featgeom_core.sparsity.coding import encode

    text = check_text(text)
    chosen = result.set(set_name)
    if set_name == "embeddings":
        raise InvalidParameter("the embeddings' atoms code vocabulary entries, not a text: choose a layer's dictionary")
    if not 0 <= atom < chosen.code.dictionary_size:
        raise InvalidParameter(f"this dictionary has atoms 0..{chosen.code.dictionary_size - 1}")
    values, strings = _text_activations(model, result.hook, int(set_name.split()[-1]), text)
    codes, _ = encode(np.ascontiguousarray(values - chosen.code.center, dtype=np.float32), chosen.code.dictionary, chosen.code.lam, coding)
    return TextReading(strings, np.asarray(codes.tocsc()[:, [atom]].toarray()).ravel())


def read_lib(model: Any, graph: Any, k: int, index: int, tokenizer: Any, text: str) -> TextReading:
    """A language block's LIB direction on ``text``: the coordinate the graph's basis gives each token."""
    from featgeom_core.interaction.nodes import direction_values

    text = check_text(text)
    encoded = tokenizer(text, truncation=True, max_length=MAX_TEXT_TOKENS, return_offsets_mapping=True, add_special_tokens=False)
    ids = encoded["input_ids"]
    if not ids:
        raise DataError("the text has no tokens")
    values = direction_values(model, graph, k, index, torch.as_tensor([ids]))
    strings, end = [], 0
    for start, stop in encoded["offset_mapping"]:
        strings.append(text[end:stop] if stop > end else text[start:stop])
        end = max(end, stop)
    return TextReading(strings, values[0])


def read_hessian(result: Any, model_id: str, index: int, text: str) -> TextReading:
    """A language model's Hessian feature on ``text``: uᵀH(x)u at every token, the model's own
    next-token divergence as in the fit."""
    from featgeom_core.hessian.language import load_language_model, token_curvatures, tokenize

    text = check_text(text)
    if not result.is_language_model:
        raise InvalidParameter("this Hessian result is a toy's: its samples are inputs, not text")
    if not 0 <= index < result.features.k:
        raise InvalidParameter(f"this Hessian result has features 0..{result.features.k - 1}")
    lm = load_language_model(model_id)
    batch = tokenize(lm.tokenizer, [text], MAX_TEXT_TOKENS)
    if batch.n_tokens == 0:
        raise DataError("the text has no tokens")
    U = result.features.U[index : index + 1]
    values = token_curvatures(lm.module, lm.block(tuple(result.features.block)), batch, U).double().numpy()[:, 0]
    table = batch.token_table()
    return TextReading([batch.strings[0][int(p)] for p in table["position"]], values)
