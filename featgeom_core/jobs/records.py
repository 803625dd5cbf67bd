"""Job records: one JSON file per job under ``<cache>/jobs/``, written atomically."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from featgeom_core.config import cache_dir
from featgeom_core.store import private_directory

Status = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
ACTIVE: tuple[str, ...] = ("queued", "running")

HISTORY_LIMIT = 400  # metrics entries a record keeps (a live loss curve's points)

# Who owns in-flight jobs: this process. A record owned by a process that is gone is "interrupted".
OWNER: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}


@dataclass
class JobRecord:
    """Everything known about one job. Times are UNIX seconds; ``progress`` is in [0, 1]."""

    job_id: str
    kind: str
    params: dict[str, Any]
    status: Status = "queued"
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    result_key: str | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    owner: dict[str, Any] = field(default_factory=lambda: dict(OWNER))
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_history: list[dict[str, float]] = field(default_factory=list)

    def add_metrics(self, metrics: dict[str, float]) -> None:
        """Keep the latest metrics of a progress report and append them to the history (thinned
        to every other entry when it reaches :data:`HISTORY_LIMIT`, so a long run keeps its shape)."""
        if not metrics:
            return
        self.metrics = dict(metrics)
        self.metrics_history.append(dict(metrics))
        if len(self.metrics_history) >= HISTORY_LIMIT:
            self.metrics_history = self.metrics_history[::2]

    def elapsed(self, now: float) -> float:
        """Seconds since the job started (or was created), up to its end."""
        begin = self.started or self.created
        return max(0.0, (self.finished or now) - begin)


def jobs_dir(root: Path | None = None) -> Path:
    """Where records live: ``<FEATGEOM_CACHE_DIR>/jobs``."""
    return (root or cache_dir()) / "jobs"


def save(record: JobRecord, root: Path | None = None) -> None:
    """Write a record atomically (temp file + rename)."""
    directory = jobs_dir(root)
    private_directory(directory.parent)
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    with os.fdopen(handle, "w") as file:
        json.dump(asdict(record), file, sort_keys=True)
    os.replace(temporary, directory / f"{record.job_id}.json")


def load(job_id: str, root: Path | None = None) -> JobRecord | None:
    """The record, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((jobs_dir(root) / f"{job_id}.json").read_text())
        known = {f.name for f in fields(JobRecord)}
        return JobRecord(**{k: v for k, v in data.items() if k in known})  # fields a newer featgeom added are dropped
    except (FileNotFoundError, json.JSONDecodeError, TypeError, AttributeError):
        return None


def load_all(root: Path | None = None) -> list[JobRecord]:
    """Every readable record, newest first."""
    directory = jobs_dir(root)
    if not directory.exists():
        return []
    records = [load(path.stem, root) for path in directory.glob("*.json")]
    return sorted((r for r in records if r is not None), key=lambda r: r.created, reverse=True)


def remove(job_id: str, root: Path | None = None) -> bool:
    """Delete a record file; True when one was there."""
    clear_cancel(job_id, root)
    try:
        (jobs_dir(root) / f"{job_id}.json").unlink()
        return True
    except FileNotFoundError:
        return False


def _cancel_marker(job_id: str, root: Path | None) -> Path:
    return jobs_dir(root) / f"{job_id}.cancel"


def request_cancel(job_id: str, root: Path | None = None) -> None:
    """Mark a job as cancelled for whichever process runs it (the owner checks the mark while the
    job reports progress): how a cancel from another process (the CLI, another app) reaches it."""
    directory = jobs_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    _cancel_marker(job_id, root).touch()


def cancel_requested(job_id: str, root: Path | None = None) -> bool:
    """Whether someone asked for the job to be cancelled since it was (re)submitted."""
    return _cancel_marker(job_id, root).exists()


def clear_cancel(job_id: str, root: Path | None = None) -> None:
    """Forget a cancel request (a job submitted again runs afresh)."""
    _cancel_marker(job_id, root).unlink(missing_ok=True)


def owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process that owns a record may still be running it."""
    if owner.get("token") == OWNER["token"]:
        return True
    if owner.get("host") != OWNER["host"]:
        return True  # cannot check another machine: trust its record
    try:
        os.kill(int(owner.get("pid", -1)), 0)
    except (OSError, ValueError):
        return False
    return True
