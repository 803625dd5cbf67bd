"""Settings read from environment variables, and device resolution."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from featgeom_core.errors import InvalidParameter

_REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Root of the on-disk result store: ``$FEATGEOM_CACHE_DIR`` or ``<repo>/cache``."""
    return Path(os.environ.get("FEATGEOM_CACHE_DIR", _REPO_ROOT / "cache")).resolve()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into CUDA when present, else CPU; validate anything else."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameter(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise InvalidParameter(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from exc


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with torch on ``count`` intra-op threads (restored after). Toy models gain
    nothing from threads, and beside another busy process two threads slow them many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
