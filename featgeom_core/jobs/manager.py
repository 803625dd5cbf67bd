"""Submit, track, cancel and collect jobs. The app side writes results into the store.

Job ids are content-addressed (kind + canonical params), so submitting the same run twice
returns the first one: its result when done, the run itself while in flight. A job runs on the
Dask backend (:func:`submit`) or in this process (:func:`run_here`: a short-lived process with no
scheduler, such as the CLI, never leaves a job to die with its local cluster). Either way its
record is kept under ``<cache>/jobs`` and a cancel, from any process, stops the computation: the
cancel mark is read by the process that owns the job, which stops the task at its next report.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from featgeom_core.errors import FeatgeomError, JobCancelled, StaleResult
from featgeom_core.jobs import records
from featgeom_core.jobs.backend import get_client, scheduler_address
from featgeom_core.jobs.protocol import job_kind
from featgeom_core.jobs.records import ACTIVE, JobRecord
from featgeom_core.jobs.task import (
    TaskFailure,
    cancel_event_name,
    failure_line,
    progress_topic,
    run_task,
    throttled_report,
)
from featgeom_core.progress import Progress, silent
from featgeom_core.store import Store, canonical_json, decode_stored

_lock = threading.RLock()
_futures: dict[str, Any] = {}
_live: dict[str, JobRecord] = {}  # in-flight jobs of this process, kept current by progress events
_last_saved: dict[str, float] = {}
SAVE_INTERVAL_S = 0.5  # progress is persisted at most this often (every change of status at once)
LOST_SCHEDULER = "the connection to the Dask scheduler was lost (the scheduler stopped or restarted) before the job finished; resubmit it"


class TaskError(Exception):
    """A task's failure as the worker reported it (its text is already ``Type: message``)."""


def job_id_for(kind: str, params: Mapping[str, Any]) -> str:
    """The content address of a job: 20 hex digits of SHA-256 over kind and canonical params."""
    return hashlib.sha256(canonical_json({"kind": kind, "params": dict(params)}).encode()).hexdigest()[:20]


def submit(kind: str, params: Mapping[str, Any], store: Store | None = None, recompute: bool = False) -> str:
    """Validate and submit a job; returns its id. Invalid params raise before any worker is used.
    A job already done returns at once unless its result is gone or unreadable, or ``recompute``."""
    spec = job_kind(kind)
    normalised = spec.validate(params)
    job_id = job_id_for(kind, normalised)
    store = store or Store()
    # Lock rule: never call a blocking Dask API while holding _lock; Dask's IO-loop thread
    # takes _lock in _on_progress, and a blocking call needs that thread.
    with _lock:
        existing = records.load(job_id, store.root)
        if existing is not None:
            if (
                existing.status == "done"
                and not recompute
                and existing.result_key
                and store.contains(existing.result_key)
                and store.entry_format(existing.result_key).readable
            ):
                return job_id
            if job_id in _futures and (_futures[job_id] is None or not _futures[job_id].done()):
                return job_id  # in flight (or being submitted) in this process
            if existing.status in ACTIVE and existing.owner.get("token") != records.OWNER["token"] and records.owner_alive(existing.owner):
                return job_id  # another live process is running it: one computation
        record = JobRecord(job_id=job_id, kind=kind, params=normalised, created=time.time())
        records.clear_cancel(job_id, store.root)
        records.save(record, store.root)
        _futures[job_id] = None
        _live[job_id] = record
    try:
        client = get_client()
        resources = {"GPU": 1} if spec.wants_gpu and _cluster_has_gpus(client) else None
        client.subscribe_topic(progress_topic(job_id), lambda event: _on_progress(job_id, event, store))
        future = client.submit(
            run_task,
            kind,
            spec.module,
            normalised,
            job_id,
            key=f"featgeom-{kind}-{job_id}-{uuid.uuid4().hex[:8]}",
            pure=False,
            resources=resources,
        )
    except Exception as exc:
        with _lock:
            _futures.pop(job_id, None)
            _live.pop(job_id, None)
            record.status, record.error, record.finished = "failed", f"could not submit: {exc}", time.time()
            records.save(record, store.root)
        raise
    with _lock:
        _futures[job_id] = future
    future.add_done_callback(lambda f: _finish(job_id, f, store))
    return job_id


def _on_progress(job_id: str, event: tuple[float, dict[str, Any]], store: Store) -> None:
    """A progress event from the worker (on Dask's IO loop): update the live record, persist it (throttled)."""
    _, message = event
    with _lock:
        record = _live.get(job_id)
        if record is None or record.status not in ACTIVE:
            return
        if records.cancel_requested(job_id, store.root):  # by another process (the CLI, another session's app)
            _live.pop(job_id, None)
            _last_saved.pop(job_id, None)
            future = _futures.get(job_id)
            _mark_cancelled(record, store)
            # Dask's blocking API cannot run on its own IO loop, where this callback runs
            threading.Thread(target=_stop_task, args=(job_id, future), daemon=True).start()
            return
        status_changed = record.status == "queued"
        if "started" in message:
            record.started = message["started"]
        record.status = "running"
        record.progress = max(record.progress, float(message.get("progress", 0.0)))
        record.message = str(message.get("message", record.message))
        record.add_metrics(message.get("metrics") or {})
        now = time.monotonic()
        if status_changed or now - _last_saved.get(job_id, 0.0) >= SAVE_INTERVAL_S:
            _last_saved[job_id] = now
            records.save(record, store.root)


