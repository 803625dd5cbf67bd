"""The Dask client: a local cluster started on first use, or FEATGEOM_SCHEDULER's cluster (over
mutual TLS when FEATGEOM_TLS_CA_FILE, FEATGEOM_TLS_CERT and FEATGEOM_TLS_KEY are set)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featgeom_core.errors import FeatgeomError

TLS_VARIABLES = ("FEATGEOM_TLS_CA_FILE", "FEATGEOM_TLS_CERT", "FEATGEOM_TLS_KEY")

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
        if _client is not None:  # lost its scheduler (stopped or restarted; Dask cancelled its futures): start afresh
            for stale in (_client, _cluster):
                if stale is not None:
                    _close_quietly(stale)
            _client, _cluster = None, None
        try:
            if address:
                _client = Client(address, timeout="10s", security=scheduler_security(address))
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


def tls_security() -> Any:
    """A ``distributed.security.Security`` for mutual TLS from the PEM files named by
    ``$FEATGEOM_TLS_CA_FILE``, ``$FEATGEOM_TLS_CERT`` and ``$FEATGEOM_TLS_KEY``, or None when none
    is set. FeatgeomError when only some are set, a file is missing, or they do not load."""
    paths = {name: os.environ.get(name, "").strip() for name in TLS_VARIABLES}
    if not any(paths.values()):
        return None
    unset = [name for name, path in paths.items() if not path]
    if unset:
        raise FeatgeomError(
            f"TLS needs all of {', '.join(TLS_VARIABLES)}; {' and '.join(unset)} "
            f"{'is' if len(unset) == 1 else 'are'} not set (unset all three for no TLS)"
        )
    missing = [f"{name}={path}" for name, path in paths.items() if not Path(path).is_file()]
    if missing:
        raise FeatgeomError(f"TLS file not found: {', '.join(missing)}")
    from distributed.security import Security

    security = Security(
        tls_ca_file=paths["FEATGEOM_TLS_CA_FILE"],
        tls_client_cert=paths["FEATGEOM_TLS_CERT"],
        tls_client_key=paths["FEATGEOM_TLS_KEY"],
        require_encryption=True,
    )
    try:
        security.get_connection_args("client")  # loads the files now, not at the first connection
    except (OSError, ValueError) as exc:
        raise FeatgeomError(f"the TLS files do not load ({', '.join(f'{n}={p}' for n, p in paths.items())}): {exc}") from exc
    return security


def scheduler_security(address: str) -> Any:
    """The Security to reach ``address`` with: TLS settings for a tls:// address, None for tcp://;
    FeatgeomError when the address and the TLS settings disagree."""
    security = tls_security()
    uses_tls = address.startswith("tls://")
    if security is not None and not uses_tls:
        raise FeatgeomError(f"FEATGEOM_TLS_* are set, but FEATGEOM_SCHEDULER={address} is not a tls:// address")
    if security is None and uses_tls:
        raise FeatgeomError(f"FEATGEOM_SCHEDULER={address} uses TLS: set {', '.join(TLS_VARIABLES)} to the CA, certificate and key files")
    return security


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


def _close_quietly(client_or_cluster: Any) -> None:
    try:
        client_or_cluster.close(timeout=2)
    except Exception:  # noqa: BLE001  (one without a scheduler may fail to say goodbye)
        pass


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
