"""Jobs on Dask distributed: submit long runs, follow their progress, collect their results.

With no ``FEATGEOM_SCHEDULER`` a local cluster starts on first use; with it, the same jobs run
on that cluster's workers. Records persist under ``<cache>/jobs`` so they survive restarts.
"""

from featgeom_core.jobs.backend import BackendInfo, backend_info, get_client, shutdown
from featgeom_core.jobs.kinds import JOB_KINDS, JobKind
from featgeom_core.jobs.manager import cancel, delete, job_id_for, list_jobs, progress, result, status, submit, wait
from featgeom_core.jobs.records import JobRecord

__all__ = [
    "BackendInfo", "JOB_KINDS", "JobKind", "JobRecord", "backend_info", "cancel", "delete", "get_client",
    "job_id_for", "list_jobs", "progress", "result", "shutdown", "status", "submit", "wait",
]
