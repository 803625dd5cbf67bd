"""What runs a job: on a Dask worker (:func:`run_task`) or in this process (:func:`run_here`'s
report), with progress events and cooperative cancellation.

Either way the job's progress report is where cancellation is checked: the report raises
:class:`~featgeom_core.errors.JobCancelled` once the job was cancelled, so a computation that
reports about once a second stops within about a second and frees its worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from featgeom_core.errors import JobCancelled
from featgeom_core.jobs.protocol import StoreEntry, job_kind
from featgeom_core.progress import Metrics, Progress

MIN_INTERVAL_S = 0.2  # at most this often a report is forwarded and cancellation is checked


def progress_topic(job_id: str) -> str:
    """The scheduler event topic a job's progress is logged under."""
    return f"featgeom-progress-{job_id}"


def cancel_event_name(job_id: str) -> str:
    """The Dask Event that asks a running job to stop."""
    return f"featgeom-cancel-{job_id}"


def throttled_report(
    job_id: str, is_cancelled: Callable[[], bool], send: Callable[[dict[str, Any]], None], min_interval_s: float = MIN_INTERVAL_S
) -> Progress:
    """A job's report: at most every ``min_interval_s`` seconds (and at completion) it checks
    ``is_cancelled`` (raising JobCancelled) and ``send``s the event ``{progress, message, metrics}``."""
    last = [-float("inf")]

    def report(fraction: float, message: str, metrics: Metrics | None = None, /) -> None:
        now = time.monotonic()
        if now - last[0] < min_interval_s and fraction < 1.0:
            return
        last[0] = now
        if is_cancelled():
            raise JobCancelled(f"job {job_id} was cancelled")
        event: dict[str, Any] = {"progress": float(min(max(fraction, 0.0), 1.0)), "message": message}
        if metrics:
            event["metrics"] = {str(k): float(v) for k, v in metrics.items()}
        send(event)

    return report


@dataclass(frozen=True)
class TaskFailure:
    """A job that ended without a result, as its task's return value: its error as one line
    (``Type: message``), or ``cancelled``. Returned rather than raised, so the worker's log does not
    dump a traceback for what is the job's own, already clear, failure."""

    error: str
    cancelled: bool = False


def run_task(
    kind: str, module: str, params: dict[str, Any], job_id: str, min_interval_s: float = MIN_INTERVAL_S
) -> list[StoreEntry] | TaskFailure:
    """Run one job on a Dask worker: log progress to the scheduler, stop when cancelled. ``module``
    registers the kind (imported here when this worker does not know the kind yet)."""
    from distributed import Event, get_worker

    worker = get_worker()
    topic = progress_topic(job_id)
    cancel = Event(cancel_event_name(job_id))
    worker.log_event(topic, {"progress": 0.0, "message": "started", "started": time.time()})
    report = throttled_report(job_id, cancel.is_set, lambda event: worker.log_event(topic, event), min_interval_s)
    try:
        return job_kind(kind, module).execute(params, report)
    except JobCancelled as exc:
        return TaskFailure(str(exc), cancelled=True)
    except Exception as exc:  # noqa: BLE001  (any failure is the job's; its record says which)
        return TaskFailure(failure_line(exc))


def failure_line(exc: BaseException) -> str:
    """A job's error as its record shows it: ``Type: first line of the message``."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
