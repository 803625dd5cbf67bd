"""Shared fixtures (an isolated cache per test session, models loaded once, the local Dask
cluster) and the test tiers.

Tiers are markers applied from the fixtures a test uses, so nobody has to remember them:
``browser`` (drives Chromium), ``cluster`` (runs jobs on Dask workers) and ``slow`` (loads
MiniLM, starts servers or processes). A test that reaches for a Dask client without the
``local_backend`` fixture fails, so the fast tier (``-m "not slow and not browser and not
cluster"``) never starts a cluster by accident.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
# Set once in the process pytest starts, so that parallel workers (pytest-xdist, started later)
# share one cache: what one worker computed (the ledger, SmolLM2's conversion) the other reads.
_CREATED_CACHE = None if "FEATGEOM_CACHE_DIR" in os.environ else tempfile.mkdtemp(prefix="featgeom-test-cache-")
"""The session's cache when this process made it (the process pytest starts; workers inherit it)."""
if _CREATED_CACHE is not None:
    os.environ["FEATGEOM_CACHE_DIR"] = _CREATED_CACHE
os.environ.setdefault("FEATGEOM_TEST_LOCK", os.environ["FEATGEOM_CACHE_DIR"].rstrip("/") + ".alone.lock")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
"""This process's name among parallel workers (gw0, gw1, ...), None when pytest runs alone."""
if WORKER:
    # Two workers share two cores: one torch thread each, or they slow each other many times over
    # (an ``alone`` test gets the default back).
    import torch

    DEFAULT_TORCH_THREADS = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # before numba is imported: the sparse coder's prange too

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO_ROOT / "test-output"
HARNESS = str(REPO_ROOT / "tests" / "harness" / "single_page.py")


_CLIENT_BEFORE = pytest.StashKey[Any]()

TIER_FIXTURES = {
    "browser": {"browser"},
    "cluster": {"local_backend", "external_cluster", "cluster_in_subprocess", "processes"},
    "alone": {"alone"},
    "slow": {
        "paper_ledger",
        "ledger_grid",
        "minilm",
        "app_url",
        "processes",
        "certs",
        "tiny_bert_dir",
        "minilm_tokenizer",
        "featgeom",
        "smollm2_dir",
        "smollm2",
    },
}
"""Which fixtures put a test in which tier."""


LONGEST_FIRST = (
    "tests/test_findings_sparsity.py",
    "tests/test_findings_sparsity_layers.py",
    "tests/test_server.py",
    "tests/test_findings_thesis.py",
    "tests/test_findings_lib.py",
    "tests/test_cli.py",
    "tests/test_findings_hessian.py",
    "tests/test_jobs.py",
)
"""The files that take longest (the ledger, the browser), first: parallel workers take files in
order, and the run ends when the last file started ends."""


def pytest_unconfigure(config: pytest.Config) -> None:
    """The process that made the session's cache removes it (about 1 GB after a whole run)."""
    if _CREATED_CACHE is not None and WORKER is None:
        import shutil

        shutil.rmtree(_CREATED_CACHE, ignore_errors=True)
        for suffix in (".alone.lock", ".alone.lock.intent"):
            Path(_CREATED_CACHE.rstrip("/") + suffix).unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: LONGEST_FIRST.index(path) if (path := item.nodeid.split("::")[0]) in LONGEST_FIRST else len(LONGEST_FIRST))
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in TIER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)
        if item.get_closest_marker("browser") or item.get_closest_marker("cluster"):
            item.add_marker("slow")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Between parallel workers, a test with the ``alone`` fixture (it times the machine) runs with
    no other test beside it: every test holds a shared lock from its setup (module and session
    fixtures included) to its teardown, an ``alone`` test an exclusive one. Without workers, nothing."""
    if WORKER is None:
        yield
        return
    import fcntl

    exclusive = item.get_closest_marker("alone") is not None
    with open(os.environ["FEATGEOM_TEST_LOCK"] + ".intent", "a+") as intent, open(os.environ["FEATGEOM_TEST_LOCK"], "a+") as lock:
        # The intent lock gives a waiting exclusive test precedence over the next shared ones.
        fcntl.flock(intent, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive:
            fcntl.flock(intent, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        threads = _full_threads() if exclusive else None
        try:
            yield
        finally:
            if threads is not None:
                _set_threads(threads)
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(intent, fcntl.LOCK_UN)


def _full_threads() -> int:
    """Give torch its default thread count for an ``alone`` test; returns the count to restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(DEFAULT_TORCH_THREADS)
    return before


