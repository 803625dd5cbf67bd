"""Jobs on Dask: end to end, deduplication, refusal, cancellation, restarts and killed workers."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, poll_until
from featgeom_core import jobs
from featgeom_core.errors import InvalidParameter
from featgeom_core.jobs import records
from featgeom_core.jobs.task import progress_topic
from featgeom_core.store import Store

EYE3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
LONG_SPIN = {"iterations": 3_000_000_000, "steps": 3000}  # minutes of work, reports often


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEATGEOM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_local_cluster_runs_a_geometry_job_end_to_end(local_backend, cache: Path, tiny_native) -> None:
    params = {"model": "tiny-native", "feature_set": "art_type", "layers": [0, 1]}
    job_id = jobs.submit("feature_geometry", params)
    record = jobs.wait(job_id, timeout_s=180)
    assert record.status == "done", record.error
    assert record.progress == 1.0 and record.started is not None and record.finished >= record.started
    summary = jobs.result(job_id)
    assert summary.arrays["test_accuracy"].shape == (2, 3)
    # the per-layer probes the worker computed were written by this side into the app's store
    from featgeom_core.data import load_feature_set
    from featgeom_core.probing import GeometryParams, feature_geometry

    fs = load_feature_set("art_type", tokenizer=tiny_native.tokenizer)
    view = feature_geometry(tiny_native, fs, [0, 1], GeometryParams(), store=Store())
    assert view.cached_layers == (0, 1)
    assert jobs.submit("feature_geometry", params) == job_id  # done: the same id, no rerun


def test_invalid_params_are_refused_before_any_worker(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_backend():
        raise AssertionError("the backend was used")

    monkeypatch.setattr("featgeom_core.jobs.manager.get_client", no_backend)
    for kind, params, message in [
        ("feature_geometry", {"model": "minilm", "feature_set": "nope", "layers": [0]}, "unknown feature set"),
        (
            "feature_geometry",
            {"model": "minilm", "feature_set": "athlete_sport", "layers": []},
            "layers = \\[\\]: List should have at least 1 item",
        ),
        (
            "feature_geometry",
            {"model": "minilm", "feature_set": "athlete_sport", "layers": [0], "C": -1},
            "C = -1: Input should be greater than 0",
        ),
        ("diagnostic.spin", {"iterations": 0}, "iterations = 0: Input should be greater than or equal to 1"),
        ("no.such.kind", {}, "unknown job kind"),
        ("energy.fit", {"target": EYE3, "dim": 3}, "dim must be between"),
        ("energy.fit", {"target": EYE3, "dim": 2, "features": ["a"]}, "1 feature names"),
        ("energy.fit", {"target": [[1.0, 0.3], [0.1, 1.0]], "dim": 1}, "not symmetric"),
        (
            "energy.fit",
            {"target": EYE3, "dim": 2, "kernel": "gauss"},
            "kernel = 'gauss' is not allowed \\(allowed: one of exp, log, riesz\\)",
        ),
        ("energy.sweep", {"targets": []}, "targets = \\[\\]: List should have at least 1 item"),
        (
            "energy.sweep",
            {"targets": [{"name": "real", "layer": 2, "features": ["a", "b"], "psms": {"cosine": EYE3}}]},
            "names 2 features for an 3 x 3",
        ),
        ("energy.sweep", {"targets": [{"name": "real", "psms": {"cosine": EYE3, "rbf": [[1.0, 0.0], [0.0, 1.0]]}}]}, "differ in size"),
        ("energy.sweep", {"targets": {"real": {"cosine": EYE3}}, "dims": [3]}, "no dim"),
        ("energy.sweep", {"targets": {"real": {"cosine": EYE3}}, "sigmas": []}, "sigmas = \\[\\]: Tuple should have at least 1 item"),
    ]:
        with pytest.raises(InvalidParameter, match=message):
            jobs.submit(kind, params)
    assert records.load_all() == []


def test_two_sessions_submitting_the_same_job_get_one_computation(local_backend, cache: Path) -> None:
    params = {"iterations": 2_000_000, "steps": 5, "tag": "shared"}
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(jobs.submit("diagnostic.spin", params))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    assert all(jobs.wait(job_id).status == "done" for job_id in ids)
    started = [e for _, e in jobs.get_client().get_events(progress_topic(ids[0])) if "started" in e]
    assert len(started) == 1
    assert jobs.result(ids[0]).meta["seconds"] > 0


def test_cancel_a_queued_and_a_running_job(local_backend, cache: Path) -> None:
    running = [jobs.submit("diagnostic.spin", dict(LONG_SPIN, tag=f"busy{i}")) for i in range(2)]  # both workers busy
    poll_until(lambda: all(jobs.status(j).status == "running" for j in running))
    queued = jobs.submit("diagnostic.spin", dict(LONG_SPIN, tag="queued"))
    assert jobs.status(queued).status == "queued"
    assert jobs.cancel(queued).status == "cancelled"
    for job_id in running:
        assert jobs.cancel(job_id).status == "cancelled"
    # the workers really stop (cooperatively): a new job gets through promptly
    quick = jobs.submit("diagnostic.echo", {"value": "after cancel"})
    assert jobs.wait(quick, timeout_s=30).status == "done"
    time.sleep(0.5)
    assert {jobs.status(j).status for j in running + [queued]} == {"cancelled"}


def test_a_client_killed_with_a_job_in_flight_leaves_it_interrupted(cache: Path, local_backend: None) -> None:
    """The app killed with a job in flight and started again: the job shows as interrupted, one
    click on the Jobs page resubmits it, and a result finished before the kill still opens."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from featgeom_core import jobs
        if __name__ == "__main__":
            finished = jobs.submit("diagnostic.echo", {{"value": "finished before the kill"}})
            assert jobs.wait(finished, timeout_s=120).status == "done"
            job_id = jobs.submit("diagnostic.spin", {LONG_SPIN!r})
            while jobs.status(job_id).status != "running":
                time.sleep(0.05)
            print(job_id, flush=True)
            time.sleep(600)
        """
    )
    env = dict(os.environ, FEATGEOM_LOCAL_WORKERS="1", FEATGEOM_CACHE_DIR=str(cache))
    env.pop("FEATGEOM_SCHEDULER", None)
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        job_id = child.stdout.readline().strip()
        assert job_id, "the child never reported its job"
        assert jobs.status(job_id).status == "running"  # its owner is alive: shown as it is
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    poll_until(lambda: not records.owner_alive(records.load(job_id).owner), timeout=10)
    record = jobs.status(job_id)
    assert record.status == "interrupted" and "stopped" in record.message
    assert sorted(r.status for r in jobs.list_jobs()) == ["done", "interrupted"]
    finished = next(r for r in jobs.list_jobs() if r.status == "done")
    assert jobs.result(finished.job_id).meta == {"echo": "finished before the kill"}

    from streamlit.testing.v1 import AppTest

    from conftest import HARNESS

    at = AppTest.from_file(HARNESS, default_timeout=120)
    at.query_params.update({"page": "pages/jobs.py", "model": "tiny-native", "jobs_selected": job_id})
    at.run()
    assert not at.exception and not at.button(key="jobs_resubmit").disabled
    at.button(key="jobs_resubmit").click().run()  # one click: the same job, queued again on this process's backend
    assert not at.exception and not at.error, [e.value for e in at.error]
    try:
        assert jobs.status(job_id).status in ("queued", "running")
        assert "jobs_refresh" not in [b.key for b in at.button]  # a job is active again: the table polls by itself
    finally:
        jobs.cancel(job_id)


def test_a_hundred_jobs_at_once_on_two_workers_all_finish_with_live_progress(local_backend, cache: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from load import queue_jobs

    report = queue_jobs(100, tag="ci")
    print(report.line())
    assert report.statuses == {"done": 100} and report.results_stored == 100
    assert report.progress_values_seen > 0 and report.longest_silence_s < 5.0


def test_a_full_disk_fails_the_job_clearly_and_keeps_what_was_stored(local_backend, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = jobs.submit("diagnostic.echo", {"value": "stored before the disk filled"})
    assert jobs.wait(kept, timeout_s=60).status == "done"

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("featgeom_core.store.tempfile.mkdtemp", disk_full)
    lost = jobs.submit("diagnostic.echo", {"value": "computed after the disk filled"})
    record = jobs.wait(lost, timeout_s=60)
    assert record.status == "failed" and "cannot write to the cache" in record.error and "No space left on device" in record.error
    assert jobs.result(kept).meta == {"echo": "stored before the disk filled"}  # what it had is still served
    assert not list(Store().root.glob("*/.tmp-*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_scheduler(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _start_worker(address: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@dataclass
class ExternalCluster:
    """A `dask scheduler` and a `dask worker` process on loopback, and this process's client of them."""

    port: int
    scheduler: subprocess.Popen
    worker: subprocess.Popen
    client: Any = None

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def wait_for_one_worker(self, timeout: float = 60.0) -> None:
        """Until the app's client (connecting afresh if it must) sees the worker."""

        def ready() -> bool:
            self.client = _connect()
            return self.client is not None and len(self.client.scheduler_info(n_workers=-1)["workers"]) == 1

        poll_until(ready, timeout=timeout, poll=0.5)

    def stop(self) -> None:
        for process in (self.worker, self.scheduler):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def external_cluster(monkeypatch: pytest.MonkeyPatch):
    port = _free_port()
    cluster = ExternalCluster(port, _start_scheduler(port), _start_worker(f"tcp://127.0.0.1:{port}"))
    jobs.shutdown()
    monkeypatch.setenv("FEATGEOM_SCHEDULER", cluster.address)
    try:
        cluster.wait_for_one_worker()
        yield cluster
    finally:
        jobs.shutdown()
        cluster.stop()


