"""The full load runs of issue 14 (the suite runs short versions):

1. N sessions at once (default 8 and 32; headless Chromium contexts) browsing warm results on
   every page: p50/p95 seconds from navigation to a settled page, errors, cross-talk.
2. 100 jobs submitted at once to 2 workers: all finish, none lost, progress stays live.

Starts the app with the README's start command (local Dask backend, 2 workers, its own cache),
warms every page once with one session, then runs each N. Usage:
    .venv/bin/python benchmarks/bench_load.py [--sessions 8 32] [--jobs 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks")]
from load import SMALL_MODEL_QUERY, browse_at_once, every_page, queue_jobs  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(cache: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ, FEATGEOM_PORT=str(port), FEATGEOM_CACHE_DIR=str(cache), FEATGEOM_LOCAL_WORKERS="2", HF_HUB_OFFLINE="1")
    env.pop("FEATGEOM_SCHEDULER", None)
    app = subprocess.Popen(
        ["bash", "scripts/run.sh"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return app, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the app did not start")


def log(line: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {line}", flush=True)


def wait_for_idle_jobs(cache: Path, timeout_s: float = 900.0) -> None:
    """Block until no job record under ``cache`` is queued or running."""
    from featgeom_core.jobs import records

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active = [r.job_id for r in records.load_all(cache) if r.status in records.ACTIVE]
        if not active:
            return
        log(f"waiting for {len(active)} job(s) of the warm-up to finish")
        time.sleep(5)
    raise RuntimeError("the warm-up's jobs did not finish")


def run_sessions(counts: list[int]) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        app, url = start_app(cache)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                warm = browse_at_once(
                    browser, url, 2, every_page(), SMALL_MODEL_QUERY, timeout_s=600, progress=log
                )  # computes and caches both layers' results
                print("warm-up (cold results):", *warm.lines(), sep="\n", flush=True)
                wait_for_idle_jobs(cache)  # jobs the warm-up started (sweeps after fits) must not share the cores
                for n in counts:
                    report = browse_at_once(browser, url, n, every_page(), SMALL_MODEL_QUERY, timeout_s=300, progress=log)
                    print(*report.lines(), *report.errors[:10], *report.crosstalk[:10], sep="\n", flush=True)
                browser.close()
        finally:
            os.killpg(app.pid, 15)
            app.wait()


def run_queue(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FEATGEOM_CACHE_DIR"] = tmp
        os.environ["FEATGEOM_LOCAL_WORKERS"] = "2"
        os.environ.pop("FEATGEOM_SCHEDULER", None)
        from featgeom_core import jobs

        jobs.get_client()
        report = queue_jobs(n)
        print(report.line(), flush=True)
        jobs.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="*", default=[8, 32])
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores", flush=True)
    if args.jobs:
        run_queue(args.jobs)
    if args.sessions:
        run_sessions(args.sessions)
