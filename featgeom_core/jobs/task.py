"""What runs on a Dask worker: one job, with progress events and cooperative cancellation."""

from __future__ import annotations

import time
from typing import Any

from featgeom_core.errors import FeatgeomError
from featgeom_core.jobs.protocol import StoreEntry, job_kind


class JobCancelled(FeatgeomError):
    """Raised inside a task when its cancel event is set."""


def progress_topic(job_id: str) -> str:
    """The scheduler event topic a job's progress is logged under."""
    return f"featgeom-progress-{job_id}"


def cancel_event_name(job_id: str) -> str:
    """The Dask Event that asks a running job to stop."""
    return f"featgeom-cancel-{job_id}"


def run_task(kind: str, module: str, params: dict[str, Any], job_id: str, min_interval_s: float = 0.2) -> list[StoreEntry]:
    """Run one job on a worker: log progress to the scheduler, stop when cancelled. ``module``
    registers the kind (imported here when this worker does not know the kind yet)."""
    from distributed import Event, get_worker

    worker = get_worker()
    topic = progress_topic(job_id)
    cancel = Event(cancel_event_name(job_id))
    worker.log_event(topic, {"progress": 0.0, "message": "started", "started": time.time()})
    last = [0.0]

    def report(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] < min_interval_s and fraction < 1.0:
            return
        last[0] = now
        if cancel.is_set():
            raise JobCancelled(f"job {job_id} was cancelled")
        worker.log_event(topic, {"progress": float(min(max(fraction, 0.0), 1.0)), "message": message})

    return job_kind(kind, module).execute(params, report)