def _connect():
    try:
        return jobs.get_client()
    except Exception:  # noqa: BLE001  (scheduler not up yet)
        jobs.shutdown()
        return None


def test_external_scheduler_runs_jobs_and_survives_a_killed_worker(external_cluster, cache: Path) -> None:
    assert jobs.backend_info().mode.startswith("tcp://")
    first = jobs.submit("diagnostic.echo", {"value": "kept"})
    assert jobs.wait(first, timeout_s=60).status == "done"
    kept_key = jobs.status(first).result_key

    victim = jobs.submit("diagnostic.spin", {"iterations": 60_000_000, "steps": 200, "tag": "victim"})
    poll_until(lambda: jobs.status(victim).progress > 0.05, timeout=60)
    worker_pids = external_cluster.client.run(os.getpid)
    for pid in worker_pids.values():
        os.kill(pid, signal.SIGKILL)  # the worker process dies; its nanny starts a fresh one

    record = jobs.wait(victim, timeout_s=240)
    assert record.status in ("done", "failed"), record.status  # retried to completion, or failed: never stuck
    assert Store().get(kept_key).meta == {"echo": "kept"}  # other finished results are intact
    after = jobs.submit("diagnostic.echo", {"value": "next"})
    assert jobs.wait(after, timeout_s=120).status == "done"


