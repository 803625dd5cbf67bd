"""What a model id may be, checked without loading anything (job params validate with this, so a
mistyped id is refused at submission rather than on a worker minutes later)."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

DEFAULT_MODEL_ID = "minilm"
TINY_NATIVE_ID = "tiny-native"
SMOLLM2_ID = "smollm2"
RANDOMISED_SUFFIX = "-random"
RANDOMISED_IDS = (DEFAULT_MODEL_ID + RANDOMISED_SUFFIX, SMOLLM2_ID + RANDOMISED_SUFFIX)
"""The pretrained built-ins with their weights drawn afresh (a control; see ``randomised``)."""
BUILTIN_MODEL_IDS = (DEFAULT_MODEL_ID, SMOLLM2_ID, TINY_NATIVE_ID, *RANDOMISED_IDS)
_PRETRAINED_DIMENSIONS = {DEFAULT_MODEL_ID: (6, 384, 1536), SMOLLM2_ID: (30, 576, 1536)}
BUILTIN_DIMENSIONS: dict[str, tuple[int, int, int]] = {
    **_PRETRAINED_DIMENSIONS,
    **{model_id + RANDOMISED_SUFFIX: dims for model_id, dims in _PRETRAINED_DIMENSIONS.items()},
}
"""(layers, d_model, d_mlp) of the built-in pretrained models, known without loading them."""
MAX_MODEL_ID_LENGTH = 500
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(model_id: str) -> bool:
    """True for ``owner/name`` (letters, digits, ``_.-``), the shape of a Hugging Face hub id."""
    return _HUB_ID.fullmatch(model_id) is not None


def existing_path(text: str) -> Path | None:
    """``text`` as a path (``~`` expanded) when something exists there; None otherwise, and for text
    no file system would take as a path (a name longer than it allows, a NUL byte)."""
    try:
        path = Path(text).expanduser()
        return path if path.exists() else None
    except (OSError, ValueError):
        return None


def is_local_directory(model_id: str) -> bool:
    """True when ``model_id`` names an existing directory."""
    path = existing_path(model_id)
    return path is not None and path.is_dir()


def check_model_id(model_id: str, own: Collection[str] = ()) -> str:
    """``model_id`` stripped, when it can name a model: one of ``own`` (an analysis's own toys), a
    built-in id, an existing local directory or a hub id. Raises ValueError naming it otherwise."""
    value = model_id.strip()
    if not value:  # not the current directory, which Path("") would name
        raise ValueError("the model id is empty")
    if len(value) > MAX_MODEL_ID_LENGTH:
        raise ValueError(f"a model id has at most {MAX_MODEL_ID_LENGTH} characters, got {len(value)}")
    if value in own or value in BUILTIN_MODEL_IDS or is_local_directory(value) or looks_like_hub_id(value):
        return value
    known = ", ".join([*own, *BUILTIN_MODEL_IDS])
    raise ValueError(
        f"unknown model {value[:80]!r}: use one of {known}, an existing local checkpoint directory, "
        f"or a hub id such as EleutherAI/pythia-70m-deduped"
    )


def model_id_type(own: Collection[str] = ()) -> Any:
    """The type of a params field holding a model id: text checked by :func:`check_model_id` (which
    also bounds its length), with ``own`` the analysis's own toy models."""
    return Annotated[str, AfterValidator(lambda value: check_model_id(value, own))]


ModelId = model_id_type()
"""A model id of the registry: built-in, a local checkpoint directory or a hub id."""