def _mark_cancelled(record: JobRecord, store: Store) -> None:
    record.status, record.finished, record.message = "cancelled", time.time(), "cancelled by the user"
    records.save(record, store.root)


def _stop_task(job_id: str, future: Any) -> None:
    """Ask a running task to stop (its next report raises JobCancelled) and drop its future."""
    from distributed import Event

    try:
        client = future.client if future is not None else get_client()
        Event(cancel_event_name(job_id), client=client).set()
        if future is not None:
            future.cancel()
    except Exception:  # noqa: BLE001  (the scheduler may be gone: then so is the task)
        pass


def _cluster_has_gpus(client: Any) -> bool:
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers.values())


def _finish(job_id: str, future: Any, store: Store) -> None:
    """Runs on the client when a future ends: store the entries and close the record."""
    outcome, entries, error = future.status, None, None
    try:
        if outcome == "finished":
            computed = future.result()
            if isinstance(computed, TaskFailure):
                raise JobCancelled(computed.error) if computed.cancelled else TaskError(computed.error)
            for key, arrays, meta in computed:
                store.put(key, arrays, meta)
            entries = computed  # only once every entry is stored: a failed write is the job's failure, never "done"
        elif outcome != "cancelled":
            error = future.exception()
    except Exception as exc:  # noqa: BLE001  (a failure while collecting is the job's failure)
        outcome, error = "error", exc
    _unsubscribe(future, job_id)
    with _lock:
        live = _live.pop(job_id, None)
        _last_saved.pop(job_id, None)
        record = records.load(job_id, store.root)
        if record is None:  # deleted meanwhile
            return
        if live is not None:
            record.started, record.progress, record.message = live.started, live.progress, live.message
        record.finished = time.time()
        if record.status == "cancelled" or isinstance(error, JobCancelled):
            record.status = "cancelled"  # cancel() wrote the record before cancelling the future
        elif outcome == "cancelled":  # not by the user: Dask cancels every future when its scheduler goes away
            record.status, record.message = "interrupted", LOST_SCHEDULER
        elif entries is not None:
            record.status, record.progress, record.result_key, record.message = "done", 1.0, entries[0][0], "done"
        else:
            # a TaskError's text is the worker's one line already
            record.status, record.error = "failed", str(error) if isinstance(error, TaskError) or error is None else failure_line(error)
        records.save(record, store.root)


def _unsubscribe(future: Any, job_id: str) -> None:
    try:
        future.client.unsubscribe_topic(progress_topic(job_id))
    except Exception:  # noqa: BLE001  (the client may be closing)
        pass


def status(job_id: str, store: Store | None = None) -> JobRecord:
    """The job's record, brought up to date (progress; interrupted when its owner is gone)."""
    store = store or Store()
    with _lock:
        record = records.load(job_id, store.root)
        if record is None:
            raise FeatgeomError(f"no job {job_id!r}")
        if record.status in ACTIVE:
            if job_id in _live:
                return JobRecord(**{**_live[job_id].__dict__})
            if not records.owner_alive(record.owner) or record.owner.get("token") == records.OWNER["token"]:
                record.status, record.finished = "interrupted", time.time()
                record.message = "the process running it stopped before it finished"
                records.save(record, store.root)
        return record


def progress(job_id: str, store: Store | None = None) -> tuple[float, str]:
    """(fraction done in [0, 1], last message)."""
    record = status(job_id, store)
    return record.progress, record.message


def cancel(job_id: str, store: Store | None = None) -> JobRecord:
    """Cancel a queued or running job, from any process: its computation stops at its next
    progress report (within about a second) and nothing it made is stored."""
    store = store or Store()
    with _lock:
        record = status(job_id, store)
        if record.status not in ACTIVE:
            return record
        future = _futures.get(job_id)
        _live.pop(job_id, None)
        _last_saved.pop(job_id, None)
        records.request_cancel(job_id, store.root)  # the owner (another process, or run_here) reads it
        _mark_cancelled(record, store)
    if future is not None or scheduler_address():  # ours, or on a shared cluster this process can reach
        _stop_task(job_id, future)
    return record


RESUBMITTABLE = ("interrupted", "failed", "cancelled")


