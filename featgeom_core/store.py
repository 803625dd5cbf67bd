"""Content-addressed on-disk result store.

A result is a directory ``<root>/<key[:2]>/<key>/`` holding ``meta.json`` (JSON values only)
and ``arrays.npz`` (numpy arrays, read back with ``allow_pickle=False``). It is written into a
temporary sibling directory and renamed into place, so a killed writer leaves nothing readable;
stray temporaries are ignored by readers and swept by :meth:`Store.sweep_temporaries`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from featgeom_core import __version__
from featgeom_core.config import cache_dir

Arrays = dict[str, np.ndarray]
Meta = dict[str, Any]


def canonical_json(value: Any) -> str:
    """A deterministic JSON text for params (sorted keys, no whitespace, tuples as lists)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable in a cache key: {type(value).__name__}")


def result_key(analysis: str, params: Mapping[str, Any], fingerprints: Mapping[str, str]) -> str:
    """SHA-256 hex key of (analysis name, canonical params, input fingerprints, package version)."""
    payload = canonical_json(
        {"analysis": analysis, "params": dict(params), "inputs": dict(fingerprints), "version": __version__}
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """SHA-256 hex digest of arrays' dtypes, shapes and bytes (order-sensitive)."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredResult:
    """One result read back from the store."""

    key: str
    arrays: Arrays
    meta: Meta


class Store:
    """Atomic, content-addressed store of (arrays, JSON metadata) results."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()

    def path(self, key: str) -> Path:
        """Directory a result with this key lives in (it may not exist)."""
        return self.root / key[:2] / key

    def contains(self, key: str) -> bool:
        """Whether a complete result with this key is stored."""
        return (self.path(key) / "meta.json").is_file()

    def get(self, key: str) -> StoredResult | None:
        """The stored result, or None when absent. Never unpickles anything."""
        directory = self.path(key)
        try:
            meta = json.loads((directory / "meta.json").read_text())
            arrays_file = directory / "arrays.npz"
            arrays: Arrays = {}
            if arrays_file.exists():
                with np.load(arrays_file, allow_pickle=False) as npz:
                    arrays = {name: npz[name] for name in npz.files}
        except (FileNotFoundError, NotADirectoryError):
            return None
        return StoredResult(key=key, arrays=arrays, meta=meta)

    def put(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> StoredResult:
        """Write a result atomically (temp dir + rename); an existing result is kept as is."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        try:
            if arrays:
                np.savez(temporary / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
            # meta.json is written last: its presence marks a complete result.
            (temporary / "meta.json").write_text(canonical_json(dict(meta)))
            _fsync_dir(temporary)
            try:
                os.rename(temporary, final)
            except OSError:
                if not self.contains(key):  # a concurrent writer did not win the race either
                    raise
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        return StoredResult(key=key, arrays=dict(arrays), meta=dict(meta))

    def get_or_compute(
        self, key: str, compute: Callable[[], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]
    ) -> tuple[StoredResult, bool]:
        """Return ``(result, was_cached)``, computing and storing the result on a miss."""
        cached = self.get(key)
        if cached is not None:
            return cached, True
        arrays, meta = compute()
        return self.put(key, arrays, meta), False

    def size_bytes(self) -> int:
        """Total bytes of files under the store root."""
        if not self.root.exists():
            return 0
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def sweep_temporaries(self) -> int:
        """Delete temp dirs left by killed writers; returns how many were removed."""
        removed = 0
        for stray in self.root.glob("*/.tmp-*"):
            shutil.rmtree(stray, ignore_errors=True)
            removed += 1
        return removed


def _fsync_dir(directory: Path) -> None:
    for child in directory.iterdir():
        with open(child, "rb") as handle:
            os.fsync(handle.fileno())
