"""Giving freed memory back to the operating system between the phases of a long computation.

glibc's allocator keeps freed blocks (per-thread arenas, fragmentation), so after a model's forward
passes the process can hold hundreds of MB it no longer uses; a job that then allocates large
statistics peaks far above what it needs. ``release_memory`` collects garbage and trims the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache


@lru_cache(maxsize=1)
def _libc():  # type: ignore[no-untyped-def]
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
