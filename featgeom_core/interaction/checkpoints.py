"""Reading a checkpoint as data: ``torch.load(weights_only=True)``, so a pickled object is refused,
and the result must be a state dict of tensors."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from featgeom_core.errors import DataError
from featgeom_core.interaction.params import UPLOAD_PREFIX
from featgeom_core.store import Store


def read_state_dict(source: str | Path | bytes) -> dict[str, torch.Tensor]:
    """The state dict in a file (a path) or in its bytes; DataError for a missing file, a pickle of
    anything but tensors, a damaged file, or an empty or non-tensor dict."""
    handle: io.BytesIO | Path
    if isinstance(source, bytes):
        handle, name = io.BytesIO(source), "the file"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(f"no checkpoint file at {path}")
        handle, name = path, path.name
    try:
        state = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (UnpicklingError, zip errors, truncation: all mean "not a plain state dict")
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"{name} is not a plain state dict of tensors (read with weights_only=True): {reason}") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{name} holds no state dict of tensors")
    return dict(state)


def uploads_dir(store: Store | None = None) -> Path:
    """Where the page keeps uploaded checkpoints, by content hash."""
    return (store or Store()).root / "uploads"


def store_upload(content: bytes, store: Store | None = None) -> str:
    """Keep an uploaded checkpoint by content hash and return its reference ``upload:<sha256>``;
    it must already read as a plain state dict of tensors (``weights_only=True``), else DataError."""
    read_state_dict(content)
    digest = hashlib.sha256(content).hexdigest()
    directory = uploads_dir(store)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{digest}.pt"
    if not target.exists():
        temporary = directory / f".{digest}.tmp"
        temporary.write_bytes(content)
        temporary.replace(target)
    return UPLOAD_PREFIX + digest
