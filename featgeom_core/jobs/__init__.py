"""Jobs on Dask distributed: submit long runs, follow their progress, collect their results.

With no ``FEATGEOM_SCHEDULER`` a local cluster starts on first use; with it, the same jobs run
on that cluster's workers. Records persist under ``<cache>/jobs`` so they survive restarts.
What a job kind is (params model, run, result type, page) is in ``protocol``; the analyses
register their kinds, listed in ``featgeom_core/analyses.py``.
"""

from featgeom_core.jobs.backend import BackendInfo, backend_info, get_client, shutdown
from featgeom_core.jobs.manager import (
    cancel,
    delete,
    job_id_for,
    list_jobs,
    load_result,
    progress,
    resubmit,
    result,
    run_here,
    status,
    submit,
    wait,
)
from featgeom_core.jobs.protocol import (
    JobHandle,
    JobKind,
    JobOutput,
    job_kind,
    job_kinds,
    register,
)
from featgeom_core.jobs.records import JobRecord

__all__ = [
    "BackendInfo",
    "JobHandle",
    "JobKind",
    "JobOutput",
    "JobRecord",
    "backend_info",
    "cancel",
    "delete",
    "get_client",
    "job_id_for",
    "job_kind",
    "job_kinds",
    "list_jobs",
    "load_result",
    "progress",
    "register",
    "result",
    "resubmit",
    "run_here",
    "shutdown",
    "status",
    "submit",
    "wait",
]
