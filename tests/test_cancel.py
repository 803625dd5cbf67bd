"""Cancel ends the computation: a long job of each analysis, started on a real Dask worker and
cancelled while it computes, leaves its worker idle within seconds, stores nothing, and the next
job runs at full speed. The seconds from cancel to an idle worker go to
``test-output/cancel.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import poll_until
from featgeom_core import jobs
from featgeom_core.jobs.protocol import JobKind
from featgeom_core.store import Store

IDLE_WITHIN_S = 5.0
"""How soon after the cancel the worker must have no task (every long loop reports about once a second)."""

rng = np.random.default_rng(0)
_points = rng.normal(size=(14, 6))
_points /= np.linalg.norm(_points, axis=1, keepdims=True)
PSM14 = (_points @ _points.T).round(6).tolist()

LONG_JOBS: dict[str, tuple[str, dict[str, Any]]] = {
    # the case: the graph page's default build, which trains the transformer from scratch first
    "interaction": ("lib.graph", {"target": {"kind": "modadd", "train": {"seed": 7}}}),
    "hessian": ("hessian.features", {"target": {"kind": "toy", "model": "tms", "fit": {"steps": 1_000_000}}}),
    "energy": (
        "energy.sweep",
        {
            "targets": {"real": {"cosine": PSM14, "rbf": PSM14}},
            "dims": [2, 3, 4, 5, 6, 7, 8],
            "lambda_d": [1.0, 10.0, 100.0, 1000.0],
            "restarts": 32,
        },
    ),
    "sparsity": ("sparsity.synthetic", {"d": 512, "n": 16384, "a_values": [5.0, 10.0, 20.0]}),
    "probing": (
        "feature_geometry",
        {"model": "minilm", "feature_set": "world_country", "layers": [0, 1, 2, 3, 4, 5], "hook": "resid_post", "C": 0.001},
    ),
}


def _executing(dask_worker: Any) -> int:
    with dask_worker.active_threads_lock:
        return len(dask_worker.active_threads)


def _busy_workers() -> list[str]:
    """Workers with a thread still running a task. Not the scheduler's view: Dask forgets a
    cancelled future at once while its thread computes on, which is what this test is about."""
    return [worker for worker, running in jobs.get_client().run(_executing).items() if running]


def _compile_the_energy_engine() -> None:
    """numba compiles the energy engine on its first use in a fresh install (about 10 s, one call that
    cannot hear a cancel); this test is about the loops, so the workers compile it first."""
    from featgeom_core.energy import joint_optimize, reoptimize

    reoptimize(joint_optimize(np.eye(3), 2, restarts=1), 1.0, 0.01)


def _stored_keys() -> set[str]:
    return {stamp.key for stamp in Store().audit()}


def _spin_seconds(tag: str) -> float:
    job_id = jobs.submit("diagnostic.spin", {"iterations": 1_500_000, "steps": 10, "tag": tag})
    record = jobs.wait(job_id, timeout_s=120)
    assert record.status == "done", record.error
    return float(jobs.load_result(job_id).seconds)


@pytest.fixture(scope="module")
def figures(output_dir: Path) -> dict[str, float]:
    measured: dict[str, float] = {}
    yield measured
    (output_dir / "cancel.json").write_text(json.dumps(measured, indent=1))


@pytest.mark.parametrize("analysis", sorted(LONG_JOBS))
def test_cancel_frees_the_worker_within_seconds_and_stores_nothing(
    analysis: str, local_backend, figures: dict[str, float], alone: None
) -> None:
    kind_name, raw = LONG_JOBS[analysis]
    kind: JobKind[Any, Any] = jobs.job_kind(kind_name)
    params = kind.validate(raw)
    if analysis == "energy":
        jobs.get_client().run(_compile_the_energy_engine)
    before = _spin_seconds(f"{analysis} before")
    poll_until(lambda: not _busy_workers(), timeout=30, failure=lambda: f"workers busy before the test: {_busy_workers()}")
    stored_before = _stored_keys()
    job_id = jobs.submit(kind_name, params, recompute=True)
    poll_until(
        lambda: jobs.status(job_id).status == "running" and jobs.status(job_id).progress > 0,
        timeout=300,
        failure=lambda: f"{analysis}: never started computing ({jobs.status(job_id)})",
    )
    time.sleep(1.0)  # well inside the computation
    assert jobs.status(job_id).status == "running", f"{analysis}: finished before the cancel; make its job longer"
    cancelled_at = time.monotonic()
    assert jobs.cancel(job_id).status == "cancelled"
    poll_until(lambda: not _busy_workers(), timeout=60, poll=0.05, failure=lambda: f"{analysis}: the worker kept computing")
    idle_after = time.monotonic() - cancelled_at
    figures[analysis] = round(idle_after, 2)
    assert idle_after < IDLE_WITHIN_S, f"{analysis}: the worker was busy {idle_after:.1f} s after the cancel"
    record = jobs.status(job_id)
    assert record.status == "cancelled" and record.result_key is None
    assert _stored_keys() == stored_before, f"{analysis}: a cancelled job stored {_stored_keys() - stored_before}"
    after = _spin_seconds(f"{analysis} after")
    assert after < 2.0 * before + 0.5, f"{analysis}: the next job took {after:.2f} s against {before:.2f} s before"
