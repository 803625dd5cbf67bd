"""The Dask client: a local cluster started on first use, or FEATGEOM_SCHEDULER's cluster."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from featgeom_core.errors import FeatgeomError

_lock = threading.Lock()
_client: Any = None
_cluster: Any = None


@dataclass(frozen=True)
class BackendInfo:
    """What the home page and ``featgeom jobs`` show about the backend."""

    mode: str  # "local" or the scheduler address
    started: bool
    workers: int = 0
    threads: int = 0
    gpus: float = 0.0


def scheduler_address() -> str | None:
    """``$FEATGEOM_SCHEDULER`` (e.g. tcp://host:8786), or None for a local cluster."""
    return os.environ.get("FEATGEOM_SCHEDULER") or None


def get_client() -> Any:
    """The process's Dask client, connecting (or starting a local cluster) on first use."""
    global _client, _cluster
    with _lock:
        if _client is not None and _client.status == "running":
            return _client
        from distributed import Client, LocalCluster

        address = scheduler_address()
        try:
            if address:
                _client = Client(address, timeout="10s")
            else:
                _cluster = LocalCluster(
                    n_workers=local_worker_count(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                    resources=_local_resources(),
                )
                _client = Client(_cluster)
        except OSError as exc:
            raise FeatgeomError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        atexit.register(shutdown)
        return _client


def local_worker_count() -> int:
    """Workers of the local cluster: ``$FEATGEOM_LOCAL_WORKERS`` or one per core (at most 4)."""
    configured = os.environ.get("FEATGEOM_LOCAL_WORKERS")
    return int(configured) if configured else max(1, min(4, os.cpu_count() or 1))


def _local_resources() -> dict[str, float]:
    import torch

    return {"GPU": 1.0} if torch.cuda.is_available() else {}


def backend_info(start: bool = False) -> BackendInfo:
    """Describe the backend; connects only when ``start`` (the first job starts it anyway)."""
    mode = scheduler_address() or "local"
    if _client is None and not start:
        return BackendInfo(mode=mode, started=False)
    client = get_client()
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return BackendInfo(
        mode=mode,
        started=True,
        workers=len(workers),
        threads=sum(w.get("nthreads", 0) for w in workers.values()),
        gpus=sum(w.get("resources", {}).get("GPU", 0.0) for w in workers.values()),
    )


def shutdown() -> None:
    """Close the client and any local cluster (registered at exit)."""
    global _client, _cluster
    with _lock:
        for thing in (_client, _cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001  (best effort at exit)
                    pass
        _client, _cluster = None, None
