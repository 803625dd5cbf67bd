"""Content-addressed on-disk result store.

A result is a directory ``<root>/<key[:2]>/<key>/`` holding ``meta.json`` (JSON values only),
``arrays.npz`` (numpy arrays, read back with ``allow_pickle=False``) and ``format.json`` (the
store format and the featgeom version that wrote it). It is written into a temporary sibling
directory and renamed into place, so a killed writer leaves nothing readable; stray temporaries are
ignored by readers and swept by :meth:`Store.sweep_temporaries`.

Results are typed: :meth:`Store.put_result` writes a result dataclass through
:mod:`featgeom_core.codec` (its arrays by path, its metadata as JSON) and :meth:`Store.get_result`
reads it back as its type.

Upgrades: keys include the package version, so a newer featgeom computes its own results beside
the old ones; what it reads of the old ones (a job's result, through the job's record) is checked
against :data:`READABLE_FORMATS`, and an entry of another format raises :class:`StaleResult`
naming what wrote it, never a crash. Entries written before formats were recorded are format 0,
the same files as format 1; formats 0 and 1 hold results in the hand-written layouts of featgeom
0.1's result types, which :mod:`featgeom_core.migrations` turns into format 2's codec layout when
they are read as a type (``featgeom store migrate`` rewrites them in place).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from featgeom_core import __version__, codec
from featgeom_core.config import cache_dir
from featgeom_core.errors import StaleResult, StoreUnwritable

FORMAT_VERSION = 2
READABLE_FORMATS = frozenset({0, 1, 2})
CODEC_FORMAT = 2  # the first format whose results are written by featgeom_core.codec
FORMAT_FILE = "format.json"

Arrays = dict[str, np.ndarray]
Meta = dict[str, Any]
R = TypeVar("R")


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
    payload = canonical_json({"analysis": analysis, "params": dict(params), "inputs": dict(fingerprints), "version": __version__})
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
class EntryFormat:
    """What wrote a stored entry: its store ``format`` and featgeom ``version`` (None for format 0)."""

    key: str
    format: int
    version: str | None

    @property
    def readable(self) -> bool:
        """Whether this featgeom reads the entry."""
        return self.format in READABLE_FORMATS

    def problem(self) -> str:
        """Why the entry must be recomputed (empty when it is readable)."""
        if self.readable:
            return ""
        return (
            f"stored result {self.key[:12]} was written by featgeom {self.version or 'unknown'} in store format {self.format}; "
            f"featgeom {__version__} reads formats {', '.join(map(str, sorted(READABLE_FORMATS)))}: recompute it"
        )


@dataclass(frozen=True)
class StoredResult:
    """One result read back from the store."""

    key: str
    arrays: Arrays
    meta: Meta
    format: int = FORMAT_VERSION


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

    def entry_format(self, key: str) -> EntryFormat:
        """The format of a stored entry (format 0 when it predates format files; a format file that
        does not parse reads as an unreadable format -1)."""
        try:
            stamp = json.loads((self.path(key) / FORMAT_FILE).read_text())
            return EntryFormat(key, int(stamp["format"]), str(stamp.get("featgeom")))
        except FileNotFoundError:
            return EntryFormat(key, 0, None)
        except (ValueError, KeyError, TypeError):
            return EntryFormat(key, -1, None)

    def get(self, key: str, stale_as_missing: bool = False) -> StoredResult | None:
        """The stored result, or None when absent; :class:`StaleResult` when another store format
        wrote it or its files are damaged (None instead with ``stale_as_missing``, for caches that
        recompute on a miss). Never unpickles anything."""
        try:
            return self._read(key)
        except StaleResult:
            if stale_as_missing:
                return None
            raise

    def _read(self, key: str) -> StoredResult | None:
        directory = self.path(key)
        if not self.contains(key):
            return None
        stamp = self.entry_format(key)
        if not stamp.readable:
            raise StaleResult(stamp.problem())
        try:
            meta = json.loads((directory / "meta.json").read_text())
            arrays_file = directory / "arrays.npz"
            arrays: Arrays = {}
            if arrays_file.exists():
                with np.load(arrays_file, allow_pickle=False) as npz:
                    arrays = {name: npz[name] for name in npz.files}
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (ValueError, OSError) as exc:  # damaged files (a disk fault, an edit by hand)
            raise StaleResult(f"stored result {key[:12]} cannot be read ({type(exc).__name__}: {exc}): recompute it") from exc
        return StoredResult(key=key, arrays=arrays, meta=meta, format=stamp.format)

    def get_result(self, key: str, result_type: type[R], stale_as_missing: bool = True) -> R | None:
        """The result stored under ``key`` as ``result_type``, or None when absent (and, with
        ``stale_as_missing``, when it cannot be read as that type); an entry of an older format is
        migrated on the way (see :mod:`featgeom_core.migrations`)."""
        try:
            stored = self.get(key)
            return None if stored is None else decode_stored(stored, result_type)
        except StaleResult:
            if stale_as_missing:
                return None
            raise

    def put(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> StoredResult:
        """Write a result atomically (temp dir + rename); an existing result is kept as is. A cache
        that cannot be written (disk full, read-only) raises :class:`StoreUnwritable`."""
        try:
            return self._put(key, arrays, meta)
        except OSError as exc:
            raise StoreUnwritable(
                f"cannot write to the cache at {self.root} ({exc.strerror or exc}): this result was not kept; "
                f"everything stored before is untouched. Free some space or fix the directory's permissions."
            ) from exc

    def _put(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> StoredResult:
        private_directory(self.root)
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        try:
            if arrays:
                codec.write_npz(temporary / "arrays.npz", arrays, compressed=False)
            (temporary / FORMAT_FILE).write_text(canonical_json({"format": FORMAT_VERSION, "featgeom": __version__}))
            # meta.json is written last: its presence marks a complete result.
            (temporary / "meta.json").write_text(canonical_json(dict(meta)))
            _fsync_dir(temporary)
            try:
                os.rename(temporary, final)
            except OSError:
                if not self.contains(key):  # a concurrent writer did not win the race either
                    raise
                if self.get(key, stale_as_missing=True) is None:  # the entry there is damaged or stale: replace it
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(temporary, final)
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        return StoredResult(key=key, arrays=dict(arrays), meta=dict(meta))

    def get_or_compute(
        self, key: str, compute: Callable[[], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]
    ) -> tuple[StoredResult, bool]:
        """Return ``(result, was_cached)``, computing and storing the result on a miss."""
        cached = self.get(key, stale_as_missing=True)
        if cached is not None:
            return cached, True
        arrays, meta = compute()
        return self.put(key, arrays, meta), False

    def audit(self) -> list[EntryFormat]:
        """Every complete entry's format, unreadable ones first (what an upgrade must recompute)."""
        if not self.root.exists():
            return []
        stamps = [self.entry_format(meta.parent.name) for meta in self.root.glob("??/*/meta.json") if not meta.parent.name.startswith(".")]
        return sorted(stamps, key=lambda s: (s.readable, s.key))

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


def decode_stored(stored: StoredResult, result_type: type[R]) -> R:
    """A stored entry as ``result_type``: older formats migrated first; a layout the type does not
    describe is a :class:`StaleResult` (recompute it)."""
    from featgeom_core import codec, migrations

    try:
        arrays, meta = migrations.upgrade(result_type, stored.format, stored.arrays, stored.meta)
        return codec.decode(result_type, arrays, meta)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise StaleResult(
            f"stored result {stored.key[:12]} has a layout featgeom {__version__} cannot read as a "
            f"{result_type.__name__} ({type(exc).__name__}: {exc}); recompute it"
        ) from exc


def private_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by its owner only (mode 0700): results and
    uploads of a shared machine's users stay theirs. An existing directory is left as it is."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode passes through the umask


def _fsync_dir(directory: Path) -> None:
    for child in directory.iterdir():
        with open(child, "rb") as handle:
            os.fsync(handle.fileno())