def _set_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


@pytest.fixture
def alone() -> None:
    """Declares that the test times the machine (a bound in seconds, a speed ratio): with parallel
    workers it runs with no other test beside it (see ``pytest_runtest_protocol``)."""


@pytest.fixture(autouse=True)
def _dask_only_in_cluster_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the cluster tier, asking for a Dask client is an error naming the fixture to use."""
    if request.node.get_closest_marker("cluster") is not None:
        return

    def refuse() -> None:
        raise AssertionError(f"{request.node.nodeid} starts a Dask cluster: give it the local_backend fixture (it is then a cluster test)")

    for where in ("featgeom_core.jobs.backend", "featgeom_core.jobs.manager", "featgeom_core.jobs"):
        monkeypatch.setattr(f"{where}.get_client", refuse)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    from featgeom_core.jobs import backend

    item.stash[_CLIENT_BEFORE] = backend._client  # before this test's fixtures (module ones included) are set up


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A Dask client started by a test outside the cluster tier (through a module fixture, or a
    thread that outlived its test) is that test's error."""
    from featgeom_core.jobs import backend

    started = backend._client is not None and backend._client is not item.stash.get(_CLIENT_BEFORE, None)
    if item.get_closest_marker("cluster") is None and started:
        backend.shutdown()
        raise AssertionError(f"{item.nodeid} left a Dask client running: give it (or its fixture) the local_backend fixture")


@pytest.fixture(scope="module")
def local_backend() -> Iterator[None]:
    """The local Dask cluster (2 single-threaded worker processes), for the module's tests."""
    from featgeom_core import jobs

    jobs.shutdown()
    os.environ.pop("FEATGEOM_SCHEDULER", None)
    os.environ["FEATGEOM_LOCAL_WORKERS"] = "2"
    jobs.get_client()
    yield
    jobs.shutdown()


@pytest.fixture
def cluster_in_subprocess() -> None:
    """Declares that the test's subprocess (the CLI) starts its own local Dask cluster."""


def open_page(path: str, **query: str):
    """One page in the AppTest harness, opened with ``query`` as its URL parameters; fails the test
    on any exception the page raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(HARNESS, default_timeout=300)
    for key, value in {"page": path, **query}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def on_one_thread(build: Callable[[], Any]) -> Any:
    """``build()`` with torch on one thread: two threads beside another busy process slow small models
    pathologically (TMS training went from 4 s to 145 s). For module fixtures, which run before ``one_thread``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """torch on one thread for the test: two threads beside another busy process slow small models pathologically."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def minilm():
    from featgeom_core.models import load_model

    return load_model("minilm", device="cpu")


@pytest.fixture(scope="session")
def smollm2_dir() -> tuple[Path, Path]:
    """(the session's cache root, SmolLM2's converted checkpoint in it): converted once per session."""
    from featgeom_core.config import cache_dir
    from featgeom_core.models import smollm2

    return cache_dir(), smollm2.converted_dir().directory


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """SmolLM2-135M-Instruct as the registry loads it (the process-wide shared instance)."""
    from featgeom_core.models import shared_model

    return shared_model("smollm2")


@pytest.fixture(scope="session")
def tiny_native():
    from featgeom_core.models import load_model

    return load_model("tiny-native", device="cpu")


@pytest.fixture
def store(tmp_path):
    from featgeom_core.store import Store

    return Store(tmp_path / "store")


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


def poll_until(
    condition: Callable[[], Any],
    timeout: float = 60.0,
    poll: float = 0.05,
    failure: Callable[[], str] = lambda: "condition not met in time",
) -> Any:
    """Call ``condition`` every ``poll`` s until it returns something truthy (returned); fail with
    ``failure()`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(failure())