def test_a_restarted_scheduler_leaves_its_jobs_interrupted_and_the_app_reconnects(external_cluster, cache: Path) -> None:
    """The scheduler stopped and started again with a job in flight: the job shows as interrupted
    (not as cancelled by the user), a result finished before still opens, the app reconnects by
    itself, and resubmitting the interrupted job runs it to the end on the new scheduler."""
    cluster = external_cluster
    kept = jobs.submit("diagnostic.echo", {"value": "finished before the restart"})
    assert jobs.wait(kept, timeout_s=60).status == "done"
    in_flight = jobs.submit("diagnostic.spin", {"iterations": 20_000_000, "steps": 200, "tag": "restart"})
    poll_until(lambda: jobs.status(in_flight).progress > 0.02, timeout=60)

    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    cluster.scheduler.wait()
    record = jobs.wait(in_flight, timeout_s=60)
    assert record.status == "interrupted" and "scheduler" in record.message, (record.status, record.message)
    cluster.scheduler = _start_scheduler(cluster.port)  # the same address
    # A Dask worker exits when its scheduler goes; compose.yaml's `restart: unless-stopped` starts it again.
    assert cluster.worker.wait(timeout=60) is not None
    cluster.worker = _start_worker(cluster.address)

    assert jobs.result(kept).meta == {"echo": "finished before the restart"}
    cluster.wait_for_one_worker(timeout=120)
    assert jobs.resubmit(in_flight) == in_flight
    assert jobs.wait(in_flight, timeout_s=180).status == "done"
    assert Store().contains(jobs.status(in_flight).result_key)
