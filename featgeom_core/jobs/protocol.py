"""The job protocol: what an analysis declares to make a computation a job, and the registry.

A job kind is typed, ``JobKind[P, R]``: a params model ``P`` (what it takes), a run function
(validated params and a progress report -> a :class:`JobOutput` of ``R``), the result type ``R`` (a
frozen dataclass the store writes and reads through :mod:`featgeom_core.codec`), the page that
opens a result, and whether it wants a GPU. Each analysis package declares its kinds in its
``jobs.py`` and calls :func:`register`; ``featgeom_core/analyses.py`` lists those modules, so adding
an analysis adds one line there. Pages and the CLI hold a kind by its constant: ``KIND.submit(P)``
gives a :class:`JobHandle` whose ``result()`` is an ``R``. Nothing here knows any analysis.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from featgeom_core import codec
from featgeom_core.errors import FeatgeomError, InvalidParameter
from featgeom_core.params import Params
from featgeom_core.progress import Progress
from featgeom_core.store import Store, result_key

if TYPE_CHECKING:
    from featgeom_core.jobs.records import JobRecord

Arrays = dict[str, np.ndarray]
StoreEntry = tuple[str, Arrays, dict[str, Any]]
P = TypeVar("P", bound=Params)
R = TypeVar("R")


@dataclass(frozen=True)
class JobOutput(Generic[R]):
    """What a run returns: the primary ``result``, the ``fingerprints`` of its inputs (part of
    the result's store key besides the params), and ``extra`` store entries that other paths
    reuse (e.g. per-layer probes that the interactive page reads from the cache)."""

    result: R
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    extra: tuple[StoreEntry, ...] = ()


def _open_by_job_id(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    return {"job": job_id}


@dataclass(frozen=True)
class JobKind(Generic[P, R]):
    """One kind of job.

    ``page``: the page file that opens a result (e.g. ``pages/energy.py``), None for none;
    ``link(job_id, params)``: the query parameters that open it there (default ``?job=<id>``);
    ``example``: small, fast params for the contract tests and ``featgeom jobs kinds``. The result
    type must define ``summary() -> dict`` (a few JSON-able numbers for the CLI and Jobs page).
    """

    name: str
    description: str
    params: type[P]
    run: Callable[[P, Progress], JobOutput[R]]
    result: type[R]
    page: str | None = None
    wants_gpu: bool = False
    example: Mapping[str, Any] = field(default_factory=dict)
    link: Callable[[str, Mapping[str, Any]], dict[str, str]] = _open_by_job_id
    PREFIX: ClassVar[str] = "job:"

    def parse(self, raw: Mapping[str, Any] | P) -> P:
        """The params model of ``raw`` (InvalidParameter naming the field when it is refused)."""
        return self.params.parse(raw)

    def validate(self, raw: Mapping[str, Any] | P) -> dict[str, Any]:
        """Checked, normalised params (JSON-able): what the job id hashes and the worker receives."""
        return self.parse(raw).normalised()

    def result_key(self, normalised: Mapping[str, Any], fingerprints: Mapping[str, str]) -> str:
        """The store key of this kind's result for these params and input fingerprints."""
        return result_key(self.PREFIX + self.name, dict(normalised), dict(fingerprints))

    def execute(self, normalised: Mapping[str, Any], report: Progress) -> list[StoreEntry]:
        """Run on validated params; the primary result comes first, as ``(key, arrays, meta)``."""
        return self.execute_output(normalised, self.run(self.parse(normalised), report))

    def execute_output(self, params: Mapping[str, Any] | P, output: JobOutput[R]) -> list[StoreEntry]:
        """A run's output as store entries, the primary result first (what a job stores)."""
        normalised = self.validate(params)
        arrays, meta = codec.encode(output.result)
        return [(self.result_key(normalised, output.fingerprints), arrays, meta), *output.extra]

    def decode(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> R:
        """A stored primary result (current store format) as ``R``."""
        return codec.decode(self.result, arrays, meta)

    def cached(self, params: P, store: Store, fingerprints: Mapping[str, str] | None = None) -> R | None:
        """This kind's stored result for ``params`` (and input ``fingerprints``), or None: how an
        analysis reuses another kind's result it depends on (a trained model) without a job."""
        return store.get_result(self.result_key(params.normalised(), fingerprints or {}), self.result)

    def entry(self, params: P, result: R, fingerprints: Mapping[str, str] | None = None) -> StoreEntry:
        """``result`` as the store entry :meth:`cached` reads back (an ``extra`` of another job)."""
        arrays, meta = codec.encode(result)
        return self.result_key(params.normalised(), fingerprints or {}), arrays, meta

    def submit(self, params: P | Mapping[str, Any], store: Store | None = None, recompute: bool = False) -> JobHandle[R]:
        """Validate and submit a job of this kind; the handle's ``result()`` is an ``R``."""
        from featgeom_core.jobs import manager

        return JobHandle(self, manager.submit(self.name, self.validate(params), store, recompute), store)

    def handle(self, job_id: str, store: Store | None = None) -> JobHandle[R]:
        """The handle of an existing job of this kind; FeatgeomError when the id names another kind."""
        from featgeom_core.jobs import manager

        record = manager.status(job_id, store)
        if record.kind != self.name:
            raise FeatgeomError(f"job {job_id} is a {record.kind} job, not {self.name}")
        return JobHandle(self, job_id, store)

    def load(self, job_id: str, store: Store | None = None) -> R:
        """The finished job's result as ``R``."""
        return self.handle(job_id, store).result()

    def params_of(self, job_id: str, store: Store | None = None) -> P:
        """The params a job of this kind ran with, as ``P`` (records written by older versions are
        read through the params model, which accepts their layout)."""
        return self.parse(self.handle(job_id, store).status().params)

    def finished(self, store: Store | None = None) -> list[JobRecord]:
        """This kind's finished jobs, newest first (a page's "open a finished run")."""
        from featgeom_core.jobs import manager

        return [r for r in manager.list_jobs(store) if r.kind == self.name and r.status == "done"]

    @property
    def module(self) -> str:
        """The module that registers this kind (a worker imports it to find the kind)."""
        return self.run.__module__


@dataclass(frozen=True)
class JobHandle(Generic[R]):
    """A submitted job of a known kind: its id, its record, and its result as ``R``."""

    kind: JobKind[Any, R]
    job_id: str
    store: Store | None = None

    def status(self) -> JobRecord:
        """The job's record, brought up to date."""
        from featgeom_core.jobs import manager

        return manager.status(self.job_id, self.store)

    def wait(self, timeout_s: float = 600.0) -> JobRecord:
        """Block until the job is no longer queued or running (or the timeout passes)."""
        from featgeom_core.jobs import manager

        return manager.wait(self.job_id, timeout_s, self.store)

    def result(self) -> R:
        """The finished job's result; FeatgeomError unless it is done, StaleResult when its stored
        layout cannot be read."""
        from featgeom_core.jobs import manager

        return typing_cast_result(manager.load_result(self.job_id, self.store), self.kind)

    def cancel(self) -> JobRecord:
        """Cancel the job (its computation stops within about a second)."""
        from featgeom_core.jobs import manager

        return manager.cancel(self.job_id, self.store)


def typing_cast_result(value: Any, kind: JobKind[Any, R]) -> R:
    """``value`` as ``kind``'s result type (checked: a result of another type is a bug)."""
    if not isinstance(value, kind.result):
        raise TypeError(f"job kind {kind.name}: expected a {kind.result.__name__}, got {type(value).__name__}")
    return value


_registry: dict[str, JobKind[Any, Any]] = {}
_loaded = False
_lock = threading.RLock()


def register(kind: JobKind[P, R]) -> JobKind[P, R]:
    """Add a kind to the registry (idempotent for the same kind); returns it."""
    if not codec.is_result_type(kind.result) or not callable(getattr(kind.result, "summary", None)):
        raise TypeError(f"job kind {kind.name!r}: its result type must be a dataclass with a summary() method")
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


def job_kinds() -> dict[str, JobKind[Any, Any]]:
    """Every registered kind by name (the built-in analyses, plus any registered since)."""
    _load_builtin_kinds()
    with _lock:
        return dict(_registry)


def job_kind(name: str, module: str | None = None) -> JobKind[Any, Any]:
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
