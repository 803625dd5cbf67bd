"""Shared fixtures: an isolated cache per test session, and models loaded once."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("FEATGEOM_CACHE_DIR", tempfile.mkdtemp(prefix="featgeom-test-cache-"))

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO_ROOT / "test-output"
HARNESS = str(REPO_ROOT / "tests" / "harness" / "single_page.py")


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


def poll_until(condition: Callable[[], Any], timeout: float = 60.0, poll: float = 0.05,
               failure: Callable[[], str] = lambda: "condition not met in time") -> Any:
    """Call ``condition`` every ``poll`` s until it returns something truthy (returned); fail with
    ``failure()`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(failure())