def resubmit(job_id: str, store: Store | None = None) -> str:
    """Run an interrupted, failed or cancelled job again with its recorded kind and params (the
    same id); returns the id. A queued, running or finished job is left as it is."""
    store = store or Store()
    record = status(job_id, store)
    if record.status not in RESUBMITTABLE:
        raise FeatgeomError(f"job {job_id} is {record.status}; only an interrupted, failed or cancelled job is resubmitted")
    return submit(record.kind, record.params, store)


def delete(job_id: str, store: Store | None = None) -> None:
    """Forget a job (cancelling it first if active). Its stored results stay in the store."""
    store = store or Store()
    with _lock:
        record = records.load(job_id, store.root)
        if record is not None and record.status in ACTIVE:
            cancel(job_id, store)
        _futures.pop(job_id, None)
        records.remove(job_id, store.root)


def result(job_id: str, store: Store | None = None):
    """The job's primary stored result (a StoredResult); raises unless the job is done."""
    store = store or Store()
    record = status(job_id, store)
    if record.status != "done" or record.result_key is None:
        raise FeatgeomError(f"job {job_id} is {record.status}, not done" + (f": {record.error}" if record.error else ""))
    try:
        stored = store.get(record.result_key)
    except StaleResult as exc:
        raise StaleResult(f"job {job_id}: {exc}", job_id) from exc
    if stored is None:
        raise FeatgeomError(f"job {job_id}'s result is no longer in the store at {store.root}")
    return stored


def load_result(job_id: str, store: Store | None = None) -> Any:
    """The job's primary result as its kind's result type (e.g. an EnergyFitResult); a result of
    an older store format is migrated on the way, one that cannot be read is a StaleResult."""
    stored = result(job_id, store)
    kind = job_kind(status(job_id, store).kind)
    try:
        return decode_stored(stored, kind.result)
    except StaleResult as exc:
        raise StaleResult(f"job {job_id}'s {kind.name} result: {exc}", job_id) from exc


def list_jobs(store: Store | None = None) -> list[JobRecord]:
    """Every job record, newest first, each brought up to date."""
    store = store or Store()
    return [status(r.job_id, store) if r.status in ACTIVE else r for r in records.load_all(store.root)]


def wait(job_id: str, timeout_s: float = 600.0, store: Store | None = None, poll_s: float = 0.05) -> JobRecord:
    """Block until the job is no longer queued or running (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = status(job_id, store)
        if record.status not in ACTIVE or time.monotonic() > deadline:
            return record
        future = _futures.get(job_id)
        if future is not None and future.done():
            time.sleep(0.005)  # the done-callback is writing the record
        else:
            time.sleep(poll_s)


def run_here(
    kind: str, params: Mapping[str, Any], store: Store | None = None, report: Progress = silent, recompute: bool = False
) -> JobRecord:
    """Run a job in this process to its end, with a record like a submitted one (the Jobs page and
    ``featgeom jobs`` show it; a cancel from anywhere stops it within about a second). Returns the
    final record: done (its result stored), failed (its error), or cancelled. A job already done
    returns at once unless ``recompute``."""
    spec = job_kind(kind)
    normalised = spec.validate(params)
    job_id = job_id_for(kind, normalised)
    store = store or Store()
    existing = records.load(job_id, store.root)
    if (
        existing is not None
        and existing.status == "done"
        and not recompute
        and existing.result_key
        and store.contains(existing.result_key)
        and store.entry_format(existing.result_key).readable
    ):
        return existing
    if existing is not None and existing.status in ACTIVE and records.owner_alive(existing.owner):
        raise FeatgeomError(f"job {job_id} is already {existing.status} in another process; follow it with `featgeom jobs status {job_id}`")
    record = JobRecord(job_id=job_id, kind=kind, params=normalised, created=time.time(), started=time.time(), status="running")
    records.clear_cancel(job_id, store.root)
    records.save(record, store.root)
    last_saved = [0.0]

    def send(event: dict[str, Any]) -> None:
        record.progress, record.message = max(record.progress, event["progress"]), event["message"]
        record.add_metrics(event.get("metrics") or {})
        report(event["progress"], event["message"], event.get("metrics"))
        if time.monotonic() - last_saved[0] >= SAVE_INTERVAL_S:
            last_saved[0] = time.monotonic()
            records.save(record, store.root)

    job_report = throttled_report(job_id, lambda: records.cancel_requested(job_id, store.root), send)
    try:
        entries = spec.execute(normalised, job_report)
        for key, arrays, meta in entries:
            store.put(key, arrays, meta)
    except JobCancelled:
        record.status, record.message = "cancelled", "cancelled by the user"
    except KeyboardInterrupt:
        record.status, record.message, record.finished = "interrupted", "interrupted (Ctrl-C)", time.time()
        records.save(record, store.root)
        raise
    except Exception as exc:  # noqa: BLE001  (the job's failure is its record's, as on a worker)
        record.status, record.error = "failed", failure_line(exc)
    else:
        record.status, record.progress, record.result_key, record.message = "done", 1.0, entries[0][0], "done"
    record.finished = time.time()
    records.save(record, store.root)
    return record
