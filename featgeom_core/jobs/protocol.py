"""The job protocol: what an analysis declares to make a computation a job, and the registry.

A job kind is a params model (what it takes), a run function (validated params and a progress
callback -> a :class:`JobOutput`), a result type that stores and restores itself
(:class:`StoredResultType`), the page that opens a result, and whether it wants a GPU. Each
analysis package declares its kinds next to its code (``<analysis>/jobs.py``) and calls
:func:`register`; ``featgeom_core/analyses.py`` lists those modules, so adding an analysis adds
one line there. Nothing here knows any analysis.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generic, Mapping, Protocol, TypeVar, runtime_checkable

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.params import Params
from featgeom_core.store import result_key

Report = Callable[[float, str], None]
Arrays = dict[str, np.ndarray]
StoreEntry = tuple[str, Arrays, dict[str, Any]]


@runtime_checkable
class StoredResultType(Protocol):
    """A result that round-trips through the store: arrays (NPZ) and JSON metadata, never pickle."""

    def to_store(self) -> tuple[Arrays, dict[str, Any]]:
        """(arrays, JSON-able metadata)."""
        ...

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Any:
        """The result written by ``to_store``."""
        ...

    def summary(self) -> dict[str, Any]:
        """A few JSON-able numbers that say what the result is (CLI output, the Jobs page)."""
        ...


@dataclass(frozen=True)
class JobOutput:
    """What a run returns: the primary ``result``, the ``fingerprints`` of its inputs (part of
    the result's store key besides the params), and ``extra`` store entries that other paths
    reuse (e.g. per-layer probes that the interactive page reads from the cache)."""

    result: StoredResultType
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    extra: tuple[StoreEntry, ...] = ()


P = TypeVar("P", bound=Params)


def _open_by_job_id(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    return {"job": job_id}


@dataclass(frozen=True)
class JobKind(Generic[P]):
    """One kind of job.

    ``page``: the page file that opens a result (e.g. ``pages/energy.py``), None for none;
    ``link(job_id, params)``: the query parameters that open it there (default ``?job=<id>``);
    ``example``: small, fast params for the contract tests and ``featgeom jobs kinds``.
    """

    name: str
    description: str
    params: type[P]
    run: Callable[[P, Report], JobOutput]
    result: type
    page: str | None = None
    wants_gpu: bool = False
    example: Mapping[str, Any] = field(default_factory=dict)
    link: Callable[[str, Mapping[str, Any]], dict[str, str]] = _open_by_job_id
    PREFIX: ClassVar[str] = "job:"

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Checked, normalised params (JSON-able): what the job id hashes and the worker receives."""
        return self.params.parse(raw).normalised()

    def execute(self, normalised: Mapping[str, Any], report: Report) -> list[StoreEntry]:
        """Run on validated params; the primary result comes first, as ``(key, arrays, meta)``."""
        output = self.run(self.params.parse(normalised), report)
        key = result_key(self.PREFIX + self.name, dict(normalised), dict(output.fingerprints))
        arrays, meta = output.result.to_store()
        return [(key, arrays, meta), *output.extra]

    def load_result(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Any:
        """The stored primary result as its result type."""
        return self.result.from_store(arrays, meta)

    @property
    def module(self) -> str:
        """The module that registers this kind (a worker imports it to find the kind)."""
        return self.run.__module__


_registry: dict[str, JobKind] = {}
_loaded = False
_lock = threading.RLock()


def register(kind: JobKind) -> JobKind:
    """Add a kind to the registry (idempotent for the same kind); returns it."""
    if not isinstance(kind.result, type) or not issubclass(kind.result, StoredResultType):
        raise TypeError(f"job kind {kind.name!r}: its result type must define to_store, from_store and summary")
    with _lock:
        existing = _registry.get(kind.name)
        if existing is not None and (existing.run is not kind.run and existing.module != kind.module):
            raise ValueError(f"job kind {kind.name!r} is already registered by {existing.module}")
        _registry[kind.name] = kind
    return kind


def _load_builtin_kinds() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        from featgeom_core.analyses import JOB_KIND_MODULES

        for module in JOB_KIND_MODULES:
            importlib.import_module(module)


def job_kinds() -> dict[str, JobKind]:
    """Every registered kind by name (the built-in analyses, plus any registered since)."""
    _load_builtin_kinds()
    with _lock:
        return dict(_registry)


def job_kind(name: str, module: str | None = None) -> JobKind:
    """The registered kind; ``module`` (a worker's hint) is imported when the kind is not known yet."""
    kinds = job_kinds()
    if name not in kinds and module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InvalidParameter(f"job kind {name!r}: cannot import {module}: {exc}") from exc
        kinds = job_kinds()
    if name not in kinds:
        raise InvalidParameter(f"unknown job kind {name!r}; known: {', '.join(sorted(kinds))}")
    return kinds[name]
