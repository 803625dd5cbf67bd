"""Giving freed memory back to the operating system between the phases of a long computation.

glibc's allocator keeps freed blocks (per-thread arenas, fragmentation), so after a model's forward
passes the process can hold hundreds of MB it no longer uses; a job that then allocates large
statistics peaks far above what it needs. ``release_memory`` collects garbage and trims the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return library if library is not None and hasattr(library, "malloc_trim") else None


def release_memory() -> None:
    """Collect garbage and return free heap pages to the OS (glibc only; elsewhere just collect)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
GLIBC_MMAP_THRESHOLD = 128 * 1024  # glibc's default, and where it stays once MALLOC_TRIM_THRESHOLD_ is set


@contextmanager
def heap_for_large_tensors(threshold_bytes: int = 32 * 2**20) -> Iterator[None]:
    """Inside, allocations below ``threshold_bytes`` (at most 32 MiB) come from the heap, not a
    fresh ``mmap`` each. Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_`` set, which freezes
    glibc's mmap threshold at 128 KiB: every tensor above it is then a new mapping whose pages are
    faulted in and zeroed, which halves the speed of a loop that allocates many mid-sized tensors
    (the Hessian fit on MiniLM: 0.85 -> 0.42 s a step). On exit the threshold goes back to 128 KiB
    and free memory is returned to the OS. Elsewhere than glibc: does nothing."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, min(int(threshold_bytes), 32 * 2**20))
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)
        release_memory()


def spill(array: np.ndarray, folder: Path, name: str) -> np.ndarray:
    """``array`` written to ``folder/name.npy`` and read back as a read-only memory map: the same
    values, held by the file system until read, so a phase that does not touch it (training, while
    held-out activations wait to be coded) does not carry it in resident memory."""
    path = folder / f"{name}.npy"
    np.save(path, array, allow_pickle=False)
    return np.load(path, mmap_mode="r", allow_pickle=False)
